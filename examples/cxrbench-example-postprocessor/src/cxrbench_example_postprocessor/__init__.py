"""Example cxrbench post-processor plugin (see plugin.py for the registration and the step)."""
