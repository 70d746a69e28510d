"""Loading real datasets: preprocessing, decode-once cache, fingerprint, patient-disjoint splits.

Every dataset plugin only *describes* its images (:meth:`Dataset.records`) and decodes one
(:meth:`Dataset.read_image`); everything else happens here, identically for every dataset:

1. ``records()`` lists the images (split, labels, patient id, metadata, source);
2. the splits are checked patient-disjoint (:func:`check_patient_disjoint`);
3. a cheap **fingerprint** is computed from the records (keys, splits, labels, patient ids,
   metadata, plugin options) and the byte size of every source file (``os.stat``, no content
   hashing: a file edited in place to the very same size is not noticed; delete the cache folder
   to force a re-decode);
4. the **cache** folder ``<cache>/datasets/<name>-<fingerprint[:16]>-<size>-<prep hash>/`` is
   looked up. The prep hash covers the preprocessing settings, the plugin version and the
   cache format. On a miss every image is decoded once (progress bar, a few threads),
   preprocessed (:func:`cxrbench.preprocessing.preprocess_image`) and written as one ``uint8`` array (N, 1, H, W)
   ``images.npy`` (+ ``masks.npy``) and an ``index.json``, into a temporary folder renamed
   into place (atomic; a concurrent loader that loses the race uses the winner's folder); each
   array has a checksum sidecar (:func:`cxrbench.integrity.check_file`) verified at every load,
   so a cache altered on disk is moved aside and decoded again, never trained on;
5. the arrays are memory-mapped (``np.load(mmap_mode="c")``) and wrapped with
   ``torch.from_numpy``: a warm load decodes nothing.

Hints given to plugins (plain attributes, set before ``records()`` is called): ``target_size``
(the requested pixel size: a plugin may pick a native resolution from it or ask the JPEG
decoder for a reduced-size draft, see :func:`cxrbench.kit.read_image_file`) and ``cache_root`` (the cache
folder, for small sidecars such as parsed DICOM headers). Optional plugin methods:
``fingerprint_extra() -> str`` (anything not visible in the records that determines the
pixels, e.g. the name and size of an npz file) and the attribute ``split_notes`` (a dict
describing how splits were made: carve seeds, fractions, counts dropped), copied into
``LoadedDataset.info``. The decoded cache itself (build, checksums, open) is
:mod:`cxrbench.datacache`; source-file stamps are :mod:`cxrbench.datastamps`. The helpers
plugins use to list their images live in
:mod:`cxrbench.kit.datasets`, the pixel pipeline in :mod:`cxrbench.preprocessing`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from cxrbench import datastamps
from cxrbench.datacache import CACHE_FORMAT, _add_stamps, _build_cache, _CacheProblem, _open_cache
from cxrbench.contracts import Dataset, ImageRecord, Split, options_to_dict
from cxrbench.errors import ConfigError, DatasetError, LeakageError
from cxrbench.integrity import quarantine
from cxrbench.kit.datasets import DATA_ROOT_ENV, carve_validation, default_cache_dir
from cxrbench.preprocessing import Preprocessing, preprocess_image, preprocess_mask  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)

SPLIT_ORDER = ("train", "val", "test")


# --------------------------------------------------------------------------- public types


@dataclass
class LoadedDataset:
    """A dataset decoded at one size: its splits, fingerprint and a record of how it was made.

    ``tests`` maps test-set names to splits; the internal test set is ``"test"``.
    ``info`` holds: size, preprocessing, cache path, cache hit, n per split, label prevalence,
    skipped images (count + paths), how splits were made (val-carve seed...), plugin options and
    version, and timings (records, fingerprint, decode or cache-hit seconds).
    """

    name: str
    label_names: tuple[str, ...]
    train: Split
    val: Split
    tests: dict[str, Split]
    fingerprint: str
    info: dict = field(default_factory=dict)

    @property
    def test(self) -> Split:
        return self.tests["test"]

    def splits(self) -> dict[str, Split]:
        """Every split by name: train, val, then the test sets."""
        return {"train": self.train, "val": self.val, **self.tests}


# --------------------------------------------------------------------------- locations


def resolve_data_root(cli: str | os.PathLike | None, spec: str | os.PathLike | None) -> Path | None:
    """The data root: ``--data-root`` first, then ``$CXRBENCH_DATA_ROOT``, then the spec's value."""
    for value in (cli, os.environ.get(DATA_ROOT_ENV), spec):
        if value is not None and str(value).strip():
            return Path(str(value).strip()).expanduser()
    return None


# --------------------------------------------------------------------------- splits


def check_patient_disjoint(splits: Mapping[str, Sequence[str]]) -> None:
    """Raise :class:`LeakageError` when a patient id appears in more than one split.

    ``splits`` maps split names to the patient ids of their images. The message names the
    overlapping patient ids (up to 10) and the splits they appear in.
    """
    owner: dict[str, list[str]] = {}
    for split, ids in splits.items():
        for pid in set(ids):
            owner.setdefault(pid, []).append(split)
    overlap = {pid: s for pid, s in owner.items() if len(s) > 1}
    if not overlap:
        return
    shown = sorted(overlap)[:10]
    detail = "; ".join(f"{pid!r} in {' and '.join(sorted(overlap[pid]))}" for pid in shown)
    more = f" (and {len(overlap) - len(shown)} more)" if len(overlap) > len(shown) else ""
    pairs = sorted({" and ".join(sorted(s)) for s in overlap.values()})
    raise LeakageError(
        f"{len(overlap)} patient(s) appear in more than one split ({', '.join(pairs)}): "
        f"{detail}{more}; splits must be patient-disjoint"
    )


# --------------------------------------------------------------------------- fingerprint


def source_path(source: Any) -> str | None:
    """The file behind a record's source (a path, or a tuple/dict whose first item / ``"path"``
    is one), as a string; None for sources that are not files (an array index, a seed)."""
    if isinstance(source, str):
        return source
    if isinstance(source, os.PathLike):
        return os.fspath(source)
    if isinstance(source, tuple) and source and isinstance(source[0], (str, os.PathLike)):
        return os.fspath(source[0])
    if isinstance(source, dict) and isinstance(source.get("path"), (str, os.PathLike)):
        return os.fspath(source["path"])
    return None


def _label_text(labels: Sequence[float]) -> str:
    return ",".join("nan" if math.isnan(v) else repr(float(v)) for v in labels)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)) and not isinstance(value, np.integer):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dict, Mapping)):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _stat_sizes(records: Sequence[ImageRecord]) -> tuple[list[int | None], list[str]]:
    """File size of each record's source (None: not a file, -1: missing); the missing paths."""
    sizes: list[int | None] = []
    missing: list[str] = []
    for r in records:
        p = source_path(r.source)
        if p is None:
            sizes.append(None)
            continue
        try:
            sizes.append(os.stat(p).st_size)
        except OSError:
            sizes.append(-1)
            missing.append(p)
    return sizes, missing


def compute_fingerprint(dataset: Dataset, records: Sequence[ImageRecord], sizes: Sequence[int | None]) -> str:
    """sha256 over the dataset name, plugin options, fingerprint_extra() and, per record sorted
    by key: key, split, labels, patient id, metadata, mask flag and source file size."""
    h = hashlib.sha256()
    h.update(f"cxrbench-dataset\0{dataset.name}\0".encode())
    h.update(json.dumps(_jsonable(options_to_dict(dataset.options)), sort_keys=True, default=str).encode())
    extra = getattr(dataset, "fingerprint_extra", None)
    if callable(extra):
        h.update(b"\0extra\0" + str(extra()).encode())
    for i in sorted(range(len(records)), key=lambda i: records[i].key):
        r = records[i]
        meta = json.dumps(_jsonable(dict(r.metadata)), sort_keys=True, default=str)
        line = f"{r.key}\t{r.split}\t{_label_text(r.labels)}\t{r.patient_id}\t{meta}\t{int(r.has_mask)}\t{sizes[i]}\n"
        h.update(line.encode())
    return h.hexdigest()


def _prep_hash(dataset: Dataset, prep: Preprocessing) -> str:
    payload = json.dumps(
        {
            "prep": prep.to_dict(),
            "plugin": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
            "version": str(dataset.version),
            "cache_format": CACHE_FORMAT,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- loading


def _split_rank(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split), "") if split in SPLIT_ORDER else (len(SPLIT_ORDER), split)


def _validate_records(dataset: Dataset, records: list[ImageRecord]) -> None:
    if not records:
        raise DatasetError(
            f"dataset {dataset.name!r} has no images; expected layout: {dataset.describe_layout()}"
        )
    n_labels = len(dataset.label_names)
    seen: set[str] = set()
    for r in records:
        if r.key in seen:
            raise DatasetError(f"dataset {dataset.name!r}: two images share the key {r.key!r}")
        seen.add(r.key)
        if len(r.labels) != n_labels:
            raise DatasetError(
                f"dataset {dataset.name!r}: image {r.key!r} has {len(r.labels)} labels, expected "
                f"{n_labels} ({', '.join(dataset.label_names)})"
            )
        if not r.split or not isinstance(r.split, str):
            raise DatasetError(f"dataset {dataset.name!r}: image {r.key!r} has no split")
    splits = {r.split for r in records}
    for need in ("train", "test"):
        if need not in splits:
            raise DatasetError(
                f"dataset {dataset.name!r} has no {need!r} images; expected layout: "
                f"{dataset.describe_layout()}"
            )


def load_dataset(
    dataset: Dataset,
    *,
    size: int,
    preprocessing: Preprocessing | None = None,
    cache_dir: Path | None = None,
    progress: bool | None = None,
    verify_data: bool = False,
) -> LoadedDataset:
    """Decode (once) and return every split of ``dataset`` at ``size`` x ``size`` pixels.

    ``verify_data``: also hash every source file and re-decode those whose bytes differ from
    when they were decoded (:mod:`cxrbench.datastamps`); without it, files whose size or
    modification time changed are re-decoded.

    See the module docstring for the steps. Raises :class:`DatasetError` for a missing or
    malformed dataset or unreadable images (``on_unreadable="fail"``) and
    :class:`LeakageError` when a patient appears in two splits.
    """
    t_start = time.perf_counter()
    prep = preprocessing or Preprocessing()
    size = int(size)
    if size < 1:
        raise ConfigError(f"image size must be a positive integer, not {size}")
    if getattr(dataset, "needs_root", True) and dataset.root is None:
        raise DatasetError(
            f"dataset {dataset.name!r} needs a data root: pass --data-root or set {DATA_ROOT_ENV}; "
            f"expected layout: {dataset.describe_layout()}"
        )
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dataset.target_size = size  # hints, see the module docstring
    dataset.cache_root = root

    t0 = time.perf_counter()
    try:
        records = list(dataset.records())
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DatasetError(
            f"dataset {dataset.name!r}: missing {exc.filename or exc}; expected layout: "
            f"{dataset.describe_layout()}"
        ) from exc
    _validate_records(dataset, records)
    records.sort(key=lambda r: (_split_rank(r.split), r.key))
    if not any(r.split == "val" for r in records):
        records = carve_validation(records, fraction=0.1, seed=0)
        records.sort(key=lambda r: (_split_rank(r.split), r.key))
        split_notes = {"val": "carved from train by the harness (fraction 0.1, seed 0)"}
    else:
        split_notes = {}
    split_notes.update(dict(getattr(dataset, "split_notes", {}) or {}))
    t_records = time.perf_counter() - t0

    ids_by_split: dict[str, list[str]] = {}
    for r in records:
        ids_by_split.setdefault(r.split, []).append(r.patient_id)
    check_patient_disjoint(ids_by_split)

    t0 = time.perf_counter()
    sizes, missing = _stat_sizes(records)
    fingerprint = compute_fingerprint(dataset, records, sizes)
    t_fingerprint = time.perf_counter() - t0

    folder = root / "datasets" / f"{dataset.name}-{fingerprint[:16]}-{size}-{_prep_hash(dataset, prep)}"

    t0 = time.perf_counter()
    try:
        cached = _open_cache(folder, size)
        why = "its arrays do not match index.json or cannot be read"
    except _CacheProblem as exc:
        cached, why = None, str(exc)
    stats = datastamps.file_stats(records)
    hashes = datastamps.content_hashes(records, progress) if verify_data else None
    if cached is not None:
        changed = datastamps.changed_keys(cached[2], stats, hashes)
        if changed:  # a source file was replaced or edited since it was decoded: decode those again
            shown = ", ".join(repr(k) for k in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            logger.info(f"dataset {dataset.name}: {len(changed)} source file(s) changed since they were decoded "
                        f"({shown}); decoding them again")
            _build_cache(dataset, records, folder, size, prep, fingerprint, missing, progress,
                         stamps=(stats, hashes), reuse=(cached, set(changed)))
            cached = _open_cache(folder, size)
        elif "stats" not in cached[2] or (hashes is not None and "sha256" not in cached[2]):
            _add_stamps(folder, cached[2], stats, hashes)  # a cache made before stamps: record them now
    hit = cached is not None
    t_decode = 0.0
    if cached is None and folder.exists():  # there, but unreadable, not matching its index, or altered
        quarantine(folder, why)
    if cached is None:
        if missing and prep.on_unreadable == "fail":
            shown = ", ".join(repr(p) for p in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DatasetError(
                f"dataset {dataset.name!r}: {len(missing)} image file(s) listed but missing: "
                f"{shown}{more}; fix the files or set preprocessing on_unreadable: skip"
            )
        _build_cache(dataset, records, folder, size, prep, fingerprint, missing, progress, stamps=(stats, hashes))
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached = _open_cache(folder, size)
        if cached is None:  # pragma: no cover - just written
            raise DatasetError(f"dataset cache {str(folder)!r} could not be read back after writing")
    images, masks, index = cached
    t_cache = time.perf_counter() - t0

    loaded = _assemble(dataset, images, masks, index)
    skipped = index.get("skipped", [])
    info = {
        "dataset": dataset.name,
        "plugin_version": str(dataset.version),
        "options": _jsonable(options_to_dict(dataset.options)),
        "root": None if dataset.root is None else str(dataset.root),
        "size": size,
        "preprocessing": prep.to_dict(),
        "fingerprint": fingerprint,
        "cache_path": str(folder),
        "cache_hit": hit,
        "n": {name: len(s) for name, s in loaded.items()},
        "n_patients": {name: len(set(s.patient_ids)) for name, s in loaded.items()},
        "prevalence": {name: _prevalence(s) for name, s in loaded.items()},
        "skipped": {"count": len(skipped), "paths": [s["path"] for s in skipped],
                    "errors": [s["error"] for s in skipped]},
        "splits": _jsonable(split_notes),
        "timings": {
            "records_s": round(t_records, 4),
            "fingerprint_s": round(t_fingerprint, 4),
            "decode_s": round(t_decode, 4),
            "cache_load_s": round(t_cache, 4),
            "total_s": round(time.perf_counter() - t_start, 4),
        },
    }
    if "val" not in loaded:  # every val image was unreadable and skipped
        raise DatasetError(f"dataset {dataset.name!r}: no readable validation images")
    tests = {k: v for k, v in loaded.items() if k not in ("train", "val")}
    return LoadedDataset(
        name=dataset.name,
        label_names=tuple(dataset.label_names),
        train=loaded["train"],
        val=loaded["val"],
        tests=tests,
        fingerprint=fingerprint,
        info=info,
    )


def _prevalence(split: Split) -> dict[str, float | None]:
    labels = split.labels.numpy() if len(split) else np.zeros((0, len(split.label_names)), np.float32)
    out: dict[str, float | None] = {}
    for j, name in enumerate(split.label_names):
        col = labels[:, j]
        known = col[~np.isnan(col)]
        out[name] = round(float(known.mean()), 6) if known.size else None
    return out


def _assemble(dataset: Dataset, images: np.ndarray, masks: np.ndarray | None, index: dict) -> dict[str, Split]:
    import torch

    recs = index["records"]
    label_names = tuple(index["label_names"])
    columns: list[str] = []
    for r in recs:
        for k in r["metadata"]:
            if k not in columns:
                columns.append(k)
    order: list[str] = []
    bounds: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        s = r["split"]
        if s not in bounds:
            order.append(s)
            bounds[s] = [i, i + 1]
        else:
            if bounds[s][1] != i:  # pragma: no cover - the cache is written sorted by split
                raise DatasetError(f"dataset cache of {dataset.name!r} is not sorted by split")
            bounds[s][1] = i + 1
    out: dict[str, Split] = {}
    for s in order:
        a, b = bounds[s]
        part = recs[a:b]
        labels = np.array(
            [[np.nan if v is None else v for v in r["labels"]] for r in part], dtype=np.float32
        ).reshape(len(part), len(label_names))
        out[s] = Split(
            name=s,
            images=torch.from_numpy(images[a:b]),
            labels=torch.from_numpy(labels),
            label_names=label_names,
            patient_ids=[r["patient_id"] for r in part],
            keys=[r["key"] for r in part],
            metadata={c: [r["metadata"].get(c) for r in part] for c in columns},
            masks=None if masks is None else torch.from_numpy(masks[a:b]),
        )
    return out
