"""Register plugins for one test, the way an installed package would (no install needed)."""

from __future__ import annotations

import types
from typing import Any

from cxrbench.hookspecs import hookimpl
from cxrbench.registry import KINDS, PluginSource, Plugins, load_plugins

_HOOKS = {"generator": "generators", "postprocessor": "postprocessors", "classifier": "classifiers",
          "dataset": "datasets", "segmenter": "segmenters"}


def plugin_module(kind: str, name: str, target: Any, **add_kwargs: Any) -> types.ModuleType:
    """A plugin module whose ``cxrbench_register_<kind>s`` hook adds ``target`` as ``name``.

    ``kind`` is one of generator, postprocessor, classifier, dataset, segmenter; ``target`` a plugin class
    or a lazy ``"module:Class"`` string; ``add_kwargs`` go to ``registry.add`` (``summary=...``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    mod = types.ModuleType(f"plugin_{kind}_{name}")
    hook_name = f"cxrbench_register_{_HOOKS[kind]}"

    def register(registry):
        registry.add(name, target, **add_kwargs)

    register.__name__ = hook_name
    setattr(mod, hook_name, hookimpl(register))
    return mod


def generator_plugin(name: str, target: Any, **add_kwargs: Any) -> types.ModuleType:
    """A plugin module whose ``cxrbench_register_generators`` adds ``target`` as ``name``."""
    return plugin_module("generator", name, target, **add_kwargs)


def plugins_with(*registrations: tuple[str, str, Any], distribution: str = "test-dist", version: str = "0") -> Plugins:
    """The installed plugins plus each ``(kind, name, target)`` registered by hand."""
    extra = [(plugin_module(kind, name, target), PluginSource(name, distribution, version))
             for kind, name, target in registrations]
    return load_plugins(extra=extra)


def plugins_with_generator(name: str, target: Any, *, distribution: str = "test-dist", version: str = "0") -> Plugins:
    """The installed plugins plus ``target`` registered as generator ``name``."""
    return plugins_with(("generator", name, target), distribution=distribution, version=version)
