"""The decoded-dataset cache: decode every image once (a few threads, progress bar), write one
uint8 array (+ masks) with checksums and an index, atomically; open it again, checked.

Split from datasets.py, which lists, fingerprints and assembles a dataset's splits; the cache's
layout and its integrity rules live here (and source-file stamps in datastamps.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cxrbench.contracts import Dataset, ImageRecord
from cxrbench.errors import DatasetError
from cxrbench.integrity import write_checksum
from cxrbench.preprocessing import Preprocessing, check_min_side, preprocess_image, preprocess_mask
from cxrbench.progress import bar

#: bump when the cache layout or :func:`preprocess_image` changes (invalidates every cache)
CACHE_FORMAT = "1"
WORKERS_ENV = "CXRBENCH_DECODE_WORKERS"


def _jsonable(value):
    from cxrbench.datasets import _jsonable as jsonable  # one definition, in datasets.py

    return jsonable(value)


def _source_path(source):
    from cxrbench.datasets import source_path

    return source_path(source)


def _workers() -> int:
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(8, os.cpu_count() or 1))


def _decode_one(dataset: Dataset, record: ImageRecord, size: int, prep: Preprocessing):
    try:
        raw = dataset.read_image(record)
        check_min_side(raw, prep)
        img = preprocess_image(raw, size, prep)
        mask = None
        if record.has_mask:
            m = dataset.read_mask(record)
            mask = (
                preprocess_mask(m, size, prep) if m is not None else np.zeros((size, size), np.uint8)
            )
        return img, mask, None
    except Exception as exc:  # noqa: BLE001 - reported with the path (fail) or recorded (skip)
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
        return None, None, msg


def _record_location(record: ImageRecord) -> str:
    p = _source_path(record.source)
    return str(p) if p is not None else record.key


def _build_cache(
    dataset: Dataset,
    records: list[ImageRecord],
    folder: Path,
    size: int,
    prep: Preprocessing,
    fingerprint: str,
    missing: list[str],
    progress: bool | None,
    stamps: tuple[dict, dict | None] = ({}, None),
    reuse: tuple | None = None,
) -> None:
    """Decode every record into a new cache folder (atomically renamed into place). ``stamps``:
    (file stats, content hashes or None) recorded in the index. ``reuse``: ((images, masks,
    index) of the cache this one replaces, keys to decode again): every other record's pixels are
    copied from it instead of decoded."""
    old_rows = {}
    if reuse is not None:
        (old_images, old_masks, old_index), redo = reuse
        old_rows = {rec["key"]: j for j, rec in enumerate(old_index["records"]) if rec["key"] not in redo}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        n = len(records)
        has_masks = any(r.has_mask for r in records)
        images = np.lib.format.open_memmap(tmp / "images.raw.npy", mode="w+", dtype=np.uint8, shape=(n, 1, size, size))
        masks = (
            np.lib.format.open_memmap(tmp / "masks.raw.npy", mode="w+", dtype=np.uint8, shape=(n, 1, size, size))
            if has_masks
            else None
        )
        missing_set = set(missing)
        ok = np.ones(n, bool)
        skipped: list[dict[str, str]] = []
        todo = []
        for i, r in enumerate(records):
            if _record_location(r) in missing_set:
                ok[i] = False
                skipped.append({"path": _record_location(r), "key": r.key, "error": "file not found"})
            elif r.key in old_rows:  # unchanged since the cache this one replaces: copy its pixels
                images[i] = old_images[old_rows[r.key]]
                if masks is not None and old_masks is not None:
                    masks[i] = old_masks[old_rows[r.key]]
            else:
                todo.append(i)
        window = 8 * _workers()
        with ThreadPoolExecutor(max_workers=_workers()) as ex, bar(
            total=n, desc=f"decoding {dataset.name} at {size}px", unit="img", enabled=progress
        ) as pbar:
            pbar.update(n - len(todo))
            pending: deque = deque()
            it = iter(todo)
            for i in it:  # keep a bounded window of decodes in flight
                pending.append((i, ex.submit(_decode_one, dataset, records[i], size, prep)))
                if len(pending) >= window:
                    break
            while pending:
                i, fut = pending.popleft()
                img, mask, err = fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, ex.submit(_decode_one, dataset, records[nxt], size, prep)))
                if err is not None:
                    loc = _record_location(records[i])
                    if prep.on_unreadable == "fail":
                        for _, f in pending:
                            f.cancel()
                        raise DatasetError(
                            f"dataset {dataset.name!r}: cannot read image {loc!r} ({err}); fix or "
                            "remove it, or set preprocessing on_unreadable: skip"
                        )
                    ok[i] = False
                    skipped.append({"path": loc, "key": records[i].key, "error": err})
                else:
                    images[i, 0] = img
                    if masks is not None and mask is not None:  # no mask: stays all zero
                        masks[i, 0] = mask
                pbar.update(1)
        skipped.sort(key=lambda d: d["key"])
        kept = np.flatnonzero(ok)
        if kept.size == 0:
            raise DatasetError(
                f"dataset {dataset.name!r}: none of its {n} images could be read "
                f"(first: {skipped[0]['path']!r}: {skipped[0]['error']})"
            )
        _finalize_array(images, tmp / "images.raw.npy", tmp / "images.npy", kept)
        write_checksum(tmp / "images.npy")  # checked at every load: a flipped byte is never trained on
        if masks is not None:
            _finalize_array(masks, tmp / "masks.raw.npy", tmp / "masks.npy", kept)
            write_checksum(tmp / "masks.npy")
        index = {
            "cache_format": CACHE_FORMAT,
            "dataset": dataset.name,
            "plugin_version": str(dataset.version),
            "fingerprint": fingerprint,
            "size": size,
            "preprocessing": prep.to_dict(),
            "label_names": list(dataset.label_names),
            "has_masks": has_masks,
            "skipped": skipped,
            # each source file's [size, mtime_ns] (and sha256 after --verify-data): datastamps.py
            "stats": {records[i].key: stamps[0][records[i].key] for i in kept if records[i].key in stamps[0]},
            **({"sha256": {records[i].key: stamps[1][records[i].key] for i in kept if records[i].key in stamps[1]}}
               if stamps[1] is not None else {}),
            "records": [
                {
                    "key": records[i].key,
                    "split": records[i].split,
                    "labels": [_jsonable(float(v)) for v in records[i].labels],
                    "patient_id": records[i].patient_id,
                    "metadata": _jsonable(dict(records[i].metadata)),
                }
                for i in kept
            ],
        }
        with open(tmp / "index.json", "w", encoding="utf-8") as fh:
            json.dump(index, fh, allow_nan=False)
        try:
            os.rename(tmp, folder)
        except OSError:
            try:
                usable = reuse is None and _open_cache(folder, size) is not None
            except _CacheProblem:
                usable = False
            if not usable:  # a broken (or, with reuse, an outdated) folder is in the way: replace it
                stale = folder.with_name(f".{folder.name}.stale-{uuid.uuid4().hex[:8]}")
                os.rename(folder, stale)
                os.rename(tmp, folder)
                shutil.rmtree(stale, ignore_errors=True)
            # else: a concurrent loader won the race with identical content
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _add_stamps(folder: Path, index: dict, stats: dict, hashes: dict | None) -> None:
    """Record source-file stamps in the index of a cache decoded before they existed."""
    from cxrbench.store import atomic_write_text

    keys = [rec["key"] for rec in index["records"]]
    index = {**index, "stats": {k: stats[k] for k in keys if k in stats}}
    if hashes is not None:
        index["sha256"] = {k: hashes[k] for k in keys if k in hashes}
    atomic_write_text(folder / "index.json", json.dumps(index, allow_nan=False))


def _finalize_array(arr: np.memmap, raw: Path, final: Path, kept: np.ndarray) -> None:
    arr.flush()
    if kept.size == arr.shape[0]:
        del arr
        os.replace(raw, final)
        return
    out = np.lib.format.open_memmap(final, mode="w+", dtype=np.uint8, shape=(kept.size, *arr.shape[1:]))
    for start in range(0, kept.size, 4096):
        out[start : start + 4096] = arr[kept[start : start + 4096]]
    out.flush()
    del out, arr
    os.remove(raw)


class _CacheProblem(Exception):
    """A decoded-dataset cache folder that is there but cannot be trusted (why: the message)."""


def _open_cache(folder: Path, size: int):
    """The cached arrays, or None when there is no usable cache; :class:`_CacheProblem` when
    an array fails its checksum (written when the cache was built)."""
    from cxrbench.integrity import check_file

    index_path = folder / "index.json"
    if not index_path.is_file():
        return None
    try:
        with open(index_path, encoding="utf-8") as fh:
            index = json.load(fh)
        if index.get("cache_format") != CACHE_FORMAT:
            return None
        images = np.load(folder / "images.npy", mmap_mode="c")
        n = len(index["records"])
        if images.shape != (n, 1, size, size) or images.dtype != np.uint8:
            return None
        masks = None
        if index.get("has_masks"):
            masks = np.load(folder / "masks.npy", mmap_mode="c")
            if masks.shape != images.shape:
                return None
        for name in ("images.npy", "masks.npy") if masks is not None else ("images.npy",):
            # a cache decoded before checksums existed is trusted once (decoding is the costly part)
            problem = check_file(folder / name, missing_ok=True)
            if problem:
                raise _CacheProblem(problem)
        return images, masks, index
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
