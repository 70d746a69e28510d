"""CheXpert and MIMIC-CXR-JPG: label parsing and the uncertainty rule (out of train, NaN at test)."""

import math

import pytest

from cxrbench.datasets import load_dataset
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.plugins.datasets.chexpert import (
    CHEXPERT_LABELS,
    CheXpertDataset,
    CheXpertOptions,
    chexpert_labels,
)
from cxrbench.plugins.datasets.mimic import MimicCXRDataset, MimicOptions

PNEUMONIA = CHEXPERT_LABELS.index("Pneumonia")
EDEMA = CHEXPERT_LABELS.index("Edema")


def test_chexpert_label_values():
    labels, uncertain = chexpert_labels(["1.0", "", "0.0", float("nan"), "-1.0", 1, 0, -1.0])
    assert labels[:4] == (1.0, 0.0, 0.0, 0.0) and math.isnan(labels[4]) and labels[5:7] == (1.0, 0.0)
    assert uncertain
    assert chexpert_labels([1.0, 0.0]) == ((1.0, 0.0), False)
    with pytest.raises(ValueError, match="'2'"):
        chexpert_labels(["2"])


def test_chexpert_uncertainty_rule_frontal_and_patients(chexpert_root):
    ds = CheXpertDataset(chexpert_root)
    recs = ds.records()
    train_val = [r for r in recs if r.split in ("train", "val")]
    test = [r for r in recs if r.split == "test"]
    assert all("frontal" in r.key for r in recs)  # laterals dropped
    # patients 4 and 5 have an uncertain Cardiomegaly: excluded from train/val
    assert {r.patient_id for r in train_val} == {f"patient{p:05d}" for p in range(1, 13)} - {"patient00004", "patient00005"}
    assert all(not any(math.isnan(v) for v in r.labels) for r in train_val)
    # at test time the image stays and the uncertain label is NaN, the others are kept
    unc = next(r for r in test if r.patient_id == "patient64543")
    assert math.isnan(unc.labels[EDEMA]) and unc.labels[PNEUMONIA] == 1.0
    assert len(test) == 4
    r1 = next(r for r in recs if r.patient_id == "patient00001")
    assert r1.key == "train/patient00001/study1/view1_frontal.jpg"
    assert r1.labels[PNEUMONIA] == 1.0 and r1.labels[0] == 0.0  # blank No Finding -> 0
    assert r1.metadata == {"sex": "F", "age": 41, "view": "AP"}
    assert ds.split_notes["train.csv_dropped"] == {"lateral": 12, "uncertain": 2}


def test_chexpert_load_nan_survives_and_label_subset(chexpert_root, cache):
    ds = load_dataset(CheXpertDataset(chexpert_root.parent), size=16, cache_dir=cache, progress=False)
    assert ds.label_names == CHEXPERT_LABELS and len(ds.test) == 4
    assert int(ds.test.labels.isnan().sum()) == 1 and not ds.train.labels.isnan().any()
    assert len(ds.val) >= 1
    sub = CheXpertDataset(chexpert_root, CheXpertOptions(labels=["Pneumonia", "Edema"]))
    assert sub.label_names == ("Pneumonia", "Edema")
    recs = sub.records()
    # Cardiomegaly is not selected: its uncertainty no longer excludes patients 4 and 5
    assert "patient00004" in {r.patient_id for r in recs}
    with pytest.raises(ConfigError, match="Pneumonitis"):
        CheXpertOptions(labels=["Pneumonitis"])


def test_chexpert_missing_column_names_file_and_column(chexpert_root):
    csv = chexpert_root / "valid.csv"
    csv.write_text(csv.read_text().replace("Frontal/Lateral", "View"))
    with pytest.raises(DatasetError, match=r"valid.csv.*'Frontal/Lateral'"):
        CheXpertDataset(chexpert_root).records()
    csv.unlink()
    with pytest.raises(DatasetError, match=r"missing file .*valid.csv"):
        CheXpertDataset(chexpert_root).records()


def test_mimic_official_split_uncertainty_and_views(mimic_root, cache):
    ds = MimicCXRDataset(mimic_root.parent.parent)  # root holding mimic-cxr-jpg/2.0.0
    recs = ds.records()
    by_split = {s: [r for r in recs if r.split == s] for s in ("train", "val", "test")}
    assert len(by_split["train"]) == 4  # LATERAL dropped, uncertain study dropped
    assert len(by_split["val"]) == 2 and len(by_split["test"]) == 2
    assert ds.split_notes["dropped"] == {"view": 1, "no_split": 0, "no_labels": 1, "uncertain": 1}
    unc = next(r for r in by_split["test"] if r.patient_id == "p12000001")
    assert math.isnan(unc.labels[PNEUMONIA]) and unc.labels[EDEMA] == 1.0
    r = by_split["train"][0]
    assert r.key.startswith("files/p10/p10000032/s50414267/") and r.key.endswith(".jpg")
    assert r.metadata == {"view": "PA"}  # no patients.csv: no sex / age
    loaded = load_dataset(MimicCXRDataset(mimic_root), size=16, cache_dir=cache, progress=False)
    assert len(loaded.train) == 4 and int(loaded.test.labels.isnan().sum()) == 1


def test_mimic_patients_csv_adds_demographics(mimic_root):
    (mimic_root / "patients.csv").write_text(
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n10000032,F,52,2180,2014 - 2016,\n"
    )
    recs = MimicCXRDataset(mimic_root, MimicOptions(views=["PA"])).records()
    assert all(r.metadata["view"] == "PA" for r in recs)
    r = next(r for r in recs if r.patient_id == "p10000032")
    assert r.metadata["sex"] == "F" and r.metadata["age"] == 52
    assert next(r for r in recs if r.patient_id == "p10000898").metadata["sex"] is None


def test_mimic_missing_files_are_named(mimic_root):
    (mimic_root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with pytest.raises(DatasetError, match="mimic-cxr-2.0.0-split.csv.gz"):
        MimicCXRDataset(mimic_root).records()
    (mimic_root / "mimic-cxr-2.0.0-metadata.csv.gz").unlink()
    with pytest.raises(DatasetError, match="not found under"):
        MimicCXRDataset(mimic_root).records()
