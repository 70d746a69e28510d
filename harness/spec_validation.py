"""Checking a parsed spec against the installed plugins: every name resolves to a plugin of its
kind, every options mapping builds that plugin's Options and passes its own checks, every dataset
of the grid (training and external) has the labels the spec maps, and the generator rows' fit
settings (``fit_seed``, ``fit_from``) are ones the generator can honour.

``cxrbench validate`` and every run's pre-flight call :func:`validate_plugins`; the schema itself
(types, keys, values that need no plugin) is checked by config.py when the spec is parsed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cxrbench.config import BenchmarkSpec, DatasetRef, GeneratorRef, PluginRef, plugin_options
from cxrbench.errors import ConfigError


def _check_fit_seed_per_seed(cls, ref: GeneratorRef, where: str, source: str) -> None:
    """`fit_seed: per-seed` sets the generator's `seed` option per cell: it needs one to set, and
    a generator that trains; a fixed `seed` beside it would be overwritten, so it is an error."""
    options = getattr(cls, "Options", None)
    names = {f.name for f in dataclasses.fields(options)} if dataclasses.is_dataclass(options) else set()
    if "seed" not in names or not cls.capabilities.needs_training:
        raise ConfigError(f"{source}: {where}.fit_seed: per-seed needs a generator that trains and has a `seed` "
                          f"option; {ref.name!r} has none: leave fit_seed out")
    if "seed" in ref.options or "seed" in ref.sweep:
        raise ConfigError(f"{source}: {where}.fit_seed: per-seed sets options.seed from each cell's seed; "
                          "remove options.seed (or the seed sweep), or use fit_seed: shared")


def _check_fit_from(cls, ref: GeneratorRef, where: str, source: str) -> None:
    """A pack holds one trained model: fit_from needs a generator that trains, and one fit per row."""
    if ref.fit_from_data_differs and ref.fit_from is None:
        raise ConfigError(f"{source}: {where}.fit_from_data_differs: applies to a row with fit_from; add fit_from: "
                          "PATH or remove it")
    if ref.fit_from is None:
        return
    if not cls.capabilities.needs_training:
        raise ConfigError(f"{source}: {where}.fit_from: {ref.name!r} is not trained, so there is no fit to take "
                          "from a pack; remove fit_from")
    if ref.fit_seed == "per-seed":
        raise ConfigError(f"{source}: {where}.fit_from: a pack holds one fit, fit_seed: per-seed asks for one per "
                          "seed; use fit_seed: shared")


def validate_plugins(spec: BenchmarkSpec, source: str, plugins=None) -> None:
    """Check every plugin name exists and its options match its Options dataclass.

    Loads plugin classes lazily registered as "module:Class" strings: importing a plugin
    module must stay light (heavy imports inside methods), so this does not import torch.
    """
    from cxrbench.registry import get_plugins

    plugins = plugins or get_plugins()
    # every plugin on every grid axis, named by where it sits in the file
    datasets = _axis(spec.datasets, "datasets", [("dataset", spec.dataset)])
    classifiers = _axis(spec.classifiers, "classifiers", [("classifier", spec.classifier)])
    chains = _axis(spec.chains, "chains", [("postprocess", spec.postprocess)])
    refs: list[tuple[str, str, PluginRef]] = [("dataset", w, r) for w, r in datasets]
    refs += [("dataset", f"external[{i}]", r) for i, r in enumerate(spec.external)]
    refs += [("generator", f"generators[{i}]", r) for i, r in enumerate(spec.generators)]
    refs += [("postprocessor", f"generators[{i}].postprocess[{k}]", p)
             for i, r in enumerate(spec.generators) for k, p in enumerate(r.postprocess)]
    refs += [("postprocessor", f"{w}[{k}]", r) for w, chain in chains for k, r in enumerate(chain)]
    if spec.task == "classification":
        refs += [("classifier", w, r) for w, r in classifiers]
    if spec.segmenter is not None:
        refs += [("segmenter", "segmenter", spec.segmenter)]
    from cxrbench.errors import PluginError
    from cxrbench.tasks import get_task

    classes = {}
    for kind, where, ref in refs:
        try:
            cls = plugins.load(kind, ref.name)
        except PluginError as exc:
            raise ConfigError(f"{source}: {where}.name: {exc}") from None
        classes[where] = cls
        opts = dict(ref.options)
        sweep = getattr(ref, "sweep", {}) or {}
        for key, values in sweep.items():
            if not values:
                raise ConfigError(f"{source}: {where}.sweep.{key}: needs at least one value")
            opts[key] = values[0]
        if getattr(ref, "fit_seed", "shared") == "per-seed":
            _check_fit_seed_per_seed(cls, ref, where, source)
        if kind == "generator":
            from cxrbench.demographics import check_mix

            check_mix(ref.conditions, ref.name, cls.capabilities, where, source)
            _check_fit_from(cls, ref, where, source)
        # Each plugin's own rules, at the spec's size: what a run would refuse, validate refuses.
        _check_plugin(cls, plugin_options(cls, opts, f"{where}.options", source), spec.size, where, source)
        for key, values in sweep.items():
            for v in values[1:]:
                _check_plugin(cls, plugin_options(cls, {**opts, key: v}, f"{where}.sweep.{key}", source),
                              spec.size, f"{where}.sweep.{key}={v!r}", source)
    for where, ref in datasets:
        _check_datasets(spec, ref, where, classes, source)
    get_task(spec.task).check_spec(spec, plugins, source)


def _axis(values: list | None, name: str, single: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(f"{name}[{i}]", v) for i, v in enumerate(values)] if values is not None else single


def _check_plugin(cls: type, options: Any, size: int, where: str, source: str) -> None:
    check = getattr(cls, "check_options", None)
    if check is None:
        return
    try:
        check(options, size)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {where}: {exc}") from None


def dataset_labels(cls: type, options: Any) -> tuple[str, ...]:
    """A dataset plugin's label names for these options, without touching its files."""
    try:
        return tuple(cls(None, options).label_names)
    except Exception:  # noqa: BLE001 - a plugin that needs its root to know: use the class's
        return tuple(getattr(cls, "label_names", ()))


def _check_datasets(spec: BenchmarkSpec, train: DatasetRef, where: str, classes: dict[str, type], source: str) -> None:
    """Label maps resolve (from the training dataset ``train`` at ``where`` to every external
    set), and test: all / labels: appear only where they mean something."""
    from cxrbench.labelmaps import resolve_label_map

    if train.labels or train.test != "test" or train.optional:
        raise ConfigError(f"{source}: {where}: 'labels', 'test' and 'optional' apply to external datasets only "
                          "(the training dataset's labels are the classifier's)")
    src_cls = classes[where]
    src_labels = dataset_labels(src_cls, plugin_options(src_cls, train.options, f"{where}.options", source))
    for i, ref in enumerate(spec.external):
        cls = classes[f"external[{i}]"]
        labels = dataset_labels(cls, plugin_options(cls, ref.options, f"external[{i}].options", source))
        if labels and src_labels:
            resolve_label_map(src_labels, labels, ref.labels, f"{source}: external[{i}]", ref.name)
