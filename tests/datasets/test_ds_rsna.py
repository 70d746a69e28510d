"""RSNA Pneumonia: real DICOM files, label CSVs with one row per box, masks, header metadata."""

import numpy as np
import pydicom
import pytest

from cxrbench.datasets import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.plugins.datasets.rsna import (
    RSNAOptions,
    RSNAPneumoniaDataset,
    dicom_to_array,
    parse_dicom_age,
)


def test_records_labels_boxes_metadata_and_split(rsna_root, cache):
    ds = RSNAPneumoniaDataset(rsna_root)
    ds.cache_root = cache
    recs = {r.patient_id: r for r in ds.records()}
    assert len(recs) == 12  # p-001 has two box rows but is one image
    assert recs["p-001"].labels == (1.0,) and recs["p-000"].labels == (0.0,)
    assert recs["p-001"].source[1] == ((10.0, 8.0, 20.0, 12.0), (40.0, 30.0, 10.0, 10.0))
    assert recs["p-001"].metadata == {"sex": "F", "age": 58, "view": "AP", "n_boxes": 2, "class": "Lung Opacity"}
    assert recs["p-000"].metadata["sex"] == "M" and recs["p-000"].metadata["age"] == 61
    assert recs["p-000"].metadata["view"] == "PA" and recs["p-000"].metadata["class"] == "Normal"
    splits = {r.split for r in recs.values()}
    assert splits == {"train", "val", "test"}
    assert ds.split_notes["seed"] == 0
    other = RSNAPneumoniaDataset(rsna_root, RSNAOptions(seed=5))
    other.cache_root = cache
    other.records()
    assert other.split_notes["seed"] == 5


def test_header_sidecar_avoids_rereading(rsna_root, cache, monkeypatch):
    ds = RSNAPneumoniaDataset(rsna_root)
    ds.cache_root = cache
    first = ds.records()
    assert list((cache / "datasets" / "_headers").glob("rsna-pneumonia-*.json"))

    def no_read(*a, **k):
        raise AssertionError("header re-read")

    monkeypatch.setattr(pydicom, "dcmread", no_read)
    again = RSNAPneumoniaDataset(rsna_root)
    again.cache_root = cache
    assert [r.metadata for r in again.records()] == [r.metadata for r in first]


def test_load_with_masks_from_boxes(rsna_root, cache):
    ds = load_dataset(RSNAPneumoniaDataset(rsna_root), size=32, cache_dir=cache, progress=False)
    everything = ds.splits()
    assert sum(len(s) for s in everything.values()) == 12
    for split in everything.values():
        assert split.masks is not None and split.masks.shape == split.images.shape
        for k, pid in enumerate(split.patient_ids):
            has_box = split.labels[k, 0].item() == 1.0
            assert (split.masks[k].sum().item() > 0) == has_box
    assert ds.info["n_patients"]["test"] == len(ds.test)


def test_dicom_pixels_rescale_voi_and_monochrome1(tmp_path, make_dicom):
    arr = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    make_dicom(tmp_path / "m1.dcm", arr, PhotometricInterpretation="MONOCHROME1",
               RescaleSlope="2", RescaleIntercept="-10")
    out = dicom_to_array(pydicom.dcmread(tmp_path / "m1.dcm"))
    assert out.dtype == np.uint16 and out[0, 0] == 65535 and out[-1, -1] == 0  # inverted
    make_dicom(tmp_path / "w.dcm", arr, WindowCenter="1000", WindowWidth="500")
    win = dicom_to_array(pydicom.dcmread(tmp_path / "w.dcm"))
    assert win[0, 0] == 0 and win[-1, -1] == 65535  # clipped by the window
    assert (win == 0).sum() > 700 and (win == 65535).sum() > 2800
    u8 = np.full((8, 8), 30, np.uint8)
    make_dicom(tmp_path / "u8.dcm", u8, PhotometricInterpretation="MONOCHROME1")
    out8 = dicom_to_array(pydicom.dcmread(tmp_path / "u8.dcm"))
    assert out8.dtype == np.uint8 and (out8 == 225).all()


@pytest.mark.parametrize("value, years", [("058Y", 58), ("61", 61), ("006M", 0), ("", None), (None, None)])
def test_dicom_age(value, years):
    assert parse_dicom_age(value) == years


def test_missing_column_and_file_are_named(rsna_root, cache):
    csv = rsna_root / "stage_2_train_labels.csv"
    csv.write_text(csv.read_text().replace("Target", "Label"))
    with pytest.raises(DatasetError, match=r"stage_2_train_labels.csv.*'Target'"):
        load_dataset(RSNAPneumoniaDataset(rsna_root), size=16, cache_dir=cache, progress=False)
    csv.unlink()
    with pytest.raises(DatasetError, match=r"missing file .*stage_2_train_labels.csv"):
        load_dataset(RSNAPneumoniaDataset(rsna_root), size=16, cache_dir=cache, progress=False)


def test_missing_dicom_fails_or_is_skipped(rsna_root, cache):
    from cxrbench.datasets import Preprocessing

    (rsna_root / "stage_2_train_images" / "p-004.dcm").unlink()
    with pytest.raises(DatasetError, match="p-004.dcm"):
        load_dataset(RSNAPneumoniaDataset(rsna_root), size=16, cache_dir=cache, progress=False)
    ds = load_dataset(RSNAPneumoniaDataset(rsna_root), size=16, cache_dir=cache, progress=False,
                      preprocessing=Preprocessing(on_unreadable="skip"))
    assert ds.info["skipped"]["count"] == 1 and ds.info["skipped"]["paths"][0].endswith("p-004.dcm")
