"""Size presets and option metadata for generators with many hyperparameters.

A learned generator declares one dict of named presets (``{"tiny": {...}, "small": {...}}``)
and an ``Options`` dataclass whose hyperparameter fields all default to ``None`` ("take it
from the preset"). :func:`resolve_config` lays the fields the user set over the chosen preset;
the result is what the generator trains with and what the run records store.

Fields that do not change the fitted weights carry dataclass metadata, so that the harness
can leave them out of the fitted-generator cache key:

- :data:`SAMPLING`: only changes how images are sampled (a ``cfg_scale`` sweep reuses one fit);
- :data:`NOT_FIT`: changes neither weights nor images (where and how often ``fit()`` checkpoints);
- :data:`RUNTIME`: a wall-clock budget (a fit it cuts short is keyed by the steps it did).

Example (:class:`LearnedOptions` brings ``preset``, ``resolution``, the step and batch counts,
the checkpoint and budget fields and ``seed``)::

    @dataclass
    class MyOptions(LearnedOptions):
        preset: Literal["tiny", "small"] = "small"
        lr: Optional[float] = None
        guidance: Optional[float] = field(default=None, metadata=SAMPLING)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from cxrbench.errors import ConfigError

#: dataclass field metadata of options that only change sampling: the runner leaves fields
#: marked ``sampling`` out of the fitted-generator cache key (a cfg_scale sweep reuses one fit)
SAMPLING = {"sampling": True}
#: options that change neither weights nor images (where and how often fit() checkpoints)
NOT_FIT = {"sampling": True, "runtime": True}
#: a wall-clock budget: not in the fit key (a fit it cuts short is keyed by the steps it did)
RUNTIME = {"runtime": True}

#: options that never change the fitted weights (only how images are sampled or where/when
#: training is checkpointed). A fitted-generator cache can leave them out of its key.
RUNTIME_KEYS = ("checkpoint_dir", "checkpoint_every", "max_train_minutes", "train_steps")


@dataclass
class LearnedOptions:
    """The options :class:`~cxrbench.kit.LearnedGenerator` itself reads; a generator's
    ``Options`` subclasses it, adds its own hyperparameters (``None`` = the preset's value) and
    redeclares ``preset`` with the ``Literal`` of its preset names (the field keeps its place)."""

    preset: str = "small"
    resolution: Optional[int] = None
    train_steps: Optional[int] = None
    batch_size: Optional[int] = None
    gen_batch_size: Optional[int] = field(default=None, metadata=SAMPLING)
    #: stop training after this much wall-clock time (counted across resumed runs)
    max_train_minutes: Optional[float] = field(default=None, metadata=RUNTIME)
    #: where fit() saves every ``checkpoint_every`` steps and resumes from
    checkpoint_dir: Optional[str] = field(default=None, metadata=NOT_FIT)
    checkpoint_every: Optional[int] = field(default=None, metadata=NOT_FIT)
    seed: Optional[int] = None


def resolve_config(options: Any, presets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The preset named by ``options.preset`` with every non-None option field laid over it."""
    preset = getattr(options, "preset", None)
    if preset not in presets:
        raise ConfigError(
            f"unknown preset {preset!r}; known presets: {', '.join(presets)}"
        )
    cfg = dict(presets[preset])
    cfg["preset"] = preset
    for f in dataclasses.fields(options):
        if f.name == "preset":
            continue
        value = getattr(options, f.name)
        if value is not None:
            cfg[f.name] = value
        else:
            cfg.setdefault(f.name, None)
    for key, value in list(cfg.items()):  # YAML gives lists where tuples are meant
        if isinstance(value, list):
            cfg[key] = tuple(value)
    return cfg


def explicit_options(options: Any) -> dict[str, Any]:
    """The option fields the user actually set (non-None), preset excluded."""
    return {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if f.name != "preset" and getattr(options, f.name) is not None
    }


def config_hash(cfg: Mapping[str, Any], exclude: Sequence[str]) -> str:
    """A stable hash of the config entries that determine the fitted weights."""
    kept = {k: v for k, v in sorted(cfg.items()) if k not in exclude}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_learned_config(name: str, cfg: Mapping[str, Any]) -> None:
    """The rules every resolved learned-generator config obeys (ConfigError naming ``name``):
    ``resolution`` a power of two >= 8; ``train_steps``, ``batch_size`` and ``gen_batch_size``
    integers >= 1 when set; ``max_train_minutes`` > 0 when set."""
    res = cfg.get("resolution")
    if not isinstance(res, int) or res < 8 or res & (res - 1):
        raise ConfigError(f"{name}: resolution must be a power of two >= 8, got {res!r}")
    for key in ("train_steps", "batch_size", "gen_batch_size"):
        value = cfg.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name}: {key} must be an integer >= 1, got {value!r}")
    minutes = cfg.get("max_train_minutes")
    if minutes is not None and not float(minutes) > 0:
        raise ConfigError(f"{name}: max_train_minutes must be > 0 or null, got {minutes!r}")
