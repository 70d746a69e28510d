"""Register a generator for one test, the way an installed package would (no install needed)."""

from __future__ import annotations

import types
from typing import Any

from cxrbench.hookspecs import hookimpl
from cxrbench.registry import PluginSource, Plugins, load_plugins


def generator_plugin(name: str, target: Any, **add_kwargs: Any) -> types.ModuleType:
    """A plugin module whose ``cxrbench_register_generators`` adds ``target`` as ``name``.

    ``target`` is a Generator class or a lazy ``"module:Class"`` string; ``add_kwargs`` go to
    ``registry.add`` (``summary=...``).
    """
    mod = types.ModuleType(f"plugin_{name}")

    @hookimpl
    def cxrbench_register_generators(registry):
        registry.add(name, target, **add_kwargs)

    mod.cxrbench_register_generators = cxrbench_register_generators
    return mod


def plugins_with_generator(name: str, target: Any, *, distribution: str = "test-dist", version: str = "0") -> Plugins:
    """The installed plugins plus ``target`` registered as generator ``name``."""
    return load_plugins(extra=[(generator_plugin(name, target), PluginSource(name, distribution, version))])
