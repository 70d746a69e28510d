"""Helpers for dataset plugins: finding the files, reading tables and images, making splits.

A dataset plugin only describes its images (``records()``) and decodes one (``read_image``);
the harness does the rest (preprocessing, the decode-once cache, fingerprinting, the
patient-leakage check). What a plugin typically needs on the way:

- :class:`FolderDataset`: a base class for a dataset read from one folder under the data root
  (its expected layout, where the folder may be, how to tell it; images decoded from files);
- :func:`find_dataset_dir`: the dataset's folder under the data root (the user may point the
  root at the dataset itself or at a folder holding several), with a one-line
  :class:`~cxrbench.errors.DatasetError` showing the expected layout when it is not there;
- :func:`read_table`: a CSV whose required columns are checked, errors naming file and column;
- :func:`read_image_file`: JPEG / PNG / 16-bit files to a 2-D uint8 or uint16 array, JPEGs
  decoded at a reduced size when the plugin's ``target_size`` hint allows it;
- :func:`carve_validation` / :func:`split_by_patient`: deterministic, label-stratified splits
  that move whole patients (no patient in two splits), and :class:`CarvedValidationOptions`,
  the options of a carve from train;
- :func:`default_cache_dir`: where the harness caches decoded data (``$CXRBENCH_CACHE``), for a
  plugin's own small sidecars when the harness gave it no ``cache_root`` hint.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np

from cxrbench.contracts import Dataset, ImageRecord
from cxrbench.errors import ConfigError, DatasetError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CACHE_ENV = "CXRBENCH_CACHE"
DATA_ROOT_ENV = "CXRBENCH_DATA_ROOT"


# --------------------------------------------------------------------------- locations


def default_cache_dir() -> Path:
    """``$CXRBENCH_CACHE`` or ``~/.cache/cxrbench`` (decoded datasets live under ``datasets/``)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cxrbench"


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


class FolderDataset(Dataset):
    """A dataset whose files sit in one folder under the data root. A subclass sets

    - ``layout``: the expected layout, on one line (:meth:`describe_layout`, so every
      :class:`DatasetError` shows it);
    - ``folder_candidates``: where that folder may be, relative to the data root, tried in
      order ("" is the root itself);
    - :meth:`is_dataset_folder`: whether a candidate folder is the dataset's;

    and finds the folder with :meth:`dataset_folder`. :meth:`read_image` decodes
    ``record.source`` (an image file's path) with :func:`read_image_file`, drafting JPEGs to the
    ``target_size`` hint; override it for other sources.
    """

    layout: ClassVar[str] = ""
    folder_candidates: ClassVar[Sequence[str]] = ("",)

    def describe_layout(self) -> str:
        return self.layout or super().describe_layout()

    @abc.abstractmethod
    def is_dataset_folder(self, path: Path) -> bool:
        """Whether ``path`` (an existing folder) holds the dataset, e.g. its label table."""

    def dataset_folder(self) -> Path:
        """The dataset's folder (:func:`find_dataset_dir` over ``folder_candidates``)."""
        return find_dataset_dir(self.root, self.folder_candidates, self.is_dataset_folder, dataset=self)

    def read_image(self, record: ImageRecord) -> np.ndarray:
        return read_image_file(record.source, self.target_size)


# --------------------------------------------------------------------------- reading files


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


# --------------------------------------------------------------------------- patient-level splits


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


@dataclasses.dataclass
class CarvedValidationOptions:
    """Options of a dataset whose validation split is carved from train by patient
    (:func:`carve_validation`): ``val_fraction`` of the train images, drawn with ``val_seed``.
    A dataset's Options subclass it (its own fields follow these two) and name the dataset in
    ``dataset``, for the ConfigError refusing a ``val_fraction`` outside (0, 1)."""

    #: the dataset's name, as the ConfigError shows it
    dataset: ClassVar[str] = "dataset"

    val_fraction: float = 0.1
    val_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{self.dataset} val_fraction must be in (0, 1), not {self.val_fraction!r}")


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
