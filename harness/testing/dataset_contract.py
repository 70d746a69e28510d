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
harness's loader, so a failure points at the plugin, not at the cache.
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

__all__ = ["CHECKS", "DatasetContractTests", "DatasetSetup", "SPLITS", "check_image_array"]

SPLITS = ("train", "val", "test")


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
          check_missing_root]


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
