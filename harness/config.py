"""Strict, typed, versioned benchmark specs.

A spec is a YAML file in ``benchmarks/``. Parsing is strict: an unknown key, a wrong type or a
missing field is a one-line :class:`ConfigError` naming the file, the key path and what is
allowed. CLI flags override spec values; the fully resolved spec is stored with every result.

The schema is the dataclasses below (defaults in one visible place). ``spec_version`` is the
version of this schema; protocols carry their own versions (see protocols.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from cxrbench.errors import ConfigError

SPEC_VERSION = 1


@dataclass
class PluginRef:
    """A plugin by name with its options (validated against the plugin's Options dataclass)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConditionMix:
    """Which demographic mix a generator is asked for (demographics.py): ``training`` (the
    training set's own, image by image), ``balanced`` over ``fields``, or ``given`` shares
    (``mix: {sex: {F: 0.8, M: 0.2}}``)."""

    demographics: typing.Literal["training", "balanced", "given"] = "training"
    fields: list[str] = field(default_factory=list)
    mix: dict[str, dict[str, float]] = field(default_factory=dict)
    #: age band edges for an age_band field: [18, 40, 65] -> <18, 18-39, 40-64, 65+
    age_bands: list[int] = field(default_factory=lambda: [18, 40, 65])


@dataclass
class GeneratorRef(PluginRef):
    #: option name -> list of values; one cell per combination (e.g. cfg_scale: [0, 4, 7.5])
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    #: label shown on the leaderboard (defaults to the name plus sweep values)
    label: str | None = None
    #: this generator's own post-processing chain (e.g. the api's watermark crop), applied to its
    #: images before the spec's chain(s); part of what its cells are keyed by
    postprocess: list[PluginRef] = field(default_factory=list)
    #: "shared": one fit serves every seed of the spec (trained with the generator's own `seed`
    #: option, 0 by default), so the spread over seeds is sampling + classifier; "per-seed": one fit
    #: per seed (its `seed` option = the cell's), so the spread includes the generator's training
    fit_seed: typing.Literal["shared", "per-seed"] = "shared"
    #: the run-time seed check (same condition twice -> same image; other seeds -> other images):
    #: "required" fails the cell when it fails; "warn" keeps the cell, marked (recorded either way)
    seed_check: typing.Literal["required", "warn"] = "required"
    #: the demographic mix the generator is asked for (default: the training set's own)
    conditions: ConditionMix = field(default_factory=ConditionMix)
    #: a packed fit (`cxrbench pack`: folder or .tar; relative to the spec file's folder) that
    #: replaces training: refused when its plugin version, code, options or data differ (fit_from.py)
    fit_from: str | None = None
    #: use fit_from although it was fitted on other training data (recorded in every cell)
    fit_from_data_differs: bool = False


@dataclass
class DatasetRef(PluginRef):
    root: str | None = None
    #: external test sets: the training dataset's label -> this dataset's label(s), e.g.
    #: {pneumonia: Pneumonia}, any of several {pneumonia: [Pneumonia, Consolidation]}, or a named
    #: rule {pneumonia: {all_of: [..]}} (labelmaps.py); labels of the same name map to themselves
    labels: dict[str, Union[str, list[str], dict[str, list[str]]]] = field(default_factory=dict)
    #: external test sets: the least positives / negatives a mapped label may leave on the test
    #: images (checked by `validate --data-root` and at run time; they decide nothing else)
    min_positives: int = 10
    min_negatives: int = 10
    #: external test sets: "test" (its official test split) or "all" (every image: allowed only
    #: when no model that is tested on it has seen any of its patients)
    test: typing.Literal["test", "all"] = "test"
    #: external test sets: when its data is not under the data root, skip it with a logged line
    #: (and say so in every record) instead of failing the run, e.g. RSNA "when present"
    optional: bool = False


@dataclass
class ClassifierRef(PluginRef):
    pretrained: bool = False


@dataclass
class SegmenterRef(PluginRef):
    pretrained: bool = False


@dataclass
class ProtocolRef:
    """A protocol by name, e.g. ``synthetic-only`` (latest version) or ``synthetic-only.v1``."""

    name: str
    #: synthetic-to-real ratios r (one cell each); default: the protocol's default ratios
    ratios: list[float] | None = None
    #: classifier schedule of the protocol: "quick" (CPU), "standard", "paper"
    schedule: str = "standard"


@dataclass
class EvaluationSettings:
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    threshold: str = "youden"
    #: metadata fields to report subgroups of, on every test set that carries them: sex, view,
    #: site, age_band (from age, cut at age_bands) or any field a dataset declares
    subgroups: list[str] = field(default_factory=list)
    #: age band edges: [18, 40, 65] -> <18, 18-39, 40-64, 65+
    age_bands: list[int] = field(default_factory=lambda: [18, 40, 65])
    #: a subgroup with fewer positives (negatives) shows "too few" for AUROC and FNR (FPR)
    subgroup_min_positives: int = 10
    subgroup_min_negatives: int = 10
    #: at most this many values of a field, the most frequent (e.g. the largest sites)
    subgroup_max_levels: int | None = 8


#: the EvaluationSettings fields that only shape the subgroup report
SUBGROUP_SETTINGS = ("age_bands", "subgroup_min_positives", "subgroup_min_negatives", "subgroup_max_levels")


QUALITY_FEATURES = ("domain", "xrv", "inception")


@dataclass
class QualitySettings:
    """What every cell measures on its synthetic set besides AUROC (``harness/quality/``)."""

    enabled: bool = True
    #: feature networks, in order; one that is not on disk is recorded as skipped with its reason
    features: list[str] = field(default_factory=lambda: ["domain", "xrv", "inception"])
    #: k of precision / recall / density / coverage (Naeem et al. 2020)
    k: int = 5
    #: MS-SSIM pairs drawn per label value (for the synthetic and for the real set)
    pairs: int = 200
    #: a synthetic image is a near copy when closer to a training image than this quantile of the
    #: training images' own leave-one-out nearest distances
    near_copy_quantile: float = 0.01
    #: the closest synthetic / training pairs saved side by side in the cell folder
    worst_pairs: int = 8
    #: training steps of the reference CNN (domain features, label fidelity); the default equals
    #: proxy-filter's, so both use one cached network
    reference_steps: int = 400


@dataclass
class SubsetSettings:
    """How the real-data axis draws its subsets (harness/subsets.py)."""

    #: seed of the per-stratum patient orders every size takes a prefix of (recorded)
    seed: int = 0
    #: the tuning split shrinks with the training split, but keeps at least this many images of
    #: each value of each label (model selection and thresholds need both)
    tuning_min_per_class: int = 10


@dataclass
class BenchmarkSpec:
    name: str
    spec_version: int = SPEC_VERSION
    description: str = ""
    dataset: DatasetRef = field(default_factory=lambda: DatasetRef(name="phantom"))
    #: extra real test sets (also the training source of mixed-external)
    external: list[DatasetRef] = field(default_factory=list)
    size: int = 32
    generators: list[GeneratorRef] = field(default_factory=lambda: [GeneratorRef(name="real")])
    postprocess: list[PluginRef] = field(default_factory=list)
    classifier: ClassifierRef = field(default_factory=lambda: ClassifierRef(name="tiny-cnn"))
    #: the downstream task (harness/tasks/): classification (the classifier) or segmentation
    #: (the segmenter, trained on image-mask pairs and scored by Dice on real masks)
    task: typing.Literal["classification", "segmentation"] = "classification"
    segmenter: SegmenterRef | None = None
    protocols: list[ProtocolRef] = field(default_factory=lambda: [ProtocolRef(name="real-only")])
    seeds: list[int] = field(default_factory=lambda: [0])
    #: the real-data axis: sizes of the real training data, as fractions of the training split
    #: (0.01, 0.25, 1.0) or image counts (50, 200); one cell per size, like seeds and ratios.
    #: Generators are fitted on each size's subset alone. None: the whole split, no axis.
    real_data: list[Union[int, float]] | None = None
    subsets: SubsetSettings = field(default_factory=SubsetSettings)
    device: str = "auto"
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    #: allow-list of plugin distributions ("name" or "name==version") for a reproducible run
    plugins: list[str] | None = None
    #: preprocessing of the real images: resize ("pad" | "stretch" | "center-crop"), equalize
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # The grid axes (harness/grid.py): instead of one ``dataset`` / ``classifier`` / ``postprocess``
    # chain, a spec may list several; the runner runs every combination (x generators x protocols
    # x ratios x seeds), sharing fits and synthetic sets through the content-addressed cache.
    #: training datasets, one grid slice each (instead of ``dataset``)
    datasets: list[DatasetRef] | None = None
    #: classifiers, one grid slice each (instead of ``classifier``)
    classifiers: list[ClassifierRef] | None = None
    #: post-processing chains, one grid slice each (instead of ``postprocess``); ``[]`` = none
    chains: list[list[PluginRef]] | None = None


# --------------------------------------------------------------------------- strict parsing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = " or ".join(_type_name(a) for a in args)
        return f"{inner} or null" if len(args) < len(typing.get_args(tp)) else inner
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(arg)}"
    if origin is dict:
        return "mapping"
    if origin is tuple:
        return "list"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, where: str, source: str) -> Any:
    """Check ``value`` against the type ``tp`` (recursively); return it converted."""

    def fail(extra: str = "") -> ConfigError:
        return ConfigError(
            f"{source}: {where}: expected {_type_name(tp)}, got {type(value).__name__} "
            f"{value!r}{extra}"
        )

    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where, source)
            except ConfigError:
                continue
        raise fail()
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(
            f"{source}: {where}: {value!r} is not allowed; allowed: "
            + ", ".join(repr(a) for a in typing.get_args(tp))
        )
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [coerce(v, inner, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise fail()
        args = typing.get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {str(k): coerce(v, vt, f"{where}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise fail()


def from_mapping(cls: type, data: Any, where: str = "", source: str = "<spec>") -> Any:
    """Build dataclass ``cls`` from a mapping, strictly (unknown/missing keys are errors)."""
    here = where or "(top level)"
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {here}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{source}: {_join(where, key)}: unknown key{hint}; allowed: {', '.join(fields)}"
            )
        kwargs[key] = coerce(value, hints[key], _join(where, key), source)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: {_join(where, name)}: missing required key")
    return cls(**kwargs)


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def to_dict(obj: Any) -> Any:
    """A resolved spec (or any dataclass) as plain JSON-able data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- loading


def load_spec(path: str | Path) -> BenchmarkSpec:
    """Read and strictly validate a spec file (structure and types only; see validate_plugins).
    The file itself is read strictly too (harness/specfile.py: UTF-8, no duplicate keys, bounded
    size, depth and alias expansion)."""
    from cxrbench.specfile import read_spec_yaml

    return spec_from_data(read_spec_yaml(path), str(path))


#: a grid axis and the single key it replaces: a spec gives one or the other, never both
GRID_AXES = {"datasets": "dataset", "classifiers": "classifier", "chains": "postprocess"}


def spec_dict(spec: BenchmarkSpec) -> dict[str, Any]:
    """A resolved spec as data that parses back to the same spec: for a grid axis that is set,
    the single key it replaces (whose default would otherwise be written too) is left out."""
    data = to_dict(spec)
    for axis, single in GRID_AXES.items():
        if data.get(axis) is not None:
            data.pop(single, None)
    return data


def spec_from_data(data: Any, source: str = "<spec>") -> BenchmarkSpec:
    if isinstance(data, dict):
        for axis, single in GRID_AXES.items():
            if data.get(axis) is not None and single in data:
                raise ConfigError(f"{source}: {axis}: give either {single!r} (one) or {axis!r} (a grid axis), not both")
    spec = from_mapping(BenchmarkSpec, data if data is not None else {}, "", source)
    if spec.spec_version != SPEC_VERSION:
        raise ConfigError(
            f"{source}: spec_version: {spec.spec_version} is not supported by this cxrbench "
            f"(supports {SPEC_VERSION})"
        )
    _check_values(spec, source)
    return spec


#: a spec's name becomes its default run folder: a plain name, never a path
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]+)?"
MAX_SEED = 2**32 - 1


def _check_subgroup_settings(ev: EvaluationSettings, source: str) -> None:
    if len(set(ev.subgroups)) != len(ev.subgroups) or any(not f for f in ev.subgroups):
        raise ConfigError(f"{source}: evaluation.subgroups: {ev.subgroups!r} names a field twice or an empty one")
    edges = ev.age_bands
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] <= 0:
        raise ConfigError(f"{source}: evaluation.age_bands: {edges!r} must be increasing positive ages, "
                          "e.g. [18, 40, 65] (bands <18, 18-39, 40-64, 65+)")
    for key in ("subgroup_min_positives", "subgroup_min_negatives"):
        if getattr(ev, key) < 1:
            raise ConfigError(f"{source}: evaluation.{key}: {getattr(ev, key)} must be at least 1")
    if ev.subgroup_max_levels is not None and ev.subgroup_max_levels < 2:
        raise ConfigError(f"{source}: evaluation.subgroup_max_levels: {ev.subgroup_max_levels} must be at least 2 "
                          "(or null: every value)")


def _check_values(spec: BenchmarkSpec, source: str) -> None:
    import re

    from cxrbench import protocols

    if not re.fullmatch(NAME_PATTERN, spec.name) or ".." in spec.name:
        raise ConfigError(f"{source}: name: {spec.name!r} is not a plain name (letters, digits, '.', '_', '-'; "
                          "no path); it names the run folder")
    if not re.fullmatch(DEVICE_PATTERN, spec.device):
        raise ConfigError(f"{source}: device: {spec.device!r} is not allowed; allowed: auto, cpu, mps, cuda, cuda:N")
    bad_seeds = [s for s in spec.seeds if not 0 <= s <= MAX_SEED]
    if bad_seeds:
        raise ConfigError(f"{source}: seeds: {bad_seeds[0]} is out of range; allowed: 0..{MAX_SEED}")
    if spec.evaluation.bootstrap_resamples < 10:
        raise ConfigError(f"{source}: evaluation.bootstrap_resamples: {spec.evaluation.bootstrap_resamples} "
                          "gives no meaningful interval; use at least 10 (1000 is the default)")
    _check_subgroup_settings(spec.evaluation, source)
    if spec.segmenter is not None and spec.task != "segmentation":
        raise ConfigError(f"{source}: segmenter: applies to task: segmentation (this spec's task is {spec.task})")

    if not (8 <= spec.size <= 1024):
        raise ConfigError(f"{source}: size: {spec.size} is out of range; allowed: 8..1024 px "
                          "(and what every plugin in the spec accepts)")
    if not spec.generators and any(protocols.get(p.name, source).uses_generator for p in spec.protocols):
        raise ConfigError(f"{source}: generators: empty, but a protocol needs a generator")
    if not spec.protocols:
        raise ConfigError(f"{source}: protocols: at least one protocol is required")
    if not spec.seeds:
        raise ConfigError(f"{source}: seeds: at least one seed is required")
    for axis in GRID_AXES:
        if getattr(spec, axis) is not None and not getattr(spec, axis):
            raise ConfigError(f"{source}: {axis}: empty; list at least one (or remove the key)")
    if spec.real_data is not None:
        from cxrbench.subsets import check_sizes

        if not spec.real_data:
            raise ConfigError(f"{source}: real_data: empty; list at least one size (or remove the key)")
        check_sizes(spec.real_data, f"{source}: real_data")
        if spec.subsets.tuning_min_per_class < 1:
            raise ConfigError(f"{source}: subsets.tuning_min_per_class: must be >= 1")
    for i, p in enumerate(spec.protocols):
        proto = protocols.get(p.name, f"{source}: protocols[{i}].name")
        if spec.real_data is not None and p.schedule not in protocols.BUDGET_SCHEDULES:
            raise ConfigError(f"{source}: protocols[{i}].schedule: {p.schedule!r} is epoch-defined, so across "
                              "real-data sizes it would compare training budgets, not data; with real_data use "
                              f"one of {', '.join(protocols.BUDGET_SCHEDULES)}")
        if spec.real_data is not None and proto.external_training:
            raise ConfigError(f"{source}: protocols[{i}]: {proto.id} trains on an external dataset's real split; "
                              "real_data cuts the training dataset's: run it in a spec without real_data")
        proto.check_ratios(p.ratios, f"{source}: protocols[{i}].ratios")
        if p.schedule not in proto.schedules:
            raise ConfigError(
                f"{source}: protocols[{i}].schedule: {p.schedule!r} is not allowed; "
                f"allowed: {', '.join(proto.schedules)}"
            )
    if not 0.5 <= spec.evaluation.confidence < 1:
        raise ConfigError(f"{source}: evaluation.confidence: must be in [0.5, 1)")
    if spec.evaluation.threshold not in ("youden", "f1"):
        raise ConfigError(f"{source}: evaluation.threshold: allowed: 'youden', 'f1'")
    q = spec.quality
    unknown = [f for f in q.features if f not in QUALITY_FEATURES]
    if unknown:
        raise ConfigError(f"{source}: quality.features: unknown {unknown}; allowed: {', '.join(QUALITY_FEATURES)}")
    if q.k < 1 or q.pairs < 1 or q.worst_pairs < 0 or q.reference_steps < 1 or not 0 < q.near_copy_quantile < 1:
        raise ConfigError(f"{source}: quality: need k >= 1, pairs >= 1, worst_pairs >= 0, reference_steps >= 1, "
                          "0 < near_copy_quantile < 1")
    allowed_prep = {"resize", "equalize", "on_unreadable", "min_side"}
    for key in spec.preprocessing:
        if key not in allowed_prep:
            raise ConfigError(f"{source}: preprocessing.{key}: unknown key; allowed: {', '.join(sorted(allowed_prep))}")
    from cxrbench.preprocessing import Preprocessing  # its own checks, at validate time

    try:
        from_mapping(Preprocessing, dict(spec.preprocessing), "preprocessing", source)
    except ConfigError as exc:
        raise ConfigError(exc if str(exc).startswith(source) else f"{source}: {exc}") from None


def plugin_options(cls: type, options: dict[str, Any], where: str, source: str) -> Any:
    """Build a plugin's Options dataclass from a mapping, strictly."""
    options_cls = getattr(cls, "Options", None)
    if options_cls is None or not dataclasses.is_dataclass(options_cls):
        if options:
            raise ConfigError(f"{source}: {where}: {cls.__name__} takes no options")
        return None
    try:
        return from_mapping(options_cls, options, where, source)
    except ConfigError as exc:
        if str(exc).startswith(source):
            raise
        # a check in the plugin's own Options (e.g. __post_init__): name the file and the key
        raise ConfigError(f"{source}: {where}: {exc}") from None
