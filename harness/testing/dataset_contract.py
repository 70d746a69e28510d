"""The contract kit of dataset plugins.

    import pytest
    from cxrbench.testing import DatasetContractTests

    class TestMyDataset(DatasetContractTests):
        dataset_name = "my-dataset"               # or: dataset_class = MyDataset
        dataset_options = {"views": ["PA"]}

        @pytest.fixture
        def dataset_root(self, tmp_path):         # a small copy of your on-disk layout
            return write_my_fixture(tmp_path)     # (or set data_root = Path(...) on the class)

The checks (:data:`CHECKS`) read ``records()`` and decode a few images; they never run the
harness's loader, so a failure points at the plugin, not at the cache - except
:func:`check_loaded_masks`, which decodes a few records with masks through the harness's loader
(into ``cache_root``) to check the ``Split.masks`` a benchmark receives.

Masks (records with ``has_mask``): ``read_mask`` returns a 2-D array with the height and width of
``read_image`` of the same record (aligned pixel for pixel: the harness resizes both with the same
geometry), holding 0 and one other value (0/1, 0/255) or small non-negative integer class ids;
after loading, ``Split.masks`` is uint8 (N, 1, size, size) like the images, values in {0, 1}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cxrbench.contracts import Dataset, ImageRecord
from cxrbench.errors import DatasetError
from cxrbench.testing.base import (
    ContractKit, ContractViolation, add_check_tests, build_options, describe, fixture,
    not_checked, one_line, options_or_default, require, skip,
)

__all__ = ["CHECKS", "MAX_MASK_CLASS_ID", "MAX_MASK_VALUES", "DatasetContractTests", "DatasetSetup", "SPLITS",
           "check_image_array", "check_mask_array"]

SPLITS = ("train", "val", "test")
#: a multi-class mask holds class ids 0 (background) .. MAX_MASK_CLASS_ID, at most MAX_MASK_VALUES
#: distinct values (more looks like an image returned as its mask); any other mask is binary
MAX_MASK_CLASS_ID = 255
MAX_MASK_VALUES = 32


@dataclass
class DatasetSetup:
    """One dataset configuration under test (``root`` may be None for datasets that need none)."""

    cls: type
    options: Any = None
    root: Path | None = None
    size: int = 32
    #: images decoded per split by the read_image check
    decode_per_split: int = 2
    #: folder for side files the plugin may keep (Dataset.cache_root)
    cache_root: Path | None = None
    _records: list | None = field(default=None, repr=False)

    def make(self, root: Any = None) -> Dataset:
        """A fresh instance reading ``root`` (default: the setup's)."""
        ds = self.cls(root if root is not None else self.root, build_options(self.cls, self.options))
        ds.target_size = self.size
        if self.cache_root is not None:
            ds.cache_root = Path(self.cache_root)
        return ds

    def records(self) -> tuple[Dataset, list]:
        """A dataset instance and its records (read once per setup)."""
        if self.cls.needs_root and self.root is None:
            not_checked(f"dataset {getattr(self.cls, 'name', self.cls.__name__)!r} needs a data root: give --data-root")
        if self._records is None:
            ds = self.make()
            self._records = [ds, list(ds.records())]
        return self._records[0], self._records[1]


def check_image_array(arr: Any, where: str) -> None:
    """A decoded image: a 2-D numpy array, uint8 or uint16, at least 1 x 1."""
    import numpy as np

    ok = isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16) and min(arr.shape) >= 1
    require(ok, f"{where} returned {describe(arr)}; expected a 2-D numpy uint8 (or uint16) array")


def check_mask_array(arr: Any, where: str, image_shape: tuple[int, ...] | None = None) -> None:
    """A decoded mask: a 2-D numpy array (bool, integer, or float holding whole numbers) with the
    height and width of its image (``image_shape``), holding 0 and one other value (binary: 0/1,
    0/255...) or small non-negative integer class ids (at most :data:`MAX_MASK_VALUES` distinct
    ids, none above :data:`MAX_MASK_CLASS_ID`)."""
    import numpy as np

    ok = isinstance(arr, np.ndarray) and arr.ndim == 2 and min(arr.shape) >= 1 and (
        arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating))
    require(ok, f"{where} returned {describe(arr)}; expected a 2-D numpy array (bool or integer, nonzero = region)")
    if image_shape is not None:
        require(tuple(arr.shape) == tuple(image_shape),
                f"{where} returned a {arr.shape[1]}x{arr.shape[0]} mask for a {image_shape[1]}x{image_shape[0]} "
                f"image (shape {tuple(arr.shape)} vs {tuple(image_shape)}); expected the image's height and width "
                "(resize the mask to the image, e.g. nearest neighbour, so they stay aligned)")
    if arr.dtype == np.bool_:
        return
    values = np.unique(arr)
    if np.issubdtype(arr.dtype, np.floating):
        require(bool(np.all(np.isfinite(values))) and bool(np.all(values == np.round(values))),
                f"{where} holds non-integer values, e.g. {[float(v) for v in values[:5]]}; expected 0 and one other "
                "value, or integer class ids")
    shown = [v.item() for v in values[:8]]
    require(values.size == 0 or values.min() >= 0,
            f"{where} holds negative values {shown}; expected 0 = background and nonzero = region")
    binary = values.size <= 2 and (values.size < 2 or values[0] == 0)
    ids = values.size <= MAX_MASK_VALUES and values.max() <= MAX_MASK_CLASS_ID
    require(binary or ids,
            f"{where} holds {values.size} distinct values {shown}{' ...' if values.size > 8 else ''}; expected 0 and "
            f"one other value (a binary mask), or at most {MAX_MASK_VALUES} class ids in 0..{MAX_MASK_CLASS_ID}")


def _masked_sample(s: DatasetSetup) -> tuple[Dataset, list]:
    """The first ``decode_per_split`` records with a mask of each split; skip when none has one."""
    ds, records = s.records()
    sample = []
    for split in SPLITS:
        sample += [r for r in records if r.split == split and r.has_mask][: s.decode_per_split]
    if not sample:
        skip("no record has a mask")
    return ds, sample


def _loadable(sample: list, records: list) -> list:
    """``sample`` plus what the harness needs to load it: a test image, a train image, and a val
    image when the dataset has a val split (else two train patients, to carve one from)."""
    out, keys = list(sample), {r.key for r in sample}

    def add(split: str, exclude: set = frozenset()) -> bool:
        for r in records:
            if r.split == split and r.key not in keys and r.patient_id not in exclude:
                out.append(r)
                keys.add(r.key)
                return True
        return False

    for split in ("test", "train"):
        if not any(r.split == split for r in out):
            add(split)
    if not any(r.split == "val" for r in out) and not add("val"):
        while True:
            train = {r.patient_id for r in out if r.split == "train"}
            if len(train) >= 2 or not add("train", train):
                break
    return out


def _is_label(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return math.isnan(f) or f in (0.0, 1.0)


# --------------------------------------------------------------------------- the checks


def check_options_accepted(s: DatasetSetup, tmp: Path) -> None:
    """check_options(options, size) accepts the configured options at the configured size."""
    s.cls.check_options(options_or_default(s.cls, build_options(s.cls, s.options)), s.size)


def check_label_names(s: DatasetSetup, tmp: Path) -> None:
    """label_names is a non-empty tuple of distinct, non-empty strings."""
    ds, _ = s.records()
    names = ds.label_names
    ok = isinstance(names, (tuple, list)) and names and all(isinstance(n, str) and n for n in names)
    require(ok, f"label_names is {names!r}; expected a non-empty tuple of strings")
    require(len(set(names)) == len(names), f"label_names has duplicates: {list(names)}")


def check_records(s: DatasetSetup, tmp: Path) -> None:
    """records() returns a non-empty list of ImageRecord with a key, a patient id and a metadata mapping."""
    from collections.abc import Mapping

    _, records = s.records()
    require(records, "records() returned no images")
    for r in records:
        require(isinstance(r, ImageRecord), f"records() holds {describe(r)}; expected cxrbench.contracts.ImageRecord")
        require(isinstance(r.key, str) and r.key, f"a record has key {r.key!r}; expected a non-empty string")
        require(isinstance(r.patient_id, str) and r.patient_id,
                f"record {r.key!r} has patient_id {r.patient_id!r}; expected a non-empty string")
        require(isinstance(r.metadata, Mapping),
                f"record {r.key!r} has metadata {describe(r.metadata)}; expected a mapping")


def check_unique_keys(s: DatasetSetup, tmp: Path) -> None:
    """Record keys are unique."""
    _, records = s.records()
    seen: set[str] = set()
    dupes = [r.key for r in records if r.key in seen or seen.add(r.key)]
    require(not dupes, f"{len(dupes)} duplicate key(s), e.g. {dupes[:3]}")


def check_splits(s: DatasetSetup, tmp: Path) -> None:
    """Every split is train, val or test, and there are train and test images (val is optional:
    the harness carves one from train by patient)."""
    _, records = s.records()
    bad = [r for r in records if r.split not in SPLITS]
    if bad:
        names = sorted({r.split for r in bad}, key=str)
        raise ContractViolation(f"split name(s) {names} (e.g. record {bad[0].key!r}); expected one of {SPLITS}")
    have = {r.split for r in records}
    for need in ("train", "test"):
        require(need in have, f"no {need!r} images; splits present: {sorted(have)}")


def check_labels(s: DatasetSetup, tmp: Path) -> None:
    """Every label vector has len(label_names) values, each 1.0, 0.0 or NaN (unknown)."""
    ds, records = s.records()
    n = len(ds.label_names)
    for r in records:
        require(len(r.labels) == n, f"record {r.key!r} has {len(r.labels)} labels {tuple(r.labels)}; expected {n} "
                                    f"({', '.join(ds.label_names)})")
        bad = [v for v in r.labels if not _is_label(v)]
        require(not bad, f"record {r.key!r} has label value(s) {bad}; expected 1.0, 0.0 or NaN")


def check_patient_disjoint(s: DatasetSetup, tmp: Path) -> None:
    """No patient has images in two splits."""
    _, records = s.records()
    where: dict[str, set[str]] = {}
    for r in records:
        where.setdefault(r.patient_id, set()).add(r.split)
    both = {p: sorted(sp) for p, sp in where.items() if len(sp) > 1}
    examples = ", ".join(f"{p!r} in {sp}" for p, sp in list(both.items())[:3])
    require(not both, f"{len(both)} patient(s) in more than one split: {examples}")


def check_records_stable(s: DatasetSetup, tmp: Path) -> None:
    """A fresh instance lists the same records (key -> split, labels, patient id)."""
    _, records = s.records()

    def table(recs):
        return {r.key: (r.split, tuple("nan" if isinstance(v, float) and math.isnan(v) else float(v) for v in r.labels),
                        r.patient_id) for r in recs}

    first, again = table(records), table(s.make().records())
    changed = sorted(k for k in set(first) | set(again) if first.get(k) != again.get(k))
    if changed:
        k = changed[0]
        raise ContractViolation(f"records() differ between two instances for {len(changed)} key(s), e.g. {k!r}: "
                                f"{first.get(k)} vs {again.get(k)}; keys, splits and labels must be stable")


def check_read_image(s: DatasetSetup, tmp: Path) -> None:
    """read_image() decodes the first records of each split to a 2-D uint8 (or uint16) array."""
    ds, records = s.records()
    for split in SPLITS:
        for r in [r for r in records if r.split == split][: s.decode_per_split]:
            try:
                arr = ds.read_image(r)
            except Exception as exc:  # noqa: BLE001
                raise ContractViolation(f"read_image({r.key!r}) raised {one_line(exc)}") from exc
            check_image_array(arr, f"read_image({r.key!r})")


def check_read_mask(s: DatasetSetup, tmp: Path) -> None:
    """read_mask() gives a 2-D array for records marked has_mask."""
    ds, records = s.records()
    masked = [r for r in records if r.has_mask][:3]
    if not masked:
        skip("no record has a mask")
    for r in masked:
        m = ds.read_mask(r)
        require(m is not None and getattr(m, "ndim", 0) == 2,
                f"read_mask({r.key!r}) returned {describe(m)}; expected a 2-D array")


def check_mask_aligned(s: DatasetSetup, tmp: Path) -> None:
    """read_mask() of a record with a mask has the height and width of read_image() of that record,
    and holds 0 and one other value (binary) or small integer class ids."""
    ds, sample = _masked_sample(s)
    for r in sample:
        try:
            image, mask = ds.read_image(r), ds.read_mask(r)
        except Exception as exc:  # noqa: BLE001
            raise ContractViolation(f"read_image / read_mask({r.key!r}) raised {one_line(exc)}") from exc
        check_image_array(image, f"read_image({r.key!r})")
        require(mask is not None, f"read_mask({r.key!r}) returned None for a record marked has_mask")
        check_mask_array(mask, f"read_mask({r.key!r})", tuple(image.shape))


def check_loaded_masks(s: DatasetSetup, tmp: Path) -> None:
    """Loaded by the harness at the kit's size, a few records with masks give Split.masks of uint8
    (N, 1, size, size), the images' shape, values in {0, 1}; a record whose mask covers a tenth of
    its image or more keeps a non-empty mask."""
    import copy

    import numpy as np

    from cxrbench.datasets import load_dataset

    ds, sample = _masked_sample(s)
    _, records = s.records()
    sample = _loadable(sample, records)
    keys = {r.key for r in sample}
    subset = copy.copy(ds)  # keeps whatever records() set up; lists only the sample
    subset.records = lambda: list(sample)
    cache = Path(s.cache_root) if s.cache_root is not None else Path(tmp) / "cache"
    try:
        loaded = load_dataset(subset, size=s.size, cache_dir=cache, progress=False)
    except Exception as exc:  # noqa: BLE001
        raise ContractViolation(f"loading {len(sample)} records ({', '.join(sorted(keys)[:4])}...) at {s.size} px "
                                f"raised {one_line(exc)}") from exc
    by_key = {r.key: r for r in sample}
    for name, split in loaded.splits().items():
        masked = [k for k in split.keys if by_key[k].has_mask]
        if split.masks is None:
            if masked:
                raise ContractViolation(f"split {name!r} has no masks (Split.masks is None) but {len(masked)} of its "
                                        f"records are marked has_mask, e.g. {masked[0]!r}")
            continue
        m = split.masks
        require(str(m.dtype) == "torch.uint8" and tuple(m.shape) == tuple(split.images.shape)
                and tuple(m.shape[1:]) == (1, s.size, s.size),
                f"split {name!r} has masks {describe(m)}; expected torch.uint8 {(len(split), 1, s.size, s.size)} "
                f"like its images {describe(split.images)}")
        arr = m.numpy()
        values = sorted(int(v) for v in np.unique(arr))
        require(set(values) <= {0, 1}, f"split {name!r} has mask values {values[:8]}; expected 0 and 1")
        for i, k in enumerate(split.keys):
            if not by_key[k].has_mask:
                continue
            raw = ds.read_mask(by_key[k])
            share = float(np.mean(np.asarray(raw) != 0)) if raw is not None else 0.0
            require(share < 0.1 or arr[i].any(),
                    f"record {k!r}: its mask covers {share:.0%} of the image but is empty once loaded at {s.size} px")


def check_missing_root(s: DatasetSetup, tmp: Path) -> None:
    """A missing data root gives a one-line DatasetError naming the path and the expected layout."""
    if not s.cls.needs_root:
        skip("dataset needs no data root (needs_root = False)")
    missing = Path(tmp) / "no-such-data-root"
    ds = None
    try:
        ds = s.make(missing)
        ds.records()
    except DatasetError as exc:
        msg, layout = str(exc), ds.describe_layout() if ds is not None else ""
        require(str(missing) in msg, f"the DatasetError does not name the missing path {str(missing)!r}: {msg}")
        require((layout and layout in msg) or "layout" in msg.lower(),
                f"the DatasetError does not give the expected layout ({layout!r}): {msg}")
        require("\n" not in msg.strip(), f"the DatasetError is not one line: {msg!r}")
        return
    except Exception as exc:  # noqa: BLE001
        raise ContractViolation(f"a missing data root raised {one_line(exc)}; expected a DatasetError naming "
                                f"{str(missing)!r} and the expected layout") from exc
    raise ContractViolation(f"records() with the missing data root {str(missing)!r} raised nothing; expected a "
                            "DatasetError")


CHECKS = [check_options_accepted, check_label_names, check_records, check_unique_keys, check_splits,
          check_labels, check_patient_disjoint, check_records_stable, check_read_image, check_read_mask,
          check_mask_aligned, check_loaded_masks, check_missing_root]


# --------------------------------------------------------------------------- the pytest kit


class DatasetContractTests(ContractKit, kind="dataset"):
    """Subclass in pytest, set ``dataset_name`` or ``dataset_class`` (and ``dataset_options``),
    and give a data root (``data_root``, or override the ``dataset_root`` fixture) unless the
    dataset needs none."""

    data_root: ClassVar[Path | None] = None
    size: ClassVar[int] = 32
    decode_per_split: ClassVar[int] = 2
    torch_threads: ClassVar[int | None] = None

    @fixture
    def dataset_root(self):
        """The data root handed to the dataset; override to build a fixture folder."""
        return self.data_root

    def kit_setup(self, root: Any, tmp_path: Path) -> DatasetSetup:
        return DatasetSetup(self.plugin_class(), self.plugin_options(), Path(root) if root is not None else None, self.size,
                            self.decode_per_split, cache_root=Path(tmp_path) / "cache")


add_check_tests(DatasetContractTests, CHECKS, needs_data_root=True)
