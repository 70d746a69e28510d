"""Shared machinery of the learned generators (``ddpm``, ``gan``).

- size presets: :func:`resolve_config` merges an ``Options`` dataclass (every hyperparameter an
  ``Optional`` field, ``None`` = take it from the preset) over one dict of presets;
- condition encoding: :class:`ConditionEncoder` turns a label vector plus optional demographics
  (sex, age, race) into a fixed-length float vector; it is fitted on the training split's
  metadata and saved as JSON inside the checkpoint;
- checkpoint I/O without pickle: safetensors for tensors (optimizer state included), JSON for
  everything else (:func:`save_tensors`, :func:`write_json`, :func:`optimizer_to_tensors`);
- :class:`EMA` of a module's weights;
- :class:`LearnedGenerator`: the fit / resume / generate / save / load skeleton both learned
  generators share, so that both honour the same contract (one image per condition, image i a
  function of ``conditions[i]`` only, progress bar, stats, resumable checkpoints);
- :func:`contact_sheet`: a labelled PNG grid, one row per label value.

torch is imported lazily (inside functions) so that importing the plugin package stays cheap.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from cxrbench.contracts import Condition, Generator, Split
from cxrbench.errors import ConfigError, PluginError

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
TRAIN_STATE_FILE = "train_state.json"

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


# --------------------------------------------------------------------------- presets


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


# --------------------------------------------------------------------------- conditions

_MISSING_STRINGS = {"", "nan", "none", "null", "unknown", "u", "?", "na", "n/a"}
_SEX_VALUES = {
    "m": 0.0, "male": 0.0, "man": 0.0, "0": 0.0,
    "f": 1.0, "female": 1.0, "woman": 1.0, "w": 1.0, "1": 1.0,
}


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and value.strip().lower() in _MISSING_STRINGS:
        return True
    return False


def _sex_value(value: Any) -> float | None:
    """0 = male, 1 = female, None = unknown (accepts 0/1, M/F, male/female...)."""
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if float(value) in (0.0, 1.0) else None
    return _SEX_VALUES.get(str(value).strip().lower())


def _age_value(value: Any) -> float | None:
    if _is_missing(value):
        return None
    try:
        age = float(str(value).strip().rstrip("Yy"))  # "063Y" (DICOM) -> 63
    except ValueError:
        return None
    return None if math.isnan(age) else age


def _race_value(value: Any) -> str | None:
    return None if _is_missing(value) else str(value).strip().lower()


class ConditionEncoder:
    """Label vector + demographics -> fixed-length float vector.

    Layout: ``[labels (L) | sex_known, sex_female | age_known, age_01 | race one-hot (R)]``;
    a demographic block is present only when the training split had at least one known value
    of it. Unknown values encode as zeros with ``known = 0``. Label NaN encodes as 0.
    """

    def __init__(
        self,
        label_names: Sequence[str],
        *,
        sex: bool = False,
        age_range: tuple[float, float] | None = None,
        races: Sequence[str] | None = None,
    ):
        self.label_names = tuple(label_names)
        self.sex = bool(sex)
        self.age_range = tuple(age_range) if age_range is not None else None
        self.races = tuple(races) if races else None

    # ---- fitting and persistence
    @classmethod
    def fit(cls, split: Split) -> ConditionEncoder:
        meta = split.metadata or {}
        sexes = [_sex_value(v) for v in meta.get("sex", [])]
        ages = [a for a in (_age_value(v) for v in meta.get("age", [])) if a is not None]
        races = sorted({r for r in (_race_value(v) for v in meta.get("race", [])) if r is not None})
        return cls(
            split.label_names,
            sex=any(s is not None for s in sexes),
            age_range=(min(ages), max(ages)) if ages else None,
            races=races or None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "label_names": list(self.label_names),
            "sex": self.sex,
            "age_range": list(self.age_range) if self.age_range else None,
            "races": list(self.races) if self.races else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConditionEncoder:
        return cls(
            data["label_names"],
            sex=data.get("sex", False),
            age_range=tuple(data["age_range"]) if data.get("age_range") else None,
            races=data.get("races"),
        )

    @property
    def dim(self) -> int:
        return (
            len(self.label_names)
            + (2 if self.sex else 0)
            + (2 if self.age_range else 0)
            + (len(self.races) if self.races else 0)
        )

    def describe(self) -> str:
        parts = [f"labels {list(self.label_names)}"]
        if self.sex:
            parts.append("sex")
        if self.age_range:
            parts.append(f"age in [{self.age_range[0]:g}, {self.age_range[1]:g}]")
        if self.races:
            parts.append(f"race {list(self.races)}")
        return ", ".join(parts)

    # ---- encoding
    def _row(self, labels: Sequence[float], demographics: Mapping[str, Any]) -> list[float]:
        row = [0.0 if (v is None or math.isnan(float(v))) else float(v) for v in labels]
        if self.sex:
            s = _sex_value(demographics.get("sex"))
            row += [0.0, 0.0] if s is None else [1.0, s]
        if self.age_range:
            a = _age_value(demographics.get("age"))
            if a is None:
                row += [0.0, 0.0]
            else:
                lo, hi = self.age_range
                row += [1.0, min(1.0, max(0.0, (a - lo) / (hi - lo))) if hi > lo else 0.5]
        if self.races:
            r = _race_value(demographics.get("race"))
            row += [1.0 if r == name else 0.0 for name in self.races]
        return row

    def encode(self, conditions: Sequence[Condition]) -> torch.Tensor:
        import torch

        rows = []
        for i, cond in enumerate(conditions):
            if len(cond.labels) != len(self.label_names):
                raise PluginError(
                    f"condition {i} has {len(cond.labels)} label(s) but the generator was fitted "
                    f"on {len(self.label_names)}: {list(self.label_names)}"
                )
            rows.append(self._row(cond.labels, cond.demographics or {}))
        return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), self.dim)

    def encode_split(self, split: Split) -> torch.Tensor:
        import torch

        labels = split.labels.detach().cpu().double().tolist()
        meta = split.metadata or {}
        n = len(split)
        rows = []
        for i in range(n):
            demo = {k: meta[k][i] for k in ("sex", "age", "race") if k in meta}
            rows.append(self._row(labels[i], demo))
        return torch.tensor(rows, dtype=torch.float32).reshape(n, self.dim)


# --------------------------------------------------------------------------- images


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> uint8 (N, 1, size, size) (area when shrinking, bilinear else)."""
    import torch
    import torch.nn.functional as F

    if images.shape[-2:] == (size, size):
        return images.contiguous()
    out = []
    for start in range(0, images.shape[0], 512):  # bounded memory on large splits
        x = images[start : start + 512].float()
        if images.shape[-1] >= size and images.shape[-2] >= size:
            x = F.interpolate(x, size=(size, size), mode="area")
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], size, size))


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float() / 127.5 - 1.0


def from_model_range(x: torch.Tensor, size: int) -> torch.Tensor:
    """float [-1, 1] (N, 1, h, w) -> uint8 (N, 1, size, size), resized when h != size."""
    import torch
    import torch.nn.functional as F

    x = x.float().cpu()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def data_fingerprint(split: Split) -> str:
    """Hash of the training images, labels and metadata (to refuse resuming on other data)."""
    h = hashlib.sha256()
    h.update(split.images.detach().cpu().contiguous().numpy().tobytes())
    h.update(split.labels.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(json.dumps(split.metadata, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def seed_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded from any Python int (negative or >= 2**64 folded in)."""
    import torch

    return torch.Generator().manual_seed(int(seed) % (2**63))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step: the run is reproducible and resumes exactly."""
    return seed_generator(int(seed) * 1_000_003 + int(step) * 7919 + 17)


def padded_chunks(n: int, batch_size: int) -> list[tuple[list[int], int]]:
    """Split range(n) into chunks of exactly ``batch_size`` indices, the last one padded by
    repeating its last index; returns (indices, number of real ones). Every image is then
    computed in a batch of the same shape, which makes kernels pick the same algorithm, so
    image i is bit-identical whatever the rest of the request (checked on CPU)."""
    chunks = []
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        real = len(idx)
        idx += [idx[-1]] * (batch_size - real)
        chunks.append((idx, real))
    return chunks


# --------------------------------------------------------------------------- checkpoints


def _atomic_write_bytes(path: Path, writer: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    writer(tmp)
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Write a flat dict of tensors with safetensors (copies: shared storage is fine)."""
    from safetensors.torch import save_file

    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    _atomic_write_bytes(Path(path), lambda p: save_file(flat, str(p), metadata=dict(metadata or {})))


def load_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device=str(device))


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default)

    def _w(p: Path) -> None:
        p.write_text(text + "\n", encoding="utf-8")

    _atomic_write_bytes(Path(path), _w)


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def optimizer_to_tensors(optimizer: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (safetensors) and JSON-able metadata."""
    import torch

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"param_groups": sd["param_groups"], "scalars": {}, "tensor_keys": {}}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
                meta["tensor_keys"].setdefault(str(idx), []).append(key)
            else:
                meta["scalars"].setdefault(str(idx), {})[key] = value
    return tensors, json.loads(json.dumps(meta, default=_json_default))


def optimizer_from_tensors(optimizer: Any, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for idx, keys in meta.get("tensor_keys", {}).items():
        state.setdefault(int(idx), {}).update({k: tensors[f"{idx}.{k}"] for k in keys})
    for idx, scalars in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = [dict(g) for g in meta["param_groups"]]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# --------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied).

    The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` so that short runs
    (the tiny preset) still get a useful average.
    """

    def __init__(self, model: Any, decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def update(self, model: Any) -> None:
        import torch

        self.num_updates += 1
        n = self.num_updates
        d = min(self.decay, (1.0 + n) / (10.0 + n))
        with torch.no_grad():
            for ps, p in zip(self.shadow.parameters(), model.parameters()):
                ps.lerp_(p.detach().to(ps.dtype), 1.0 - d)
            for bs, b in zip(self.shadow.buffers(), model.buffers()):
                bs.copy_(b)


def count_parameters(module: Any, trainable_only: bool = True) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only))


def peak_memory_mb(device: str) -> float:
    """CUDA: max allocated by torch; CPU: the process's max resident set size."""
    if str(device).startswith("cuda"):
        import torch

        return float(torch.cuda.max_memory_allocated(torch.device(device))) / 2**20
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss) / (2**20 if sys.platform == "darwin" else 2**10)


# --------------------------------------------------------------------------- base class


class LearnedGenerator(Generator):
    """fit / resume / generate / save / load shared by the learned generators.

    A subclass defines ``PRESETS``, ``Options`` (fields that only change sampling carry
    ``metadata=SAMPLING``) and the hooks
    :meth:`_build`, :meth:`_train_step`, :meth:`_sample`, :meth:`_inference_modules`,
    :meth:`_training_state` / :meth:`_load_training_state`.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def sampling_keys(cls) -> tuple[str, ...]:
        """Options that do not change the fitted weights (marked ``sampling`` in Options)."""
        return tuple(f.name for f in dataclasses.fields(cls.Options) if f.metadata.get("sampling"))

    def __init__(self, options: Any = None, *, size: int = 64, device: str = "cpu"):
        super().__init__(options, size=size, device=device)
        if str(self.device) == "auto":
            from cxrbench.device import resolve_device

            self.device = resolve_device("auto")
        self.cfg = resolve_config(self.options, self.PRESETS)
        self._validate_cfg(self.cfg)
        self.encoder: ConditionEncoder | None = None
        self._fitted = False
        self.train_stats: dict[str, Any] = {}
        #: where fit() checkpoints and resumes (the runner may set it after construction)
        self.checkpoint_dir = self.cfg.get("checkpoint_dir")
        #: progress bars of generate(): None = $CXRBENCH_PROGRESS; fit(progress=...) sets it
        self.progress: bool | None = None

    # ---- hooks
    @classmethod
    def _validate_cfg(cls, cfg: dict[str, Any]) -> None:
        """Raise ConfigError for a resolved config that cannot train (a classmethod, so that
        ``cxrbench validate`` runs the same rules without building anything)."""
        res = cfg.get("resolution")
        if not isinstance(res, int) or res < 8 or res & (res - 1):
            raise ConfigError(f"{cls.name}: resolution must be a power of two >= 8, got {res!r}")
        for key in ("train_steps", "batch_size", "gen_batch_size"):
            value = cfg.get(key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{cls.name}: {key} must be an integer >= 1, got {value!r}")
        minutes = cfg.get("max_train_minutes")
        if minutes is not None and not float(minutes) > 0:
            raise ConfigError(f"{cls.name}: max_train_minutes must be > 0 or null, got {minutes!r}")

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        cls._validate_cfg(resolve_config(options if options is not None else cls.Options(), cls.PRESETS))

    def effective_options(self) -> dict[str, Any]:
        """The resolved config: every preset value filled in (what the record stores)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.cfg.items()}

    def _build(self, cond_dim: int) -> None:
        """Create the networks (and optimizers) for ``cond_dim``-long condition vectors."""
        raise NotImplementedError

    def _train_step(self, step: int, x: torch.Tensor, c: torch.Tensor, g: torch.Generator) -> dict[str, float]:
        """One optimisation step on a batch in [-1, 1]; returns losses (first = the main one)."""
        raise NotImplementedError

    def _sample(self, c: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """float [-1, 1] (B, 1, res, res) for condition vectors ``c`` and per-image seeds."""
        raise NotImplementedError

    def _inference_modules(self) -> dict[str, Any]:
        """{"model": live weights, "ema": averaged weights} written by :meth:`save`."""
        raise NotImplementedError

    def _training_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Extra tensors of a training checkpoint (optimizers, discriminator...), by file stem."""
        return {}

    def _load_training_state(self, tensors: Mapping[str, Mapping[str, torch.Tensor]], meta: Mapping[str, Any]) -> None:
        pass

    def _training_meta(self) -> dict[str, Any]:
        return {}

    # ---- shared
    @property
    def native_size(self) -> int:
        return int(self.cfg["resolution"])

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def parameter_counts(self) -> dict[str, int]:
        mods = self._inference_modules()
        return {k: count_parameters(v) for k, v in mods.items() if k != "ema"}

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise PluginError(
                f"generator {self.name!r} is not fitted: call fit(train) or load(directory) "
                "before generate()"
            )

    def _weights_hash(self) -> str:
        return config_hash(self.cfg, exclude=self.sampling_keys() + RUNTIME_KEYS)

    def _config_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "generator": self.name,
            "generator_version": self.version,
            "config": self.cfg,
            "weights_hash": self._weights_hash(),
            "encoder": self.encoder.to_json() if self.encoder else None,
            "native_size": self.native_size,
            "train_stats": self.train_stats,
        }

    def _seeded_build(self, cond_dim: int) -> None:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.cfg.get("seed") or 0))
            self._build(cond_dim)

    # ---- fit
    def fit(self, train: Split, *, progress: bool = True) -> dict[str, Any]:
        import torch

        from cxrbench.progress import bar

        cfg = self.cfg
        self.progress = progress
        if len(train) == 0:
            raise PluginError(f"{self.name}: cannot fit on an empty training split")
        if train.images.dtype != torch.uint8 or train.images.ndim != 4 or train.images.shape[1] != 1:
            raise PluginError(
                f"{self.name}: training images must be uint8 (N, 1, H, W), got "
                f"{train.images.dtype} {tuple(train.images.shape)}"
            )
        res = self.native_size
        self.encoder = ConditionEncoder.fit(train)
        conds = self.encoder.encode_split(train)
        images = resize_uint8(train.images.detach().cpu(), res)
        fingerprint = data_fingerprint(train)
        self._seeded_build(self.encoder.dim)

        step, elapsed_before, resumed_from, smoothed = 0, 0.0, None, None
        ckdir = Path(self.checkpoint_dir) if self.checkpoint_dir else None
        if ckdir is not None:
            state = self._try_resume(ckdir, fingerprint)
            if state is not None:
                step = resumed_from = int(state["step"])
                elapsed_before = float(state.get("train_seconds", 0.0))
                smoothed = state.get("smoothed_loss")

        dev = self.device
        images = images.to(dev)
        conds = conds.to(dev)
        n = images.shape[0]
        total = int(cfg["train_steps"])
        batch = int(cfg["batch_size"])
        budget = float(cfg["max_train_minutes"]) * 60.0 if cfg.get("max_train_minutes") else None
        every = int(cfg.get("checkpoint_every") or 0)
        seed = int(cfg.get("seed") or 0)
        if str(dev).startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(torch.device(dev))

        start_step = step
        stopped_by_budget = False
        losses: dict[str, float] = {}
        t0 = time.perf_counter()
        pbar = bar(total=total, initial=step, desc=f"{self.name} fit", unit="step", enabled=progress)
        try:
            while step < total:
                run_seconds = time.perf_counter() - t0
                if budget is not None and elapsed_before + run_seconds >= budget:
                    stopped_by_budget = True
                    break
                g = step_generator(seed, step)
                idx = torch.randint(n, (batch,), generator=g).to(dev)
                x = to_model_range(images[idx])
                c = conds[idx]
                losses = self._train_step(step, x, c, g)
                main = next(iter(losses.values()))
                smoothed = main if smoothed is None else 0.95 * smoothed + 0.05 * main
                step += 1
                pbar.update(1)
                if step % 10 == 0 or step == total:
                    rate = (step - start_step) * batch / max(1e-9, time.perf_counter() - t0)
                    pbar.set_postfix({**{k: f"{v:.4f}" for k, v in losses.items()}, "img/s": f"{rate:.0f}"})
                if ckdir is not None and every > 0 and step % every == 0 and step < total:
                    self._save_training_checkpoint(
                        ckdir, step, elapsed_before + time.perf_counter() - t0, fingerprint, smoothed
                    )
        finally:
            pbar.close()
        run_seconds = time.perf_counter() - t0
        self._fitted = True
        self.train_stats = {
            "train_seconds": elapsed_before + run_seconds,
            "train_seconds_this_run": run_seconds,
            "steps": step,
            "steps_this_run": step - start_step,
            "resumed_from_step": resumed_from,
            "images_per_s": (step - start_step) * batch / run_seconds if run_seconds > 0 else 0.0,
            "final_loss": smoothed,
            **{f"final_{k}": v for k, v in losses.items()},
            "peak_memory_mb": peak_memory_mb(dev),
            "stopped_by_time_budget": stopped_by_budget,
            # a fit is defined by its steps: one cut short by max_train_minutes is a different
            # model, which the runner caches apart and marks in every table
            "truncated": step < total,
            "steps_requested": total,
            "batch_size": batch,
            "native_size": res,
            "parameters": self.parameter_counts(),
            "device": str(dev),
        }
        if ckdir is not None:
            self._save_training_checkpoint(ckdir, step, self.train_stats["train_seconds"], fingerprint, smoothed)
        return dict(self.train_stats)

    def _save_training_checkpoint(self, ckdir: Path, step: int, seconds: float, fingerprint: str, smoothed: float | None) -> None:
        ckdir.mkdir(parents=True, exist_ok=True)
        self._write_weights(ckdir)
        for stem, tensors in self._training_state().items():
            save_tensors(ckdir / f"{stem}.safetensors", tensors)
        meta = self._training_meta()
        write_json(
            ckdir / TRAIN_STATE_FILE,
            {
                "step": step,
                "train_seconds": seconds,
                "data_fingerprint": fingerprint,
                "weights_hash": self._weights_hash(),
                "smoothed_loss": smoothed,
                "meta": meta,
            },
        )

    def _try_resume(self, ckdir: Path, fingerprint: str) -> dict[str, Any] | None:
        state_path = ckdir / TRAIN_STATE_FILE
        if not state_path.exists():
            return None
        state = read_json(state_path)
        if state.get("data_fingerprint") != fingerprint:
            raise ConfigError(
                f"{self.name}: checkpoint_dir {str(ckdir)!r} holds a run on other training data; "
                "delete it or choose another checkpoint_dir"
            )
        if state.get("weights_hash") != self._weights_hash():
            raise ConfigError(
                f"{self.name}: checkpoint_dir {str(ckdir)!r} holds a run with another "
                "configuration; delete it or choose another checkpoint_dir"
            )
        self._read_weights(ckdir)
        extra = {}
        for stem in self._training_state():
            path = ckdir / f"{stem}.safetensors"
            if path.exists():
                extra[stem] = load_tensors(path, self.device)
        self._load_training_state(extra, state.get("meta", {}))
        return state

    # ---- generate
    def generate(self, conditions: Sequence[Condition]) -> torch.Tensor:
        import torch

        from cxrbench.progress import bar

        self._require_fitted()
        conditions = list(conditions)
        n = len(conditions)
        if n == 0:
            return torch.zeros((0, 1, self.size, self.size), dtype=torch.uint8)
        c_all = self.encoder.encode(conditions)
        seeds = [int(cond.seed) for cond in conditions]
        out = []
        pbar = bar(total=n, desc=f"{self.name} generate", unit="img", enabled=self.progress if n > 64 else False)
        try:
            for idx, real in padded_chunks(n, int(self.cfg["gen_batch_size"])):
                with torch.no_grad():
                    x = self._sample(c_all[idx].to(self.device), [seeds[i] for i in idx])
                out.append(from_model_range(x[:real], self.size))
                pbar.update(real)
        finally:
            pbar.close()
        return torch.cat(out)

    # ---- save / load
    def _write_weights(self, directory: Path) -> None:
        mods = self._inference_modules()
        save_tensors(directory / MODEL_FILE, mods["model"].state_dict())
        save_tensors(directory / EMA_FILE, mods["ema"].state_dict())
        write_json(directory / CONFIG_FILE, self._config_json())

    def _read_weights(self, directory: Path) -> None:
        mods = self._inference_modules()
        mods["model"].load_state_dict(load_tensors(directory / MODEL_FILE, self.device))
        mods["ema"].load_state_dict(load_tensors(directory / EMA_FILE, self.device))

    def save(self, directory: Path) -> None:
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._write_weights(directory)

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        cfg_path = directory / CONFIG_FILE
        if not cfg_path.exists():
            raise PluginError(f"{self.name}: no {CONFIG_FILE} in {str(directory)!r}: not a saved {self.name} generator")
        data = read_json(cfg_path)
        if data.get("generator") != self.name:
            raise PluginError(
                f"{str(directory)!r} holds a {data.get('generator')!r} checkpoint, not {self.name!r}"
            )
        if int(data.get("format", 0)) > FORMAT_VERSION:
            raise PluginError(f"{self.name}: checkpoint format {data.get('format')} is newer than this version reads")
        saved = dict(data["config"])
        for key, value in list(saved.items()):
            if isinstance(value, list):
                saved[key] = tuple(value)
        # the checkpoint decides the architecture; explicit options still choose how to sample
        explicit = explicit_options(self.options)
        for key in self.sampling_keys():
            if key in explicit:
                saved[key] = explicit[key]
        self._validate_cfg(saved)
        self.cfg = saved
        self.encoder = ConditionEncoder.from_json(data["encoder"])
        self._seeded_build(self.encoder.dim)
        self._read_weights(directory)
        self.train_stats = dict(data.get("train_stats") or {})
        self._fitted = True


# --------------------------------------------------------------------------- contact sheet


def contact_sheet(
    generator: Generator,
    label_names: Sequence[str],
    path: str | os.PathLike,
    n_per_label: int = 8,
    seed: int = 0,
    *,
    demographics: Mapping[str, Any] | None = None,
    scale: int | None = None,
) -> Path:
    """Write a labelled PNG grid: one row per label value, ``n_per_label`` images per row.

    One label: rows ``name=0`` and ``name=1``. Several labels: a row with every label 0
    ("none") and one row per label with only that label set to 1. Column j uses seed
    ``seed + j`` in every row, so rows differ only by their condition.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    label_names = list(label_names)
    L = len(label_names)
    rows: list[tuple[str, tuple[float, ...]]] = []
    if L == 1:
        rows = [(f"{label_names[0]}=0", (0.0,)), (f"{label_names[0]}=1", (1.0,))]
    else:
        rows.append(("none", tuple(0.0 for _ in range(L))))
        for j, name in enumerate(label_names):
            rows.append((f"{name}=1", tuple(1.0 if k == j else 0.0 for k in range(L))))
    conditions = [
        Condition(labels=vec, seed=seed + j, demographics=dict(demographics or {}))
        for _, vec in rows
        for j in range(n_per_label)
    ]
    images = generator.generate(conditions).cpu().numpy()[:, 0]  # (R*n, H, W) uint8
    h, w = images.shape[1:]
    scale = scale or max(1, 96 // max(h, w))
    cell_h, cell_w = h * scale, w * scale
    label_w = 8 + 7 * max(len(name) for name, _ in rows)
    pad = 2
    sheet = Image.new("L", (label_w + n_per_label * (cell_w + pad) + pad, len(rows) * (cell_h + pad) + pad), 255)
    draw = ImageDraw.Draw(sheet)
    for r, (name, _) in enumerate(rows):
        y = pad + r * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 5), name, fill=0)
        for j in range(n_per_label):
            img = Image.fromarray(np.ascontiguousarray(images[r * n_per_label + j]), mode="L")
            if scale != 1:
                img = img.resize((cell_w, cell_h), Image.NEAREST)
            sheet.paste(img, (label_w + pad + j * (cell_w + pad), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
