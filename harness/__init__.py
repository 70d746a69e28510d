"""cxrbench: which synthetic chest X-ray generator actually helps a classifier on real patients?

Importing this package is cheap on purpose: torch, diffusers and timm are imported lazily by
the modules that need them, so `cxrbench --help`, `cxrbench plugins` and `cxrbench validate`
stay fast.
"""

__version__ = "0.1.0"
