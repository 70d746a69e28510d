"""Example cxrbench dataset plugin (see plugin.py for the registration and the dataset)."""
