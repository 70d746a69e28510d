"""Plugin discovery and the five registries (one per extension kind, as timm has per model).

Plugins are found through the entry-point group ``cxrbench`` and called through pluggy. Each
registration hook fills a typed registry with *lazy* references so that listing plugins
imports nothing heavy.

Environment switches (also settable from a spec's ``plugins:`` allow-list):

- ``CXRBENCH_DISABLE_PLUGIN_AUTOLOAD=1``: load only the built-in plugins of the ``cxrbench``
  distribution, none from other installed packages.
- ``CXRBENCH_PLUGINS=dist-a,dist-b==1.2``: an allow-list pinning which third-party
  distributions (optionally at which version) may contribute plugins to a run.
- ``CXRBENCH_DISABLE_PLUGINS=dist-a,entry-point-b`` (or ``cxrbench --disable-plugin NAME``):
  skip just these, e.g. one broken package, and load everything else.
"""

from __future__ import annotations

import difflib
import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from cxrbench import hookspecs
from cxrbench.errors import PluginError

ENTRY_POINT_GROUP = "cxrbench"
DISABLE_AUTOLOAD_ENV = "CXRBENCH_DISABLE_PLUGIN_AUTOLOAD"
DISABLE_ENV = "CXRBENCH_DISABLE_PLUGINS"
ALLOW_LIST_ENV = "CXRBENCH_PLUGINS"
BUILTIN_DISTRIBUTION = "cxrbench"

KINDS = ("generator", "postprocessor", "classifier", "dataset", "segmenter")


@dataclass(frozen=True)
class PluginSource:
    """Where a registration came from: the entry point and its distribution."""

    entry_point: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.entry_point!r} from {self.distribution} {self.version}"


@dataclass
class RegisteredPlugin:
    kind: str
    name: str
    target: Any  # a class or a lazy "module:Class" string
    summary: str
    source: PluginSource
    _cls: Any = field(default=None, repr=False)

    def load(self) -> type:
        """Import (once) and return the plugin class."""
        if self._cls is None:
            target = self.target
            if isinstance(target, str):
                module_name, _, attr = target.partition(":")
                try:
                    module = importlib.import_module(module_name)
                    target = getattr(module, attr)
                except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
                    raise PluginError(
                        f"{self.kind} {self.name!r} ({self.source}) failed to import "
                        f"{self.target!r}: {type(exc).__name__}: {exc}"
                    ) from exc
            self._cls = target
        return self._cls

    @property
    def version(self) -> str:
        cls = self._cls if self._cls is not None else None
        if cls is not None and getattr(cls, "version", None):
            return f"{self.source.version}/{cls.version}"
        return self.source.version


class Registry:
    """Registry of one extension kind. Plugins call :meth:`add` from their registration hook."""

    kind = "plugin"

    def __init__(self) -> None:
        self._entries: dict[str, RegisteredPlugin] = {}
        self._current_source: PluginSource | None = None

    def add(self, name: str, target: Any, *, summary: str = "") -> None:
        """Register ``target`` (a class, or a lazy ``"module:Class"`` string) under ``name``."""
        if not isinstance(name, str) or not name or name != name.strip().lower():
            raise PluginError(
                f"{self.kind} name {name!r} from {self._current_source} must be a non-empty "
                "lower-case string"
            )
        source = self._current_source or PluginSource("<direct>", "<unknown>", "0")
        if name in self._entries:
            other = self._entries[name]
            raise PluginError(
                f"duplicate {self.kind} name {name!r}: registered by {other.source} and by "
                f"{source}; uninstall one or pin the run's plugins with {ALLOW_LIST_ENV}"
            )
        if not summary and not isinstance(target, str):
            summary = (target.__doc__ or "").strip().splitlines()[0] if target.__doc__ else ""
        self._entries[name] = RegisteredPlugin(self.kind, name, target, summary, source)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[RegisteredPlugin]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str, *, failed: Iterable[str] = ()) -> RegisteredPlugin:
        """Return the entry for ``name`` or raise an error suggesting the closest names."""
        if name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = f" Known {self.kind}s: {', '.join(self.names()) or 'none'}."
        failed_note = ""
        failed = list(failed)
        if failed:
            failed_note = " Plugins that failed to load (maybe it was theirs): " + "; ".join(failed)
        raise PluginError(f"unknown {self.kind} {name!r}{hint}.{known}{failed_note}")

    def load(self, name: str, *, failed: Iterable[str] = ()) -> type:
        return self.get(name, failed=failed).load()


class GeneratorRegistry(Registry):
    kind = "generator"


class PostprocessorRegistry(Registry):
    kind = "postprocessor"


class ClassifierRegistry(Registry):
    kind = "classifier"


class DatasetRegistry(Registry):
    kind = "dataset"


class SegmenterRegistry(Registry):
    kind = "segmenter"


def _parse_allow_list(items: Iterable[str]) -> dict[str, str | None]:
    allowed: dict[str, str | None] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        dist, _, version = item.partition("==")
        allowed[_normalize(dist)] = version.strip() or None
    return allowed


def _normalize(dist: str) -> str:
    return dist.strip().lower().replace("_", "-").replace(".", "-")


@dataclass
class Plugins:
    """The loaded plugin set: one registry per kind plus what failed to load."""

    generators: GeneratorRegistry
    postprocessors: PostprocessorRegistry
    classifiers: ClassifierRegistry
    datasets: DatasetRegistry
    segmenters: SegmenterRegistry
    failed: list[str]
    loaded_sources: list[PluginSource]

    def registry(self, kind: str) -> Registry:
        return {
            "generator": self.generators,
            "postprocessor": self.postprocessors,
            "classifier": self.classifiers,
            "dataset": self.datasets,
            "segmenter": self.segmenters,
        }[kind]

    def load(self, kind: str, name: str) -> type:
        return self.registry(kind).load(name, failed=self.failed)

    def all_entries(self) -> list[RegisteredPlugin]:
        return [e for k in KINDS for e in self.registry(k).entries()]


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(
        metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.dist.name if ep.dist else "", ep.name)
    )


def load_plugins(
    *,
    allow: Iterable[str] | None = None,
    autoload: bool | None = None,
    extra: Iterable[tuple[Any, PluginSource]] = (),
    disable: Iterable[str] | None = None,
) -> Plugins:
    """Discover plugins through entry points and collect their registrations.

    :param allow: distributions allowed to contribute (``"name"`` or ``"name==version"``);
        defaults to ``$CXRBENCH_PLUGINS``; the built-in distribution is always allowed.
    :param autoload: load third-party entry points; defaults to not
        ``$CXRBENCH_DISABLE_PLUGIN_AUTOLOAD``.
    :param extra: (plugin object, source) pairs registered in addition (used by tests).
    :param disable: third-party distributions or entry-point names to skip (like pytest's
        ``-p no:NAME``); defaults to ``$CXRBENCH_DISABLE_PLUGINS`` (comma-separated). One broken
        plugin can then be switched off without pinning or disabling all the others.
    """
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() in ("", "0", "false")
    if allow is None:
        env = os.environ.get(ALLOW_LIST_ENV, "")
        allow = env.split(",") if env.strip() else None
    allowed = _parse_allow_list(allow) if allow is not None else None

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    failed: list[str] = []
    modules: list[tuple[Any, PluginSource]] = []
    seen_dists: set[str] = set()
    disabled = {_normalize(n) for n in (disable if disable is not None else _env_list(DISABLE_ENV))}
    for ep in _entry_points():
        dist_name = ep.dist.name if ep.dist else "<unknown>"
        dist_version = ep.dist.version if ep.dist else "0"
        norm = _normalize(dist_name)
        builtin = norm == BUILTIN_DISTRIBUTION
        if not builtin:
            if not autoload or norm in disabled or _normalize(ep.name) in disabled:
                continue
            if allowed is not None:
                if norm not in allowed:
                    continue
                want = allowed[norm]
                if want is not None and want != dist_version:
                    raise PluginError(
                        f"plugin distribution {dist_name} is {dist_version} but the run pins "
                        f"{dist_name}=={want}; install that version or change the pin"
                    )
        source = PluginSource(ep.name, dist_name, dist_version)
        seen_dists.add(norm)
        try:
            modules.append((ep.load(), source))
        except Exception as exc:  # noqa: BLE001 - a broken third-party plugin must not stop others
            if builtin:
                raise PluginError(f"built-in plugin {source} failed to import: {exc}") from exc
            message = f"{source}: {type(exc).__name__}: {exc}"
            failed.append(message)
            warnings.warn(f"cxrbench plugin {message} (skipped)", stacklevel=2)
    if allowed is not None:
        missing = [d for d in allowed if d not in seen_dists and d != BUILTIN_DISTRIBUTION]
        if missing and autoload:
            raise PluginError(
                f"the run pins plugin distributions that are not installed: {', '.join(missing)}"
            )
    modules.extend(extra)

    registries = {
        "generators": GeneratorRegistry(),
        "postprocessors": PostprocessorRegistry(),
        "classifiers": ClassifierRegistry(),
        "datasets": DatasetRegistry(),
        "segmenters": SegmenterRegistry(),
    }
    # Call each plugin's hooks one plugin at a time so every registration knows its source.
    for module, source in modules:
        name = f"{source.distribution}:{source.entry_point}"
        if pm.is_registered(module) or pm.get_plugin(name) is not None:
            continue
        _warn_unmarked(module, source)
        try:
            pm.register(module, name=name)
            pm.check_pending()  # a misspelt hook name is an error, not a silent no-op
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {source} is invalid: {_hook_problem(module, exc)}") from exc
        for kind, registry in registries.items():
            registry._current_source = source
            try:
                _call_one(pm, module, kind, registry)
            finally:
                registry._current_source = None
    return Plugins(failed=failed, loaded_sources=[s for _, s in modules], **registries)


def _env_list(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def _hook_names() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith(f"{hookspecs.PROJECT_NAME}_")]


def _functions(module: Any) -> dict[str, Any]:
    return {n: getattr(module, n) for n in dir(module) if n.startswith(f"{hookspecs.PROJECT_NAME}_")
            and callable(getattr(module, n, None))}


def _warn_unmarked(module: Any, source: PluginSource) -> None:
    """pluggy silently ignores a hook function without the marker: say so."""
    marker = f"{hookspecs.PROJECT_NAME}_impl"
    for name, fn in _functions(module).items():
        if not hasattr(fn, marker):
            warnings.warn(
                f"cxrbench plugin {source}: {name}() is not marked @cxrbench.hookspecs.hookimpl, so it "
                "is ignored; add the decorator", stacklevel=3)


def _hook_problem(module: Any, exc: Exception) -> str:
    """pluggy's validation error, plus "did you mean" for a misspelt hook name."""
    known = _hook_names()
    wrong = [n for n in _functions(module) if n not in known]
    if not wrong:
        return str(exc)
    parts = []
    for n in wrong:
        close = difflib.get_close_matches(n, known, n=1, cutoff=0.6)
        parts.append(f"unknown hook {n}()" + (f" (did you mean {close[0]}()?)" if close else ""))
    return "; ".join(parts) + f"; known hooks: {', '.join(known)}"


def _call_one(pm: pluggy.PluginManager, module: Any, kind: str, registry: Registry) -> None:
    """Call one plugin's implementation of one registration hook (if it has one)."""
    hook = getattr(pm.hook, f"cxrbench_register_{kind}")
    for impl in hook.get_hookimpls():
        if impl.plugin is module:
            impl.function(registry=registry)


_CACHED: Plugins | None = None


def get_plugins(*, refresh: bool = False) -> Plugins:
    """The process-wide plugin set (loaded once)."""
    global _CACHED
    if _CACHED is None or refresh:
        _CACHED = load_plugins()
    return _CACHED
