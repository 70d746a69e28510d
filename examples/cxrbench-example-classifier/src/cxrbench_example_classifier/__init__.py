"""Example cxrbench classifier plugin (see plugin.py for the registration and the network)."""
