"""The base class of learned generators: fit / resume / generate / save / load, done once.

Subclass :class:`LearnedGenerator` to write a generator that trains a network: give it
``PRESETS``, an ``Options`` dataclass (see :mod:`cxrbench.kit.presets`) and the hooks listed
on the class. It then honours the generator contract like every learned generator: encoded
conditions, image i a function of ``conditions[i]`` only, reproducible steps, a time budget
that marks the fit truncated, resumable checkpoints refused on other data or another
configuration, progress bars, fit statistics and pickle-free ``save`` / ``load``. The
built-in ``ddpm`` and ``gan`` generators (``plugins/generators/``) are complete examples.

torch is imported inside the methods, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from cxrbench.contracts import Condition, Generator, GeneratorCapabilities, Split
from cxrbench.errors import PluginError
from cxrbench.kit import checkpoints as ck
from cxrbench.kit.conditioning import ConditionEncoder
from cxrbench.kit.images import count_parameters, data_fingerprint, from_model_range, padded_chunks
from cxrbench.kit.images import peak_memory_mb, resize_uint8, step_generator, to_model_range
from cxrbench.kit.presets import RUNTIME_KEYS, check_learned_config, config_hash, explicit_options, resolve_config
from cxrbench.kit.runtime import bar, resolve_device

if TYPE_CHECKING:  # pragma: no cover
    import torch


class OptimizerEMAState:
    """The checkpoint hooks of a :class:`LearnedGenerator` whose :meth:`~LearnedGenerator._build`
    sets ``self.optimizer`` (one optimizer over every trained weight) and ``self.ema`` (an
    :class:`~cxrbench.kit.EMA`): a training checkpoint keeps the optimizer's tensors, its JSON
    part and the EMA's update count, and a resumed fit gets them back. List it before
    :class:`LearnedGenerator` among the bases."""

    def _training_state(self):
        tensors, self._opt_meta = ck.optimizer_to_tensors(self.optimizer)
        return {"optimizer": tensors}

    def _training_meta(self) -> dict[str, Any]:
        # called right after _training_state(), which left the optimizer's JSON part here
        return {"optimizer": getattr(self, "_opt_meta", None), "ema_updates": self.ema.num_updates}

    def _load_training_state(self, tensors, meta) -> None:
        if "optimizer" in tensors and meta.get("optimizer"):
            ck.optimizer_from_tensors(self.optimizer, tensors["optimizer"], meta["optimizer"])
        self.ema.num_updates = int(meta.get("ema_updates", 0))


class LearnedGenerator(Generator):
    """fit / resume / generate / save / load shared by the learned generators.

    A subclass defines ``name``, ``version``, ``PRESETS``, ``Options`` (a
    :class:`~cxrbench.kit.LearnedOptions`), ``capabilities`` if it differs from the default below
    (fields that only change sampling carry ``metadata=SAMPLING``) and the hooks
    :meth:`_build`, :meth:`_train_step`, :meth:`_sample`, :meth:`_inference_modules`, and
    optionally :meth:`_training_state` / :meth:`_training_meta` / :meth:`_load_training_state`
    (extra state of a resumable checkpoint) and :meth:`_validate_cfg` (call ``super()``).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: the :class:`ConditionEncoder` gives every learned generator labels and demographics, and
    #: it needs a fit; a subclass that takes masks (or text) says so with its own value
    capabilities: ClassVar[GeneratorCapabilities] = GeneratorCapabilities(labels=True, demographics=True, needs_training=True)

    @classmethod
    def sampling_keys(cls) -> tuple[str, ...]:
        """Options that do not change the fitted weights (marked ``sampling`` in Options)."""
        return tuple(f.name for f in dataclasses.fields(cls.Options) if f.metadata.get("sampling"))

    def __init__(self, options: Any = None, *, size: int = 64, device: str = "cpu"):
        super().__init__(options, size=size, device=device)
        if str(self.device) == "auto":
            self.device = resolve_device("auto")
        self.cfg = self._resolve_cfg(self.options)
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
    def _resolve_cfg(cls, options: Any) -> dict[str, Any]:
        """The preset named by ``options.preset`` with the options set laid over it (a subclass
        may fill or drop entries that depend on others, e.g. ``ldm``'s text options)."""
        return resolve_config(options, cls.PRESETS)

    @classmethod
    def _validate_cfg(cls, cfg: dict[str, Any]) -> None:
        """Raise ConfigError for a resolved config that cannot train (a classmethod, so that
        ``cxrbench validate`` runs the same rules without building anything)."""
        check_learned_config(cls.name, cfg)

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        cls._validate_cfg(cls._resolve_cfg(options if options is not None else cls.Options()))

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

    def _condition_tensors(self, conditions: Sequence[Condition]) -> torch.Tensor | None:
        """Per-condition tensors beyond the encoded vector (a mask, say), or None. When not
        None, :meth:`_sample` receives row i for image i as ``extra=``."""
        return None

    def _inference_modules(self) -> dict[str, Any]:
        """{"model": live weights, "ema": averaged weights} written by :meth:`save`."""
        raise NotImplementedError

    def _training_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Extra tensors of a training checkpoint (optimizers, discriminator...), by file stem."""
        return {}

    def _load_training_state(self, tensors: Mapping[str, Mapping[str, torch.Tensor]], meta: Mapping[str, Any]) -> None:
        """Put back what :meth:`_training_state` and :meth:`_training_meta` saved (on resume)."""

    def _training_meta(self) -> dict[str, Any]:
        """JSON-able training state (optimizer metadata...), saved with the checkpoint."""
        return {}

    def _total_steps(self) -> int:
        """Optimisation steps of a complete fit (a multi-stage model sums its stages)."""
        return int(self.cfg["train_steps"])

    def _training_images(self, train: Split) -> torch.Tensor:
        """uint8 (N, C, res, res) the training batches are drawn from, at the native
        resolution. Channel 0 is the image; a subclass may stack more (a mask, say): each
        batch reaches :meth:`_train_step` in [-1, 1] with all its channels."""
        return resize_uint8(train.images.detach().cpu(), self.native_size)

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
            raise PluginError(f"generator {self.name!r} is not fitted: call fit(train) or load(directory) before generate()")

    def _weights_hash(self) -> str:
        return config_hash(self.cfg, exclude=self.sampling_keys() + RUNTIME_KEYS)

    def _config_json(self) -> dict[str, Any]:
        return {
            "format": ck.FORMAT_VERSION,
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

        cfg = self.cfg
        self.progress = progress
        if len(train) == 0:
            raise PluginError(f"{self.name}: cannot fit on an empty training split")
        if train.images.dtype != torch.uint8 or train.images.ndim != 4 or train.images.shape[1] != 1:
            shape = f"{train.images.dtype} {tuple(train.images.shape)}"
            raise PluginError(f"{self.name}: training images must be uint8 (N, 1, H, W), got {shape}")
        res = self.native_size
        self.encoder = ConditionEncoder.fit(train)
        conds = self.encoder.encode_split(train)
        images = self._training_images(train)
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
        images, conds = images.to(dev), conds.to(dev)
        n, total, batch = images.shape[0], self._total_steps(), int(cfg["batch_size"])
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
                #: rows of this batch in the training images: for subclasses that cache
                #: per-image tensors (``ldm`` encodes every image once for its second stage)
                self.batch_index = idx
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
        state = {"step": step, "train_seconds": seconds, "data_fingerprint": fingerprint,
                 "weights_hash": self._weights_hash(), "smoothed_loss": smoothed}
        ck.write_training_checkpoint(ckdir, self._inference_modules(), self._config_json(),
                                     self._training_state(), {**state, "meta": self._training_meta()})

    def _try_resume(self, ckdir: Path, fingerprint: str) -> dict[str, Any] | None:
        state = ck.read_training_state(ckdir, self.name, data_fingerprint=fingerprint, weights_hash=self._weights_hash())
        if state is not None:
            ck.read_weights(ckdir, self._inference_modules(), self.device)
            extra = ck.load_tensor_files(ckdir, self._training_state(), self.device)
            self._load_training_state(extra, state.get("meta", {}))
        return state

    # ---- generate
    def generate(self, conditions: Sequence[Condition]) -> torch.Tensor:
        import torch

        self._require_fitted()
        conditions = list(conditions)
        n = len(conditions)
        if n == 0:
            return torch.zeros((0, 1, self.size, self.size), dtype=torch.uint8)
        c_all = self.encoder.encode(conditions)
        extra = self._condition_tensors(conditions)
        seeds = [int(cond.seed) for cond in conditions]
        out = []
        pbar = bar(total=n, desc=f"{self.name} generate", unit="img", enabled=self.progress if n > 64 else False)
        try:
            for idx, real in padded_chunks(n, int(self.cfg["gen_batch_size"])):
                with torch.no_grad():
                    kwargs = {} if extra is None else {"extra": extra[idx].to(self.device)}
                    x = self._sample(c_all[idx].to(self.device), [seeds[i] for i in idx], **kwargs)
                out.append(from_model_range(x[:real], self.size))
                pbar.update(real)
        finally:
            pbar.close()
        return torch.cat(out)

    # ---- save / load
    def save(self, directory: Path) -> None:
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ck.write_weights(directory, self._inference_modules(), self._config_json())

    def load(self, directory: Path) -> None:
        data = ck.read_checkpoint_config(directory, self.name)
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
        ck.read_weights(directory, self._inference_modules(), self.device)
        self.train_stats = dict(data.get("train_stats") or {})
        self._fitted = True
