"""NIH ChestX-ray14 (the odd original header) and PneumoniaMNIST (local npz, never downloads)."""

import numpy as np
import pytest

from cxrbench.datasets import load_dataset
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.plugins.datasets.nih import NIH_LABELS, NIHChestXray14Dataset, parse_findings
from cxrbench.plugins.datasets.pneumoniamnist import (
    PneumoniaMNISTDataset,
    PneumoniaMNISTOptions,
    nearest_native_size,
)


def test_parse_findings():
    v = parse_findings("Cardiomegaly|Emphysema")
    assert sum(v) == 2 and v[NIH_LABELS.index("Cardiomegaly")] == 1.0 and v[NIH_LABELS.index("Emphysema")] == 1.0
    assert parse_findings("No Finding") == (0.0,) * 14
    with pytest.raises(ValueError, match="'Pneumonitis'"):
        parse_findings("Pneumonitis|Mass")


def test_nih_records_from_the_original_csv(nih_root):
    ds = NIHChestXray14Dataset(nih_root)
    recs = {r.key: r for r in ds.records()}
    assert len(recs) == 11 and "00000010_000.png" not in recs  # in neither list
    assert ds.split_notes["unlisted_images_left_out"] == 1
    r = recs["00000001_001.png"]
    assert r.patient_id == "1" and r.metadata == {"age": 58, "sex": "M", "view": "PA", "follow_up": 1}
    assert r.source.endswith("images_002/images/00000001_001.png")
    assert recs["00000001_000.png"].split == r.split  # same patient, same split
    assert {recs[k].split for k in ("00000008_000.png", "00000008_001.png", "00000009_000.png")} == {"test"}
    assert {r.split for r in recs.values()} == {"train", "val", "test"}


def test_nih_load_and_unknown_label_error(nih_root, cache):
    ds = load_dataset(NIHChestXray14Dataset(nih_root), size=16, cache_dir=cache, progress=False)
    assert ds.label_names == NIH_LABELS and len(ds.test) == 3
    assert ds.test.metadata["sex"] == ["F", "F", "M"]
    csv = nih_root / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text().replace("Hernia", "Hernia|Pneumonitis"))
    with pytest.raises(DatasetError, match=r"Data_Entry_2017.csv' row 5 .*'Pneumonitis'"):
        NIHChestXray14Dataset(nih_root).records()


def test_nih_missing_list_and_column(nih_root):
    (nih_root / "test_list.txt").unlink()
    with pytest.raises(DatasetError, match="test_list.txt"):
        NIHChestXray14Dataset(nih_root).records()
    csv = nih_root / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text().replace("Patient ID", "PatientID"))
    with pytest.raises(DatasetError, match=r"Data_Entry_2017.csv.*'Patient ID'"):
        NIHChestXray14Dataset(nih_root).records()


@pytest.mark.parametrize("size, native", [(16, 28), (28, 28), (29, 64), (64, 64), (100, 128), (256, 224)])
def test_nearest_native_size(size, native):
    assert nearest_native_size(size) == native


def test_pneumoniamnist_official_splits_and_native_size(medmnist_root, cache):
    ds = load_dataset(PneumoniaMNISTDataset(medmnist_root), size=48, cache_dir=cache, progress=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 4, 6)
    assert ds.info["splits"]["npz"] == "pneumoniamnist_64.npz" and ds.info["splits"]["native_size"] == 64
    assert ds.train.labels[:, 0].tolist() == [0.0, 1.0] * 6
    assert ds.train.patient_ids[0] == "train:0"
    small = load_dataset(PneumoniaMNISTDataset(medmnist_root), size=28, cache_dir=cache, progress=False)
    assert small.info["splits"]["npz"] == "pneumoniamnist.npz" and small.fingerprint != ds.fingerprint
    raw = np.load(medmnist_root / "pneumoniamnist.npz")["test_images"][2]
    from cxrbench.datasets import Preprocessing, preprocess_image

    assert np.array_equal(small.test.images[2, 0].numpy(), preprocess_image(raw, 28, Preprocessing()))


def test_pneumoniamnist_missing_file_says_what_to_download(medmnist_root, cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.medmnist fallback
    with pytest.raises(DatasetError) as err:
        load_dataset(PneumoniaMNISTDataset(medmnist_root), size=224, cache_dir=cache, progress=False)
    msg = str(err.value)
    assert "pneumoniamnist_224.npz" in msg and "python -m medmnist download" in msg
    assert "found pneumoniamnist.npz, pneumoniamnist_64.npz" in msg
    ok = load_dataset(PneumoniaMNISTDataset(medmnist_root, PneumoniaMNISTOptions(native_size=64)),
                      size=224, cache_dir=cache, progress=False)
    assert ok.train.images.shape[-1] == 224
    with pytest.raises(ConfigError):
        PneumoniaMNISTOptions(native_size=32)


def test_pneumoniamnist_malformed_npz(tmp_path, cache, make_npz):
    root = tmp_path / "m"
    make_npz(root / "pneumoniamnist.npz", 28)
    data = dict(np.load(root / "pneumoniamnist.npz"))
    del data["val_labels"]
    np.savez(root / "pneumoniamnist.npz", **data)
    with pytest.raises(DatasetError, match="'val_labels'"):
        load_dataset(PneumoniaMNISTDataset(root), size=28, cache_dir=cache, progress=False)
