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
   preprocessed (:func:`preprocess_image`) and written as one ``uint8`` array (N, 1, H, W)
   ``images.npy`` (+ ``masks.npy``) and an ``index.json``, into a temporary folder renamed
   into place (atomic; a concurrent loader that loses the race uses the winner's folder);
5. the arrays are memory-mapped (``np.load(mmap_mode="c")``) and wrapped with
   ``torch.from_numpy``: a warm load decodes nothing.

Hints given to plugins (plain attributes, set before ``records()`` is called): ``target_size``
(the requested pixel size: a plugin may pick a native resolution from it or ask the JPEG
decoder for a reduced-size draft, see :func:`read_image_file`) and ``cache_root`` (the cache
folder, for small sidecars such as parsed DICOM headers). Optional plugin methods:
``fingerprint_extra() -> str`` (anything not visible in the records that determines the
pixels, e.g. the name and size of an npz file) and the attribute ``split_notes`` (a dict
describing how splits were made: carve seeds, fractions, counts dropped), copied into
``LoadedDataset.info``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from cxrbench.contracts import Dataset, ImageRecord, Split, options_to_dict
from cxrbench.errors import ConfigError, DatasetError, LeakageError
from cxrbench.progress import bar

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: bump when the cache layout or :func:`preprocess_image` changes (invalidates every cache)
CACHE_FORMAT = "1"
CACHE_ENV = "CXRBENCH_CACHE"
DATA_ROOT_ENV = "CXRBENCH_DATA_ROOT"
WORKERS_ENV = "CXRBENCH_DECODE_WORKERS"

SPLIT_ORDER = ("train", "val", "test")
RESIZE_MODES = ("pad", "stretch", "center-crop")
UNREADABLE_MODES = ("fail", "skip")


# --------------------------------------------------------------------------- public types


@dataclass
class Preprocessing:
    """How decoded images become the canonical (size, size) uint8 image (Khosravi et al. defaults).

    :param resize: ``"pad"``: aspect-preserving resize of the long side to ``size``, then zero
        padding to a square (centred); ``"stretch"``: resize both sides to ``size`` (distorts);
        ``"center-crop"``: aspect-preserving resize of the short side, then a centred crop.
    :param equalize: histogram equalization to 256 bins (as ``cv2.equalizeHist``), applied to
        the image content before padding so the padding does not count in the histogram.
    :param on_unreadable: ``"fail"`` (default): an image that cannot be read or decoded stops
        the load with a :class:`DatasetError` naming it; ``"skip"``: such images are dropped,
        and their number and paths are recorded in ``LoadedDataset.info["skipped"]``.
    """

    resize: str = "pad"
    equalize: bool = True
    on_unreadable: str = "fail"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ConfigError(
                f"preprocessing.resize must be one of {', '.join(RESIZE_MODES)}, not {self.resize!r}"
            )
        if self.on_unreadable not in UNREADABLE_MODES:
            raise ConfigError(
                "preprocessing.on_unreadable must be one of "
                f"{', '.join(UNREADABLE_MODES)}, not {self.on_unreadable!r}"
            )
        if not isinstance(self.equalize, bool):
            raise ConfigError(f"preprocessing.equalize must be true or false, not {self.equalize!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def default_cache_dir() -> Path:
    """``$CXRBENCH_CACHE`` or ``~/.cache/cxrbench`` (decoded datasets live under ``datasets/``)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cxrbench"


def resolve_data_root(cli: str | os.PathLike | None, spec: str | os.PathLike | None) -> Path | None:
    """The data root: ``--data-root`` first, then ``$CXRBENCH_DATA_ROOT``, then the spec's value."""
    for value in (cli, os.environ.get(DATA_ROOT_ENV), spec):
        if value is not None and str(value).strip():
            return Path(str(value).strip()).expanduser()
    return None


def find_dataset_dir(
    root: Path | None,
    candidates: Sequence[str],
    is_dataset_dir: Callable[[Path], bool],
    *,
    dataset: Dataset,
) -> Path:
    """The folder holding a dataset: the first of ``root/<candidate>`` that looks right.

    ``candidates`` are relative paths tried in order ("" is the root itself), so a user may point
    the data root at the dataset folder itself or at a folder holding several datasets.
    Raises a one-line :class:`DatasetError` with the expected layout when none matches.
    """
    if root is None:
        raise DatasetError(
            f"dataset {dataset.name!r} needs a data root: pass --data-root or set "
            f"{DATA_ROOT_ENV}; expected layout: {dataset.describe_layout()}"
        )
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(
            f"data root {str(root)!r} of dataset {dataset.name!r} does not exist; "
            f"expected layout: {dataset.describe_layout()}"
        )
    for rel in candidates:
        path = root / rel if rel else root
        if path.is_dir() and is_dataset_dir(path):
            return path
    tried = ", ".join(repr(str(root / c) if c else str(root)) for c in candidates)
    raise DatasetError(
        f"dataset {dataset.name!r} not found under {str(root)!r} (tried {tried}); "
        f"expected layout: {dataset.describe_layout()}"
    )


def read_table(
    path: Path,
    required: Sequence[str],
    *,
    dataset: Dataset,
    **read_csv_kw: Any,
) -> pd.DataFrame:
    """Read a CSV (``.gz`` too) and check its columns; errors name the file, column and layout."""
    import pandas as pd

    if not path.is_file():
        raise DatasetError(
            f"dataset {dataset.name!r}: missing file {str(path)!r}; expected layout: "
            f"{dataset.describe_layout()}"
        )
    try:
        df = pd.read_csv(path, **read_csv_kw)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a malformed file
        raise DatasetError(
            f"dataset {dataset.name!r}: cannot read {str(path)!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); expected layout: "
            f"{dataset.describe_layout()}"
        ) from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(
            f"dataset {dataset.name!r}: {str(path)!r} lacks column(s) "
            f"{', '.join(repr(c) for c in missing)} (has {', '.join(repr(str(c)) for c in df.columns)}); "
            f"expected layout: {dataset.describe_layout()}"
        )
    return df


def read_image_file(path: str | os.PathLike, size_hint: int | None = None) -> np.ndarray:
    """Decode an image file (JPEG, PNG...) to a 2-D uint8 (or uint16 for 16-bit files) array.

    With ``size_hint``, JPEGs are decoded at a reduced scale (1/2, 1/4, 1/8) that still keeps
    both sides at least ``size_hint`` pixels (libjpeg DCT scaling; much faster on large images).
    Colour images are converted to grayscale (ITU-R 601 luma).
    """
    from PIL import Image

    with Image.open(path) as im:
        if size_hint and im.format == "JPEG":
            im.draft("L", (int(size_hint), int(size_hint)))
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return np.asarray(im, dtype=np.uint16).copy()
        if im.mode in ("I", "F"):
            arr = np.asarray(im)
            if arr.min() >= 0 and arr.max() <= 65535:
                return arr.astype(np.uint16)
            return _to_uint16(arr.astype(np.float64))
        if im.mode != "L":
            im = im.convert("L")
        return np.asarray(im, dtype=np.uint8).copy()


def _to_uint16(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        return np.zeros(arr.shape, np.uint16)
    return np.round((arr - lo) * (65535.0 / (hi - lo))).astype(np.uint16)


# --------------------------------------------------------------------------- preprocessing


def _as_2d(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        else:  # colour: ITU-R 601 luma, keeping an integer dtype
            luma = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            arr = np.round(luma).astype(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else luma
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"empty image of shape {arr.shape}")
    return arr


def _geometry(h: int, w: int, size: int, mode: str) -> tuple[tuple[int, int], tuple[int, int, int, int] | None, tuple[int, int] | None]:
    """(resized (w, h), crop box or None, paste offset or None) for one resize mode."""
    if mode == "stretch":
        return (size, size), None, None
    if mode == "pad":
        scale = size / max(h, w)
        nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
        return (nw, nh), None, ((size - nw) // 2, (size - nh) // 2)
    # center-crop
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (nw - size) // 2, (nh - size) // 2
    return (nw, nh), (left, top, left + size, top + size), None


def _resize(arr: np.ndarray, wh: tuple[int, int], *, mask: bool = False) -> np.ndarray:
    """High-quality (antialiased Lanczos) resize; float32 out. Masks: area-average then 0/1."""
    from PIL import Image

    h, w = arr.shape
    if (w, h) == wh:
        out = arr.astype(np.float32)
    elif arr.dtype == np.uint8 and not mask:
        out = np.asarray(Image.fromarray(arr, "L").resize(wh, Image.Resampling.LANCZOS), np.float32)
    else:
        src = arr.astype(np.float32)
        resample = Image.Resampling.BOX if mask else Image.Resampling.LANCZOS
        if mask and (wh[0] > w or wh[1] > h):
            resample = Image.Resampling.BILINEAR
        out = np.asarray(Image.fromarray(src, "F").resize(wh, resample), np.float32)
        if not mask:  # Lanczos rings: keep the input's range
            out = np.clip(out, float(src.min()), float(src.max()))
    return out


def _to_uint8(resized: np.ndarray, src_dtype: np.dtype) -> np.ndarray:
    if src_dtype == np.uint8:
        return np.clip(np.round(resized), 0, 255).astype(np.uint8)
    lo, hi = float(resized.min()), float(resized.max())
    if hi <= lo:
        return np.zeros(resized.shape, np.uint8)
    return np.clip(np.round((resized - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def equalize_hist(img: np.ndarray) -> np.ndarray:
    """Histogram equalization of a uint8 image over 256 bins (the ``cv2.equalizeHist`` formula).

    ``lut[v] = round((cdf[v] - cdf_min) * 255 / (N - cdf_min))``: the darkest level maps to 0,
    the brightest to 255, levels in between spread by their cumulative frequency. A constant
    image is returned unchanged.
    """
    hist = np.bincount(img.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    total = int(cdf[-1])
    cdf_min = int(cdf[np.flatnonzero(hist)[0]]) if total else 0
    if total == cdf_min:
        return img.copy()
    lut = np.round((cdf - cdf_min) * (255.0 / (total - cdf_min)))
    lut = np.clip(lut, 0, 255).astype(np.uint8)
    return lut[img]


def preprocess_image(arr: np.ndarray, size: int, prep: Preprocessing | None = None) -> np.ndarray:
    """A decoded 2-D image (uint8, uint16 or float, any size) -> (size, size) uint8.

    Steps: resize (``prep.resize``, antialiased Lanczos), map to uint8 (uint8 input kept as is,
    other types min-max scaled), histogram-equalize the image content (``prep.equalize``), then
    zero-pad to a square (``"pad"``, centred).
    """
    prep = prep or Preprocessing()
    size = int(size)
    arr = _as_2d(arr)
    src_dtype = arr.dtype
    if src_dtype != np.uint8 and not np.issubdtype(src_dtype, np.number):
        raise ValueError(f"unsupported image dtype {src_dtype}")
    if src_dtype == np.bool_:
        arr, src_dtype = arr.astype(np.uint8) * 255, np.dtype(np.uint8)
    h, w = arr.shape
    wh, crop, offset = _geometry(h, w, size, prep.resize)
    resized = _resize(arr, wh)
    if crop is not None:
        left, top, right, bottom = crop
        resized = resized[top:bottom, left:right]
    img = _to_uint8(resized, src_dtype)
    if prep.equalize:
        img = equalize_hist(img)
    if offset is not None:
        out = np.zeros((size, size), np.uint8)
        x, y = offset
        out[y : y + img.shape[0], x : x + img.shape[1]] = img
        img = out
    return img


def preprocess_mask(mask: np.ndarray, size: int, prep: Preprocessing | None = None) -> np.ndarray:
    """A 2-D mask (nonzero = region) -> (size, size) uint8 0/1, same geometry as the image."""
    prep = prep or Preprocessing()
    m = (_as_2d(mask) != 0).astype(np.float32)
    h, w = m.shape
    wh, crop, offset = _geometry(h, w, int(size), prep.resize)
    resized = _resize(m, wh, mask=True)
    if crop is not None:
        left, top, right, bottom = crop
        resized = resized[top:bottom, left:right]
    out_small = (resized >= 0.5).astype(np.uint8)
    if offset is None:
        return out_small
    out = np.zeros((size, size), np.uint8)
    x, y = offset
    out[y : y + out_small.shape[0], x : x + out_small.shape[1]] = out_small
    return out


# --------------------------------------------------------------------------- splits


def _stratum(labels: Sequence[tuple[float, ...]]) -> tuple:
    """A patient's positive-label pattern: per label, whether any of its images is positive."""
    n = len(labels[0]) if labels else 0
    pos = []
    for j in range(n):
        pos.append(any((not math.isnan(lab[j])) and lab[j] >= 0.5 for lab in labels))
    return tuple(pos)


def _carve(
    records: Sequence[ImageRecord],
    *,
    source: str,
    target: str,
    fraction: float,
    seed: int,
    min_n: int,
) -> list[ImageRecord]:
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"a split fraction must be in [0, 1), not {fraction!r}")
    by_patient: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r.split == source:
            by_patient.setdefault(r.patient_id, []).append(i)
    patients = sorted(by_patient)
    if len(patients) < 2 or (fraction == 0.0 and min_n <= 0):
        return list(records)
    # stratify patients by their positive-label pattern; with many labels by the rarest
    # positive label alone (patterns would be nearly unique)
    patterns = {p: _stratum([records[i].labels for i in by_patient[p]]) for p in patients}
    n_labels = len(next(iter(patterns.values())))
    if n_labels > 3:
        freq = np.zeros(n_labels)
        for pat in patterns.values():
            freq += np.asarray(pat, float)
        def key(pat: tuple) -> tuple:
            pos = [j for j, v in enumerate(pat) if v]
            return (min(pos, key=lambda j: (freq[j], j)),) if pos else (-1,)
        strata_of = {p: key(patterns[p]) for p in patients}
    else:
        strata_of = patterns
    strata: dict[tuple, list[str]] = {}
    for p in patients:
        strata.setdefault(strata_of[p], []).append(p)
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    n_images = {p: len(by_patient[p]) for p in patients}
    for stratum_key in sorted(strata, key=repr):
        members = strata[stratum_key]
        order = [members[i] for i in rng.permutation(len(members))]
        target_n = fraction * sum(n_images[p] for p in members)
        picked = 0
        for p in order:
            if picked >= target_n - 0.5 * n_images[p]:
                continue  # would overshoot: a smaller patient may still fit
            chosen.add(p)
            picked += n_images[p]
    # at least min_n images moved, and at least one patient left behind
    leftover = [patients[i] for i in rng.permutation(len(patients)) if patients[i] not in chosen]
    while sum(n_images[p] for p in chosen) < min_n and len(leftover) > 1:
        chosen.add(leftover.pop(0))
    if len(chosen) >= len(patients):
        chosen.discard(sorted(chosen)[0])
    return [dataclasses.replace(r, split=target) if r.split == source and r.patient_id in chosen else r for r in records]


def carve_validation(
    records: Sequence[ImageRecord],
    *,
    fraction: float = 0.1,
    seed: int = 0,
    min_val: int = 1,
) -> list[ImageRecord]:
    """Move whole patients from ``train`` to ``val`` (about ``fraction`` of the train images).

    Patients are stratified by their positive labels (the positive pattern for up to 3 labels,
    else the rarest positive label) and drawn in a random order fixed by ``seed``, so the result
    is deterministic. At least ``min_val`` images are moved and at least one patient stays in
    train. Records of other splits are returned unchanged; the order of records is kept.
    """
    return _carve(records, source="train", target="val", fraction=fraction, seed=seed, min_n=min_val)


def split_by_patient(
    records: Sequence[ImageRecord],
    *,
    test_fraction: float,
    val_fraction: float,
    seed: int = 0,
) -> list[ImageRecord]:
    """Split records that are all in ``train`` into train / val / test by patient (stratified).

    ``test_fraction`` of all images goes to test, then ``val_fraction`` of all images (of what is
    left: ``val_fraction / (1 - test_fraction)``) to val. Deterministic from ``seed``.
    """
    out = _carve(records, source="train", target="test", fraction=test_fraction, seed=seed,
                 min_n=1 if test_fraction > 0 else 0)
    rest = val_fraction / (1.0 - test_fraction) if test_fraction < 1 else 0.0
    return _carve(out, source="train", target="val", fraction=min(rest, 0.99), seed=seed + 1,
                  min_n=1 if val_fraction > 0 else 0)


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


def _workers() -> int:
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(8, os.cpu_count() or 1))


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
) -> LoadedDataset:
    """Decode (once) and return every split of ``dataset`` at ``size`` x ``size`` pixels.

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
    cached = _open_cache(folder, size)
    hit = cached is not None
    t_decode = 0.0
    if cached is None:
        if missing and prep.on_unreadable == "fail":
            shown = ", ".join(repr(p) for p in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DatasetError(
                f"dataset {dataset.name!r}: {len(missing)} image file(s) listed but missing: "
                f"{shown}{more}; fix the files or set preprocessing on_unreadable: skip"
            )
        _build_cache(dataset, records, folder, size, prep, fingerprint, missing, progress)
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


def _decode_one(dataset: Dataset, record: ImageRecord, size: int, prep: Preprocessing):
    try:
        raw = dataset.read_image(record)
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
    p = source_path(record.source)
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
) -> None:
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
        if masks is not None:
            _finalize_array(masks, tmp / "masks.raw.npy", tmp / "masks.npy", kept)
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
            if _open_cache(folder, size) is None:  # a broken folder is in the way: replace it
                stale = folder.with_name(f".{folder.name}.stale-{uuid.uuid4().hex[:8]}")
                os.rename(folder, stale)
                os.rename(tmp, folder)
                shutil.rmtree(stale, ignore_errors=True)
            # else: a concurrent loader won the race with identical content
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


def _open_cache(folder: Path, size: int):
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
        return images, masks, index
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None


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
