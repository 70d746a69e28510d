"""Example learned cxrbench generator plugin: a small conditional VAE (`cvae`).

plugin.py registers it (cheap to import), generator.py holds the model, written only against
the public API: ``cxrbench.contracts``, ``cxrbench.errors``, ``cxrbench.hookspecs`` and
``cxrbench.kit``.
"""

__version__ = "0.1.0"
