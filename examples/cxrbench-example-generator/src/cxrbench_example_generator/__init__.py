"""Example cxrbench generator plugin (see plugin.py for the registration, generator.py for the model)."""
