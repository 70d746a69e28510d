"""The cxrbench pytest plugin (entry point ``pytest11: cxrbench``), loaded by pytest wherever
cxrbench is installed.

* Registers ``cxrbench.testing`` for assert rewriting *before* it is imported, so a plain
  ``assert`` in a kit (or in a helper module of it) reports the values it compared. The kit's
  own checks raise :class:`cxrbench.testing.ContractViolation` with the actual values spelled
  out, so their messages are readable even where rewriting is off.
* Offers fixtures for plugin tests: ``cxrbench_toy_split`` (a small toy training split),
  ``cxrbench_make_toy_split`` (the factory) and ``cxrbench_plugins_with`` (the installed plugins
  plus plugins registered by hand).

Importing this module imports neither torch nor cxrbench.testing: it runs in every pytest
session of an environment with cxrbench in it.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("cxrbench.testing")


@pytest.fixture(scope="session")
def cxrbench_toy_split():
    """64 toy radiographs at 16 px (label ``blob``; sex / age metadata), as the kits use."""
    from cxrbench.testing import make_toy_split

    return make_toy_split(64, 16, seed=0)


@pytest.fixture(scope="session")
def cxrbench_make_toy_split():
    """``make_toy_split(n=256, size=32, seed=0, *, name="train", nan_fraction=0.03)``."""
    from cxrbench.testing import make_toy_split

    return make_toy_split


@pytest.fixture
def cxrbench_plugins_with():
    """``plugins_with(("postprocessor", "my-step", MyStep), ...)``: the installed plugins plus
    these, as a :class:`cxrbench.registry.Plugins` to hand to ``Runner(..., plugins=...)``."""
    from cxrbench.testing import plugins_with

    return plugins_with
