"""Fitted generators and synthetic sets, cached by content.

Everything here is keyed by what determines the result, never by wall time:

* a **fit** is keyed by the generator's name, version and source code, its *effective* options (preset values
  resolved, so ``train_steps`` is always in the key; sampling- and runtime-only fields left out),
  the training data and the size. A fit cut short by a time budget is a different model: it is
  saved under ``<fit key>-truncated-<steps>`` and every record built on it says so.
* a **synthetic set** is keyed by the fit key, the sampling options and ``sampling_version``, and
  the exact conditions (labels, demographics, seeds) of each replica or slice.

The run's seed varies the synthetic samples (through the condition seeds), the classifier and the
bootstrap, not the fit: a fit is seeded by the generator's own ``seed`` option (sweep it to measure
fit-to-fit variation) so that five classifier seeds do not pay for five generator trainings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cxrbench.contracts import Condition, SyntheticBatch, options_to_dict
from cxrbench.errors import CxrbenchError
from cxrbench.hashing import content_key, derive_seed
from cxrbench.integrity import entry_lock, manifest
from cxrbench.store import atomic_write_json

DEMOGRAPHIC_FIELDS = ("sex", "age", "race")
DONE_FILE = "cxrbench-fit.json"
TRUNCATED_FILE = "cxrbench-truncated.json"

logger = logging.getLogger(__name__)


class PluginFailure(CxrbenchError):
    """An exception raised inside a plugin method, re-raised naming the plugin and the method."""


@contextmanager
def plugin_call(kind: str, name: str, method: str):
    """Run plugin code; an exception becomes ``generator 'x' failed in fit(): IndexError: ...``
    (the original, with its traceback, is the ``__cause__`` and lands in the cell's record)."""
    try:
        yield
    except (KeyboardInterrupt, PluginFailure):
        raise
    except Exception as exc:  # noqa: BLE001 - any plugin bug must name its plugin
        raise PluginFailure(f"{kind} {name!r} failed in {method}(): {type(exc).__name__}: {exc}") from exc


def fit_relevant(options_cls: Any, effective: dict[str, Any]) -> dict[str, Any]:
    """The effective options that change the fitted model. Fields of the plugin's Options marked
    ``metadata={"sampling": True}`` (cfg_scale, sampler steps) or ``{"runtime": True}`` (where and
    how often to checkpoint, a wall-clock budget) are left out, so a guidance sweep shares a fit."""
    skip = set()
    if options_cls is not None and dataclasses.is_dataclass(options_cls):
        skip = {f.name for f in dataclasses.fields(options_cls)
                if f.metadata.get("sampling") or f.metadata.get("runtime")}
    return {k: v for k, v in effective.items() if k not in skip}


def fit_key_fields(generator, *, name: str, version: str, train, fingerprint: str, size: int) -> dict[str, Any]:
    """Everything a fit key hashes (a packed fit carries them: packs.py compares them field by field)."""
    from cxrbench.identity import source_fingerprint

    effective = generator.effective_options()
    return {
        "generator": name, "version": version,
        # the generator's own code: an edited fit() or generate() never reuses a model or an
        # image made by the old code (synthetic sets are keyed by the fit key too)
        "source": source_fingerprint(type(generator).__module__),
        "options": fit_relevant(getattr(type(generator), "Options", None), effective),
        "train": fingerprint, "train_keys": content_key(train.keys) if train is not None else None,
        "size": size, "fit_seed": int(effective.get("seed") or 0) if isinstance(effective.get("seed"), int) else 0,
    }


def fit_key_of(generator, *, name: str, version: str, train, fingerprint: str, size: int) -> tuple[str, int]:
    """(fit key, fit seed): what the fitted model depends on, and nothing else (no wall time)."""
    fields = fit_key_fields(generator, name=name, version=version, train=train, fingerprint=fingerprint, size=size)
    return content_key(fields), fields["fit_seed"]


def fit_dir(cache_root: Path, name: str, fit_key: str) -> Path:
    """Where the fit of generator ``name`` with ``fit_key`` lives in the cache."""
    return Path(cache_root) / "generators" / f"{name}-{fit_key}"


def replica_path(cache_root: Path, name: str, key: str) -> Path:
    """Where the synthetic set (one replica or slice) with content ``key`` lives in the cache."""
    return Path(cache_root) / "synthetic" / f"{name}-{key}.npy"


def fit_or_load(generator, *, name: str, version: str, train, fingerprint: str, size: int,
                cache_root: Path, progress: bool | None) -> dict[str, Any]:
    """Fit ``generator`` on the real train split, or load the cached fit; return the fit info
    recorded with every cell (fit key, effective options, stats, truncation)."""
    from cxrbench.device import seed_everything

    cls = type(generator)
    caps = cls.capabilities
    effective = generator.effective_options()
    fit_key, fit_seed = fit_key_of(generator, name=name, version=version, train=train,
                                   fingerprint=fingerprint, size=size)
    info: dict[str, Any] = {"fit_key": fit_key, "fit_seed": fit_seed, "cached": False, "truncated": False}
    if getattr(generator, "cache_dir", False) is None:
        generator.cache_dir = cache_root / name  # generators that cache their own outputs (api)
    if not getattr(caps, "sees_training_data", True):
        # e.g. a hosted image model: nothing of the real dataset ever reaches it
        info.update(fitted_on=None, fit_stats={}, fit_s=0.0)
        return info
    ckpt = fit_dir(cache_root, name, fit_key)
    logger.debug(f"generator {name}: fit key {fit_key} (fit seed {fit_seed}), cache entry {ckpt}")
    with entry_lock(ckpt, f"the {name} fit"):  # concurrent runs fit it once; the others load it
        done, pointer = ckpt / DONE_FILE, ckpt / TRUNCATED_FILE
        budget = effective.get("max_train_minutes")
        if caps.needs_training and done.is_file() and _load_fitted(generator, name, ckpt, info):
            return info
        if caps.needs_training and pointer.is_file():
            trunc = json.loads(pointer.read_text())
            # The same (or a smaller) budget would stop at the same place again: reuse that model.
            # A larger budget, or none, resumes training from the checkpoint below instead.
            if budget is not None and trunc.get("max_train_minutes") is not None and budget <= trunc["max_train_minutes"]:
                tdir = Path(trunc["dir"])
                with plugin_call("generator", name, "load"):
                    generator.load(tdir)
                info.update(json.loads((tdir / DONE_FILE).read_text()), cached=True)
                logger.info(f"generator {name}: loaded TRUNCATED fit ({trunc['steps']} of {trunc['steps_requested']} "
                            f"steps) {tdir}")
                return info
        seed_everything(fit_seed)
        start = time.perf_counter()
        if caps.needs_training:
            ckpt.mkdir(parents=True, exist_ok=True)
            if hasattr(generator, "checkpoint_dir"):
                generator.checkpoint_dir = ckpt / "resume"  # resumable plugins checkpoint here
        with plugin_call("generator", name, "fit"):
            stats = generator.fit(train, progress=progress) or {}
        info["fit_stats"] = jsonable(stats)
        info["fit_s"] = round(time.perf_counter() - start, 3)
        if stats.get("truncated"):
            steps, asked = stats.get("steps"), stats.get("steps_requested")
            info.update(truncated=True, fit_key=f"{fit_key}-truncated-{steps}")
            logger.warning(f"generator {name}: fit STOPPED by its time budget after {steps} of {asked} steps; "
                           "its results are marked truncated (raise max_train_minutes, or drop it, to finish)")
        if caps.needs_training:
            target = ckpt if not info["truncated"] else fit_dir(cache_root, name, info["fit_key"])
            target.mkdir(parents=True, exist_ok=True)
            with plugin_call("generator", name, "save"):
                generator.save(target)
            record = {"fit_stats": info["fit_stats"], "fit_s": info["fit_s"], "truncated": info["truncated"],
                      "fit_key": info["fit_key"], "fit_seed": fit_seed,
                      # size and sha256 of every saved file: checked before every load
                      "manifest": manifest([p for p in target.iterdir() if p.is_file()], target)}
            atomic_write_json(target / DONE_FILE, record)
            if info["truncated"]:
                atomic_write_json(pointer, {"dir": str(target), "steps": stats.get("steps"),
                                            "steps_requested": stats.get("steps_requested"),
                                            "max_train_minutes": budget})
        return info


class PaidLedger:
    """What a generator that reports ``generation_stats()`` (a hosted model) was asked for and
    paid for in one cell, by purpose: pre-flight (once per run, in the first cell of its row),
    the seed check, the training set, the tuning slice, post-processing top-ups. Its counters
    are per instance and the instance serves several cells, so each purpose is the difference
    between two readings."""

    COUNTS = ("requested", "produced", "cached", "retried", "failed", "merged", "estimated_cost_usd")

    def __init__(self, generator, preflight: dict | None = None):
        self.generator = generator
        self.active = hasattr(generator, "generation_stats")
        self.purposes: dict[str, dict] = {}
        if preflight:
            self.purposes["pre-flight"] = self._counts(preflight)
        self.last = self._read()

    def _counts(self, stats: dict) -> dict:
        return {k: stats.get(k) or 0 for k in self.COUNTS}

    def _read(self) -> dict | None:
        return self._counts(self.generator.generation_stats()) if self.active else None

    def mark(self, purpose: str) -> None:
        """Everything since the previous reading was spent on ``purpose``."""
        if not self.active:
            return
        now = self._read()
        diff = {k: round(now[k] - self.last[k], 6) for k in self.COUNTS}
        if any(diff.values()):
            self.purposes[purpose] = diff
        self.last = now

    def record(self) -> dict:
        total = {k: round(sum(p[k] for p in self.purposes.values()), 6) for k in self.COUNTS}
        return {"by_purpose": self.purposes, "total": total}


def demographics_of(split, i: int) -> dict:
    """The known demographic fields (sex, age, race) of image ``i`` of ``split``."""
    demo = {k: split.metadata[k][i] for k in DEMOGRAPHIC_FIELDS if k in split.metadata}
    return {k: v for k, v in demo.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def condition_for(split, i: int, seed: int, replica: Any, caps) -> Condition:
    """The condition of training example ``i`` for one replica (or the tuning slice)."""
    labels = tuple(0.0 if math.isnan(v) else float(v) for v in split.labels[i].tolist())
    demo = demographics_of(split, i)
    mask = split.masks[i] if (caps.mask and split.masks is not None) else None
    return Condition(labels=labels, seed=derive_seed(seed, replica, i), demographics=demo, mask=mask,
                     replica=replica if isinstance(replica, int) else -1)


def _load_fitted(generator, name: str, ckpt: Path, info: dict) -> bool:
    """Load a finished fit after checking its files against their manifest; a bad checkpoint is
    moved aside (and refitted by the caller), never trusted and never a permanent failure."""
    from cxrbench.integrity import quarantine, verify

    done = ckpt / DONE_FILE
    try:
        record = json.loads(done.read_text())
        problem = verify(record.get("manifest") or {}, ckpt)
        if problem:
            raise CxrbenchError(problem)
        with plugin_call("generator", name, "load"):
            generator.load(ckpt)
    except (OSError, ValueError, CxrbenchError) as exc:
        quarantine(ckpt, " ".join(str(exc).split())[:300])
        return False
    info.update(record, cached=True)
    info.pop("manifest", None)
    logger.info(f"generator {name}: loaded fitted checkpoint {ckpt}")
    return True


def generate_cached(generator, conditions: list[Condition], *, key: str, path: Path, size: int,
                    label: str, progress: bool | None):
    """Images for ``conditions``, from ``path`` when cached (and whole); returns (images, seconds
    spent). One process generates a given set at a time; the others wait and read it."""
    from cxrbench.integrity import entry_lock

    with entry_lock(path, f"synthetic set {label}"):
        cached = _read_synthetic(path, len(conditions), size)
        if cached is not None:
            logger.debug(f"synthetic set {label}: {len(conditions)} image(s) read from {path}")
            return cached, 0.0
        return _generate_and_store(generator, conditions, path=path, size=size, label=label, progress=progress)


def _read_synthetic(path: Path, n: int, size: int):
    """The cached set at ``path`` if it is whole (checksum and shape); a bad one is moved aside."""
    import numpy as np
    import torch

    from cxrbench.integrity import quarantine, sha256_file

    if not path.is_file():
        return None
    side = path.with_suffix(".json")
    try:
        meta = json.loads(side.read_text()) if side.is_file() else {}
        if meta.get("sha256") and sha256_file(path) != meta["sha256"]:
            raise ValueError("the file does not match its checksum")
        images = np.load(path, allow_pickle=False)
        if images.dtype != np.uint8 or images.shape != (n, 1, size, size):
            raise ValueError(f"holds {images.dtype} {images.shape}, expected uint8 {(n, 1, size, size)}")
    except (OSError, ValueError, EOFError) as exc:
        quarantine(path, " ".join(str(exc).split())[:200], also=(side,))
        return None
    return torch.from_numpy(images)


#: images per generation shard: the unit of resumption (an interrupted replica restarts at its
#: first missing shard) and of distribution (one Ray task each). A multiple of GENERATE_BATCH, so
#: a sharded set is made of exactly the batches one unsharded pass would run: the same images.
GENERATE_BATCH = 256
SHARD_SIZE = int(os.environ.get("CXRBENCH_SHARD_SIZE", 1024))  # the environment: for tests and small runs
if SHARD_SIZE < GENERATE_BATCH or SHARD_SIZE % GENERATE_BATCH:
    raise CxrbenchError(f"CXRBENCH_SHARD_SIZE={SHARD_SIZE}: use a multiple of {GENERATE_BATCH}")


def shard_count(n: int) -> int:
    return math.ceil(n / SHARD_SIZE)


def shard_path(path: Path, shard: int) -> Path:
    return Path(path).parent / "shards" / f"{Path(path).stem}-s{shard:04d}.npy"


def generate_shard(generator, conditions: list[Condition], *, path: Path, shard: int, size: int, label: str,
                   progress: bool | None = None) -> tuple[Any, float]:
    """Shard ``shard`` of the set at ``path`` (conditions[shard*SHARD_SIZE:...]): read when it is
    cached and whole, else generated in GENERATE_BATCH batches and stored with its checksum.
    Returns (images, seconds it took to make them, also when it was made earlier)."""
    import torch

    from cxrbench.progress import bar

    part = conditions[shard * SHARD_SIZE: (shard + 1) * SHARD_SIZE]
    spath = shard_path(path, shard)
    with entry_lock(spath, f"shard {shard} of {label}"):
        cached = _read_synthetic(spath, len(part), size)
        if cached is not None:
            return cached, recorded_seconds(spath) or 0.0
        start = time.perf_counter()
        chunks = []
        for lo in bar(range(0, len(part), GENERATE_BATCH), desc=f"generate {label} [{shard + 1}/{shard_count(len(conditions))}]",
                      unit="batch", enabled=progress):
            batch = part[lo: lo + GENERATE_BATCH]
            with plugin_call("generator", type(generator).name, "generate"):
                chunk = generator.generate(batch)
            check_images(chunk, len(batch), size, label)
            chunks.append(chunk.cpu())
        images = torch.cat(chunks) if chunks else torch.zeros((0, 1, size, size), dtype=torch.uint8)
        seconds = time.perf_counter() - start
        _store(spath, images.numpy(), seconds)
        return images, seconds


def _store(path: Path, array, seconds: float) -> None:
    """The sidecar first (checksum; what making the images cost, for every later reader), then
    the array: an array on disk always has its checksum beside it."""
    import numpy as np

    from cxrbench.integrity import sha256_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array)
    atomic_write_json(path.with_suffix(".json"), {"seconds": round(seconds, 4), "n": int(array.shape[0]),
                                                  "sha256": sha256_file(tmp)})
    os.replace(tmp, path)


def _generate_and_store(generator, conditions, *, path: Path, size: int, label: str, progress: bool | None):
    """The set at ``path`` shard by shard (shards made earlier, e.g. by Ray tasks or an
    interrupted run, are reused), assembled in order; the shard files are then removed."""
    import torch

    shards = [generate_shard(generator, conditions, path=path, shard=k, size=size, label=label, progress=progress)
              for k in range(shard_count(len(conditions)))]
    images = torch.cat([im for im, _ in shards]) if shards else torch.zeros((0, 1, size, size), dtype=torch.uint8)
    seconds = sum(sec for _, sec in shards)
    _store(path, images.numpy(), seconds)
    for k in range(len(shards)):
        spath = shard_path(path, k)
        for f in (spath, spath.with_suffix(".json"), Path(f"{spath}.lock")):
            f.unlink(missing_ok=True)
    return images, seconds


def recorded_seconds(path: Path) -> float | None:
    """Seconds it took to generate the cached images at ``path`` (None if not recorded)."""
    side = Path(path).with_suffix(".json")
    try:
        return float(json.loads(side.read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return None


def sampling_key(generator) -> str:
    return content_key({"options": generator.effective_options(),
                        "sampling_version": type(generator).sampling_version})


def replica_plan(generator, gen_info: dict, *, ratio: float, seed: int,
                 source_train, mix=None) -> list[tuple[int, Any, list[Condition], str]]:
    """(replica, training-example order, conditions, cache key) of each replica of r x the real
    training split (the last, partial replica takes a seeded subset of the conditions); ``mix``:
    the demographic mix asked for (demographics.py; None: the training set's own)."""
    from cxrbench.demographics import apply_mix

    import numpy as np

    n_real = len(source_train)
    total = int(round(ratio * n_real))
    caps = type(generator).capabilities
    skey = sampling_key(generator)
    plan = []
    for replica in range(math.ceil(total / n_real) if n_real else 0):
        count = min(n_real, total - replica * n_real)
        order = np.random.default_rng(derive_seed(seed, "subset", replica)).permutation(n_real)[:count]
        order.sort()
        conditions = [condition_for(source_train, int(i), seed, replica, caps) for i in order]
        conditions = apply_mix(conditions, order, source_train, mix, seed=seed, purpose=replica)
        key = content_key({"fit": gen_info["fit_key"], "sampling": skey, "replica": replica,
                           "conditions": _conditions_key(conditions)})
        plan.append((replica, order, conditions, key))
    return plan


def synthetic_training_set(generator, gen_info: dict, *, variant_name: str, variant_label: str, ratio: float,
                           seed: int, source_train, size: int, cache_root: Path, progress: bool | None, mix=None):
    """r x the real training split's conditions, one replica at a time, each cached by content."""
    import torch

    all_images, all_conditions, manifest = [], [], []
    gen_seconds, generated, made_seconds = 0.0, 0, 0.0
    plan = replica_plan(generator, gen_info, ratio=ratio, seed=seed, source_train=source_train, mix=mix)
    replicas = len(plan)
    for replica, order, conditions, key in plan:
        path = replica_path(cache_root, variant_name, key)
        images, secs = generate_cached(generator, conditions, key=key, path=path,
                                       size=size, label=f"{variant_label} replica {replica}", progress=progress)
        if secs:
            gen_seconds += secs
            generated += len(conditions)
        made = secs or recorded_seconds(path)
        made_seconds = None if made is None or made_seconds is None else made_seconds + made
        all_images.append(images)
        all_conditions.extend(conditions)
        for i, c in zip(order.tolist(), conditions):
            manifest.append({"file": f"syn-r{replica:02d}-{i:06d}", "replica": replica, "seed": c.seed,
                             "source_key": source_train.keys[i], "labels": list(c.labels), **_prompt(generator, c)})
    images = torch.cat(all_images) if all_images else torch.zeros((0, 1, size, size), dtype=torch.uint8)
    stats = {"n": len(all_conditions), "replicas": replicas, "generated_now": generated,
             "generate_s": round(gen_seconds, 3),
             "seconds_per_image": round(gen_seconds / generated, 5) if generated else None,
             # when (possibly another run) made them: the cost per image even when reused from the cache
             "seconds_per_image_made": round(made_seconds / len(all_conditions), 5)
             if made_seconds is not None and all_conditions else None}
    if hasattr(generator, "generation_stats"):  # e.g. api: requests, retries, failures, cost
        stats["generator"] = jsonable(generator.generation_stats())
    return SyntheticBatch(images, all_conditions), {"stats": stats, "manifest": manifest}


def synthetic_tuning_slice(generator, gen_info: dict, *, variant_name: str, variant_label: str, fraction: float,
                           minimum: int, seed: int, source_train, size: int, cache_root: Path, progress: bool | None,
                           mix=None):
    """The held-out synthetic tuning slice of ``synthetic-only.v2``: ``fraction`` of the training
    conditions (at least ``minimum``), drawn with a seed of its own, each image with a seed derived
    from (cell seed, "tune", index), so it never repeats a training image's seed. No real image
    and no real tuning label is involved."""
    import numpy as np

    n_real = len(source_train)
    count = min(n_real, max(int(minimum), int(round(fraction * n_real))))
    order = np.sort(np.random.default_rng(derive_seed(seed, "tune-subset")).permutation(n_real)[:count])
    caps = type(generator).capabilities
    conditions = [condition_for(source_train, int(i), seed, "tune", caps) for i in order]
    from cxrbench.demographics import apply_mix

    conditions = apply_mix(conditions, order, source_train, mix, seed=seed, purpose="tune")
    key = content_key({"fit": gen_info["fit_key"], "sampling": sampling_key(generator), "slice": "tune",
                       "conditions": _conditions_key(conditions)})
    images, secs = generate_cached(generator, conditions, key=key, path=replica_path(cache_root, f"{variant_name}-tune", key),
                                   size=size, label=f"{variant_label} tuning slice", progress=progress)
    manifest = [{"file": f"syn-tune-{i:06d}", "slice": "tune", "seed": c.seed, "source_key": source_train.keys[i],
                 "labels": list(c.labels), **_prompt(generator, c)} for i, c in zip(order.tolist(), conditions)]
    stats = {"n": len(conditions), "fraction": fraction, "generate_s": round(secs, 3)}
    return SyntheticBatch(images, conditions), {"stats": stats, "manifest": manifest}


def _prompt(generator, condition: Condition) -> dict[str, Any]:
    """The resolved prompt of an image, for the manifest, when the generator tells it (``prompt_for``)."""
    if not hasattr(generator, "prompt_for"):
        return {}
    with plugin_call("generator", type(generator).name, "prompt_for"):
        return {"prompt": generator.prompt_for(condition)}


def _conditions_key(conditions: list[Condition]) -> str:
    return content_key([(c.labels, c.seed, sorted(c.demographics.items())) for c in conditions])


def seed_check(generator, source_train, *, seed: int, size: int) -> dict[str, Any]:
    """The seed contract, checked at run time on four cheap images: the same condition twice must
    give the same image, and the same labels under other seeds must not all give that image."""
    import torch

    caps = type(generator).capabilities
    base = condition_for(source_train, 0, seed, "seed-check", caps)
    # their own key: derive_seed(seed, "seed-check", 0) IS the base image's seed (condition_for
    # derives it so), and a "different" image of the same seed would be a second paid request
    others = [dataclasses.replace(base, seed=derive_seed(seed, "seed-check-other", k)) for k in range(2)]
    name = type(generator).name
    with plugin_call("generator", name, "generate"):
        images = generator.generate([base, *others, base])
    check_images(images, 4, size, name)
    same = bool(torch.equal(images[0], images[3]))
    differ = any(not torch.equal(images[0], images[k]) for k in (1, 2))
    problems = ([] if same else ["the same seed gave different images"]) + \
               ([] if differ else ["different seeds gave the same image"])
    if problems:
        logger.warning(f"generator {name}: SEED CHECK FAILED: {'; '.join(problems)} (results are marked)")
    return {"same_seed_same_image": same, "different_seeds_differ": differ, "ok": not problems,
            "problems": problems}


def check_images(images, n: int | None, size: int, who: str) -> None:
    import torch

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}"
        raise CxrbenchError(f"{who!r} broke the image contract: expected uint8 (N, 1, H, W), got {got}")
    if n is not None and images.shape[0] != n:
        raise CxrbenchError(f"{who!r} returned {images.shape[0]} images for {n} conditions (must be one each)")
    if tuple(images.shape[-2:]) != (size, size):
        raise CxrbenchError(f"{who!r} returned {tuple(images.shape[-2:])} px images; the spec asks for {size}")


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):  # NaN / inf: JSON has neither
        return None
    return obj


def options_record(generator) -> dict[str, Any]:
    """Requested and effective options, both recorded (the effective ones are what ran)."""
    return {"options": jsonable(generator.effective_options()), "options_requested": jsonable(options_to_dict(generator.options))}


def mask_artifacts(generator, synthetic, adir: Path, *, seed: int, limit: int = 512, estimator=None,
                   device: str = "cpu"):
    """For a mask-conditioned generator that tells its masks (``conditioning_masks``): store the
    mask of every synthetic image (``synthetic-masks.npy``, uint8 (N, 1, H, W), manifest order)
    and measure mask adherence on up to ``limit`` images: Dice of the lung-field estimate of
    each generated image with its own mask, and with the mask of another image (a seeded
    random pairing: what ignoring the mask would score). ``estimator``: a function returning the
    learned lung-field estimator of quality/adherence.py or None (the Otsu heuristic); called only
    when adherence is measured, since it may train a small network. Returns (record, masks) or
    (None, None)."""
    import numpy as np
    import torch

    from cxrbench.kit.masks import dice
    from cxrbench.quality.adherence import estimate

    if not getattr(type(generator).capabilities, "mask", False) or not hasattr(generator, "conditioning_masks"):
        return None, None
    with plugin_call("generator", type(generator).name, "conditioning_masks"):
        masks = generator.conditioning_masks(list(synthetic.conditions))
    if masks is None:  # e.g. the real images of a dataset without masks: none to tell
        return None, None
    np.save(adir / "synthetic-masks.npy", masks.numpy())
    base = {"masks": str(adir / "synthetic-masks.npy")}
    if hasattr(generator, "conditioning_mask_transforms"):
        # how each mask was made (source mask, perturbation parameters), manifest order
        with plugin_call("generator", type(generator).name, "conditioning_mask_transforms"):
            transforms = generator.conditioning_mask_transforms(list(synthetic.conditions))
        atomic_write_json(adir / "synthetic-mask-transforms.json", transforms)
        base["transforms"] = str(adir / "synthetic-mask-transforms.json")
    n = min(limit, len(synthetic.conditions))
    if n < 2:
        return {**base, "n": n}, masks
    model = estimator() if estimator is not None else None
    est = estimate(model, synthetic.images[:n], device)
    own = dice(est, masks[:n])
    perm = torch.from_numpy(np.random.default_rng(derive_seed(seed, "mask-pairing")).permutation(n))
    other = dice(est, masks[:n][perm])
    name = ("tiny-unet trained on the real training pairs (cxrbench.quality.adherence)" if model is not None
            else "cxrbench.kit.masks.estimate_lung_mask (Otsu; the dataset has no masks to learn from)")
    return {**base, "n": n, "dice_own_mask": float(own.mean()),
            "dice_random_pairing": float(other.mean()), "estimator": name}, masks
