"""load_dataset: decode-once cache, fingerprint, unreadable images, errors, leakage, locations."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrbench.contracts import Dataset, ImageRecord
from cxrbench.datasets import (
    LoadedDataset,
    Preprocessing,
    default_cache_dir,
    load_dataset,
    resolve_data_root,
)
from cxrbench.errors import DatasetError, LeakageError
from cxrbench.plugins.datasets.kermany import KermanyDataset


def _load(root, cache, **kw):
    return load_dataset(KermanyDataset(root), size=kw.pop("size", 32), cache_dir=cache, progress=False, **kw)


def test_load_shapes_types_and_info(kermany_root, cache):
    ds = _load(kermany_root, cache)
    assert isinstance(ds, LoadedDataset) and ds.name == "kermany" and ds.label_names == ("pneumonia",)
    assert set(ds.tests) == {"test"}
    for split in ds.splits().values():
        assert split.images.dtype == torch.uint8 and tuple(split.images.shape[1:]) == (1, 32, 32)
        assert split.labels.dtype == torch.float32 and split.labels.shape == (len(split), 1)
        assert len(split.patient_ids) == len(split.keys) == len(split)
        assert split.masks is None
        assert set(split.metadata) == {"finding", "official_split"}
    assert len(ds.train) + len(ds.val) == 21 and len(ds.test) == 6
    info = ds.info
    assert info["size"] == 32 and info["cache_hit"] is False
    assert info["n"] == {"train": len(ds.train), "val": len(ds.val), "test": 6}
    assert info["prevalence"]["test"]["pneumonia"] == 0.5
    assert info["skipped"] == {"count": 0, "paths": [], "errors": []}
    assert info["splits"]["val_seed"] == 0
    assert info["preprocessing"] == {"resize": "pad", "equalize": True, "on_unreadable": "fail", "min_side": 8}
    assert {"decode_s", "cache_load_s", "records_s", "fingerprint_s"} <= set(info["timings"])
    folder = Path(info["cache_path"])
    assert folder.parent == cache / "datasets"
    assert folder.name.startswith(f"kermany-{ds.fingerprint[:16]}-32-")
    assert len(ds.fingerprint) == 64
    index = json.loads((folder / "index.json").read_text())
    assert len(index["records"]) == 27 and np.load(folder / "images.npy").shape == (27, 1, 32, 32)


def test_second_load_decodes_nothing_and_is_memory_mapped(kermany_root, cache, monkeypatch):
    first = _load(kermany_root, cache)

    def boom(self, record):
        raise AssertionError(f"decoded {record.key} on a warm cache")

    monkeypatch.setattr(KermanyDataset, "read_image", boom)
    second = _load(kermany_root, cache)
    assert second.info["cache_hit"] is True and second.info["timings"]["decode_s"] == 0.0
    assert second.fingerprint == first.fingerprint
    for name, split in first.splits().items():
        other = second.splits()[name]
        assert torch.equal(split.images, other.images) and other.keys == split.keys
        assert other.patient_ids == split.patient_ids and other.metadata == split.metadata
    # the images are views on the memory-mapped cache file, not copies in memory
    maps = Path("/proc/self/maps")
    if maps.exists():
        ptr = second.train.images.data_ptr()
        cache_file = str(Path(second.info["cache_path"]) / "images.npy")
        mapped = []
        for line in maps.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[5] == cache_file:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                mapped.append(lo <= ptr < hi)
        assert any(mapped)


def test_other_size_or_preprocessing_is_another_cache(kermany_root, cache):
    a = _load(kermany_root, cache, size=32)
    b = _load(kermany_root, cache, size=16)
    c = _load(kermany_root, cache, size=32, preprocessing=Preprocessing(equalize=False))
    assert len({a.info["cache_path"], b.info["cache_path"], c.info["cache_path"]}) == 3
    assert b.train.images.shape[-1] == 16 and not c.info["cache_hit"]
    assert a.fingerprint == b.fingerprint == c.fingerprint


def test_fingerprint_changes_when_a_file_changes(kermany_root, cache):
    a = _load(kermany_root, cache)
    target = kermany_root / "chest_xray" / "train" / "NORMAL" / "IM-0003-0001.jpeg"
    target.write_bytes(target.read_bytes() + b"\0" * 10)  # same image, other size
    b = _load(kermany_root, cache)
    assert a.fingerprint != b.fingerprint and b.info["cache_hit"] is False
    # a label change (file moved to the other class) changes it too
    moved = kermany_root / "chest_xray" / "test" / "PNEUMONIA" / "person30_virus_70.jpeg"
    moved.rename(kermany_root / "chest_xray" / "test" / "NORMAL" / "person30_virus_70.jpeg")
    c = _load(kermany_root, cache)
    assert c.fingerprint not in (a.fingerprint, b.fingerprint)


def test_unreadable_image_fails_by_default_and_is_skipped_on_request(kermany_root, cache):
    bad = kermany_root / "chest_xray" / "train" / "PNEUMONIA" / "person9_bacteria_28.jpeg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DatasetError, match="person9_bacteria_28.jpeg") as err:
        _load(kermany_root, cache)
    assert "on_unreadable" in str(err.value)
    ds = _load(kermany_root, cache, preprocessing=Preprocessing(on_unreadable="skip"))
    assert ds.info["skipped"]["count"] == 1
    assert ds.info["skipped"]["paths"] == [str(bad)]
    assert len(ds.train) + len(ds.val) + len(ds.test) == 26
    assert "train/PNEUMONIA/person9_bacteria_28.jpeg" not in ds.train.keys + ds.val.keys
    again = _load(kermany_root, cache, preprocessing=Preprocessing(on_unreadable="skip"))
    assert again.info["cache_hit"] and again.info["skipped"]["paths"] == [str(bad)]


class TinyDataset(Dataset):
    """In-memory dataset driven by a list of records (tests only)."""

    name = "tiny"
    label_names = ("a", "b")
    needs_root = False

    def __init__(self, recs, reads=None):
        super().__init__(None)
        self._recs = recs
        self.reads = reads if reads is not None else []

    def records(self):
        return list(self._recs)

    def read_image(self, record):
        self.reads.append(record.key)
        if record.source == "missing":
            raise FileNotFoundError(record.key)
        return np.full((12, 10), 40 + 5 * int(record.key[1:]), np.uint8)

    def read_mask(self, record):
        m = np.zeros((12, 10), np.uint8)
        m[:6] = 1
        return m


def _tiny_records(overlap=False, masks=False):
    recs = []
    for i in range(8):
        split = "train" if i < 5 else ("val" if i < 6 else "test")
        pid = "p0" if (overlap and i in (0, 7)) else f"p{i}"
        recs.append(ImageRecord(f"k{i}", split, (1.0, math.nan if i == 7 else 0.0), pid, i,
                                {"sex": "F" if i % 2 else "M"}, has_mask=masks and i % 2 == 0))
    return recs


def test_leakage_across_splits_is_refused(cache):
    with pytest.raises(LeakageError, match="'p0' in test and train"):
        load_dataset(TinyDataset(_tiny_records(overlap=True)), size=8, cache_dir=cache, progress=False)


def test_nan_labels_masks_and_metadata_survive_the_cache(cache):
    for _ in range(2):
        ds = load_dataset(TinyDataset(_tiny_records(masks=True)), size=8, cache_dir=cache, progress=False)
        assert math.isnan(ds.test.labels[1, 1].item()) and ds.test.labels[1, 0].item() == 1.0
        assert ds.train.masks is not None and ds.train.masks.shape == (5, 1, 8, 8)
        assert ds.train.masks[0].sum() > 0 and ds.train.masks[1].sum() == 0  # k1 has no mask
        assert ds.train.metadata["sex"] == ["M", "F", "M", "F", "M"]
        assert ds.info["prevalence"]["test"] == {"a": 1.0, "b": 0.0}  # NaN not counted


def test_harness_carves_val_when_a_plugin_gives_none(cache):
    recs = [ImageRecord(f"k{i}", "train" if i < 20 else "test", (float(i % 2), 0.0), f"p{i}", None) for i in range(24)]
    ds = load_dataset(TinyDataset(recs), size=8, cache_dir=cache, progress=False)
    assert len(ds.val) >= 1 and len(ds.train) + len(ds.val) == 20
    assert "carved" in ds.info["splits"]["val"]


def test_malformed_records_are_dataset_errors(cache):
    recs = _tiny_records()
    bad = recs[:1] + [ImageRecord("k0", "train", (0.0, 0.0), "x", None)] + recs[1:]
    with pytest.raises(DatasetError, match="share the key 'k0'"):
        load_dataset(TinyDataset(bad), size=8, cache_dir=cache, progress=False)
    wrong = [ImageRecord("z", "train", (1.0,), "x", None)] + recs
    with pytest.raises(DatasetError, match="has 1 labels, expected 2"):
        load_dataset(TinyDataset(wrong), size=8, cache_dir=cache, progress=False)
    with pytest.raises(DatasetError, match="no 'test' images"):
        load_dataset(TinyDataset([r for r in recs if r.split != "test"]), size=8, cache_dir=cache, progress=False)


def test_missing_dataset_names_the_folder_and_layout(tmp_path, cache):
    with pytest.raises(DatasetError, match="needs a data root"):
        load_dataset(KermanyDataset(None), size=8, cache_dir=cache, progress=False)
    with pytest.raises(DatasetError) as err:
        load_dataset(KermanyDataset(tmp_path), size=8, cache_dir=cache, progress=False)
    msg = str(err.value)
    assert "chest_xray" in msg and "NORMAL,PNEUMONIA" in msg and "\n" not in msg


def test_listed_but_missing_file_is_named(cache, tmp_path):
    recs = _tiny_records()
    recs[2] = ImageRecord("k2", "train", (1.0, 0.0), "p2", str(tmp_path / "gone.png"))
    with pytest.raises(DatasetError, match="gone.png"):
        load_dataset(TinyDataset(recs), size=8, cache_dir=cache, progress=False)
    ds = load_dataset(TinyDataset(recs), size=8, cache_dir=cache, progress=False,
                      preprocessing=Preprocessing(on_unreadable="skip"))
    assert ds.info["skipped"]["count"] == 1 and ds.info["skipped"]["errors"] == ["file not found"]


def test_a_broken_cache_folder_is_rebuilt(kermany_root, cache):
    first = _load(kermany_root, cache)
    folder = Path(first.info["cache_path"])
    (folder / "images.npy").unlink()  # (never truncate a file that is memory-mapped)
    (folder / "images.npy").write_bytes(b"garbage")
    again = _load(kermany_root, cache)
    assert again.info["cache_hit"] is False
    assert torch.equal(again.train.images, first.train.images)


def test_resolve_data_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    assert resolve_data_root(None, None) is None
    assert resolve_data_root(None, "~/spec") == Path("~/spec").expanduser()
    monkeypatch.setenv("CXRBENCH_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root(None, "spec") == tmp_path / "env"
    assert resolve_data_root(str(tmp_path / "cli"), "spec") == tmp_path / "cli"


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CXRBENCH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "cxrbench"
