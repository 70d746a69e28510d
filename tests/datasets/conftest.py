"""Tiny on-disk fixtures shaped exactly like the real datasets (built in tmp_path)."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401 - imported at collection, so that no single test pays for it
from PIL import Image


def _gray(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A radiograph-ish gradient with noise: distinct content per image."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 120 * (xx / max(w - 1, 1)) * (yy / max(h - 1, 1))
    return np.clip(base + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)


def write_jpeg(path: Path, rng: np.random.Generator, h: int = 40, w: int = 48, rgb: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = _gray(rng, h, w)
    im = Image.fromarray(arr, "L")
    (im.convert("RGB") if rgb else im).save(path, quality=90)


# Kermany: names as in the real set. person7 exists in the official train AND test folders
# (different children), IM-0001 has two images, NORMAL2-IM-0001 is a different patient.
KERMANY_FILES = {
    "train/NORMAL": ["IM-0001-0001.jpeg", "IM-0001-0002.jpeg", "IM-0003-0001.jpeg", "IM-0005-0001.jpeg",
                     "NORMAL2-IM-0001-0001.jpeg", "NORMAL2-IM-0007-0001.jpeg", "IM-0009-0001-0001.jpeg",
                     "IM-0009-0001-0002.jpeg", "IM-0011-0001.jpeg", "NORMAL2-IM-0012-0001.jpeg"],
    "train/PNEUMONIA": ["person7_bacteria_25.jpeg", "person7_bacteria_26.jpeg", "person8_virus_27.jpeg",
                        "person9_bacteria_28.jpeg", "person10_virus_30.jpeg", "person11_bacteria_31.jpeg",
                        "person12_bacteria_32.jpeg", "person12_virus_33.jpeg", "person13_virus_34.jpeg",
                        "person14_bacteria_35.jpeg", "person1_virus_1_2.jpeg"],
    "test/NORMAL": ["IM-0002-0001.jpeg", "IM-0004-0001.jpeg", "NORMAL2-IM-0100-0001.jpeg"],
    "test/PNEUMONIA": ["person7_bacteria_1.jpeg", "person30_virus_70.jpeg", "person31_bacteria_71.jpeg"],
}


@pytest.fixture
def kermany_root(tmp_path: Path) -> Path:
    """<tmp>/data/chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg (27 images)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for sub, names in KERMANY_FILES.items():
        for i, name in enumerate(names):
            # varied aspect ratios, like the real (unsquashed) originals
            write_jpeg(root / "chest_xray" / sub / name, rng, h=32 + 4 * (i % 3), w=40 + 6 * (i % 4))
    return root


# --------------------------------------------------------------------------- DICOM


def write_dicom(path: Path, arr: np.ndarray, **tags) -> None:
    """A real DICOM file (Explicit VR Little Endian, uncompressed) holding ``arr``."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = tags.pop("PhotometricInterpretation", "MONOCHROME2")
    bits = 8 if arr.dtype == np.uint8 else 16
    ds.BitsAllocated = bits
    ds.BitsStored = tags.pop("BitsStored", bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    with warnings.catch_warnings():  # RSNA's ages ("61") are not valid DICOM AS values: as in the original
        warnings.simplefilter("ignore", UserWarning)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.PixelData = np.ascontiguousarray(arr).tobytes()
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


RSNA_LABELS = """patientId,x,y,width,height,Target
p-000,,,,,0
p-001,10.0,8.0,20.0,12.0,1
p-001,40.0,30.0,10.0,10.0,1
p-002,,,,,0
p-003,5.0,5.0,30.0,30.0,1
p-004,,,,,0
p-005,,,,,0
p-006,20.0,20.0,16.0,16.0,1
p-007,,,,,0
p-008,,,,,0
p-009,2.0,2.0,20.0,20.0,1
p-010,,,,,0
p-011,,,,,0
"""


@pytest.fixture
def rsna_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    root = tmp_path / "rsna"
    root.mkdir()
    (root / "stage_2_train_labels.csv").write_text(RSNA_LABELS)
    pids = sorted({line.split(",")[0] for line in RSNA_LABELS.splitlines()[1:]})
    classes = ["patientId,class"]
    for i, pid in enumerate(pids):
        positive = pid in ("p-001", "p-003", "p-006", "p-009")
        classes.append(f"{pid},{'Lung Opacity' if positive else 'Normal'}")
        if pid == "p-001":
            classes.append(f"{pid},Lung Opacity")  # one class row per box, as in the original
        if i % 2:  # 16-bit, MONOCHROME1, with rescale
            arr = (rng.integers(0, 4096, (64, 80))).astype(np.uint16)
            write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", arr, PatientSex="F", PatientAge="058Y",
                        ViewPosition="AP", PatientID=pid, BitsStored=12, PhotometricInterpretation="MONOCHROME1",
                        RescaleSlope="1", RescaleIntercept="0")
        else:  # 8-bit MONOCHROME2 as in the RSNA stage-2 files
            arr = _gray(rng, 64, 64)
            write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", arr, PatientSex="M", PatientAge="61",
                        ViewPosition="PA", PatientID=pid)
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(classes) + "\n")
    return root


# --------------------------------------------------------------------------- CheXpert / MIMIC

CHEXPERT_COLUMNS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
]


def _label_row(values: dict[str, str]) -> list[str]:
    return [values.get(c, "") for c in CHEXPERT_COLUMNS]


@pytest.fixture
def chexpert_root(tmp_path: Path) -> Path:
    """<tmp>/CheXpert-v1.0-small/{train.csv,valid.csv,train/...,valid/...} like the original."""
    rng = np.random.default_rng(2)
    folder = tmp_path / "CheXpert-v1.0-small"
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_COLUMNS)
    train_rows = []
    for p in range(1, 13):
        for study, view in ((1, "frontal"), (1, "lateral")):
            path = f"CheXpert-v1.0-small/train/patient{p:05d}/study{study}/view{1 if view == 'frontal' else 2}_{view}.jpg"
            labels = {"No Finding": "1.0"} if p % 3 == 0 else {"Pneumonia": "1.0", "Edema": "0.0"}
            if p in (4, 5):
                labels["Cardiomegaly"] = "-1.0"  # uncertain: excluded from train/val
            sex = "Female" if p % 2 else "Male"
            ap = "AP" if view == "frontal" else ""
            fl = "Frontal" if view == "frontal" else "Lateral"
            train_rows.append(f"{path},{sex},{40 + p},{fl},{ap}," + ",".join(_label_row(labels)))
            write_jpeg(tmp_path / path, rng, rgb=False)
    valid_rows = []
    for p in range(64541, 64545):
        path = f"CheXpert-v1.0-small/valid/patient{p:05d}/study1/view1_frontal.jpg"
        labels = {c: "0.0" for c in CHEXPERT_COLUMNS}
        labels["Pneumonia"] = "1.0" if p % 2 else "0.0"
        if p == 64543:
            labels["Edema"] = "-1.0"  # uncertain at test time: kept, NaN
        valid_rows.append(f"{path},Male,70,Frontal,PA," + ",".join(_label_row(labels)))
        write_jpeg(tmp_path / path, rng, rgb=False)
    (folder / "train.csv").write_text(header + "\n" + "\n".join(train_rows) + "\n")
    (folder / "valid.csv").write_text(header + "\n" + "\n".join(valid_rows) + "\n")
    return folder


def _write_gz(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write(text)


@pytest.fixture
def mimic_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    root = tmp_path / "mimic-cxr-jpg" / "2.0.0"
    root.mkdir(parents=True)
    meta = ["dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns"]
    split = ["dicom_id,study_id,subject_id,split"]
    chex = ["subject_id,study_id," + ",".join(CHEXPERT_COLUMNS)]
    plan = [  # subject, study, split, labels, views
        (10000032, 50414267, "train", {"Pneumonia": "1.0"}, ["PA", "LATERAL"]),
        (10000032, 53189527, "train", {"No Finding": "1.0"}, ["AP"]),
        (10000764, 57375967, "train", {"Pneumonia": "-1.0"}, ["AP"]),  # uncertain: out of train
        (10000898, 50771383, "train", {"Edema": "1.0", "Pneumonia": "0.0"}, ["PA"]),
        (10001122, 51632410, "train", {"No Finding": "1.0"}, ["PA"]),
        (11000001, 52000001, "validate", {"Pneumonia": "1.0"}, ["PA"]),
        (11000002, 52000002, "validate", {"No Finding": "1.0"}, ["AP"]),
        (12000001, 53000001, "test", {"Pneumonia": "-1.0", "Edema": "1.0"}, ["PA"]),  # kept, NaN
        (12000002, 53000002, "test", {"No Finding": "1.0"}, ["AP"]),
        (12000003, 53000003, "test", None, ["PA"]),  # no labeller row: dropped
    ]
    n = 0
    for subj, study, sp, labels, views in plan:
        if labels is not None:
            chex.append(f"{subj},{study}," + ",".join(_label_row(labels)))
        for view in views:
            n += 1
            dicom = f"{n:08x}-abcdef01-23456789-abcdef01-23456789"
            meta.append(f"{dicom},{subj},{study},CHEST (PA AND LAT),{view},40,48")
            split.append(f"{dicom},{study},{subj},{sp}")
            write_jpeg(root / "files" / f"p{str(subj)[:2]}" / f"p{subj}" / f"s{study}" / f"{dicom}.jpg", rng, rgb=False)
    _write_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", "\n".join(meta) + "\n")
    _write_gz(root / "mimic-cxr-2.0.0-split.csv.gz", "\n".join(split) + "\n")
    _write_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", "\n".join(chex) + "\n")
    return root


# --------------------------------------------------------------------------- NIH

NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
NIH_ROWS = [
    ("00000001_000.png", "Cardiomegaly", 0, 1, 58, "M", "PA", "train"),
    ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, 58, "M", "PA", "train"),
    ("00000002_000.png", "No Finding", 0, 2, 81, "M", "PA", "train"),
    ("00000003_000.png", "Hernia", 0, 3, 74, "F", "PA", "train"),
    ("00000004_000.png", "Mass|Nodule", 0, 4, 82, "M", "AP", "train"),
    ("00000005_000.png", "No Finding", 0, 5, 69, "F", "PA", "train"),
    ("00000006_000.png", "Pleural_Thickening", 0, 6, 55, "F", "PA", "train"),
    ("00000007_000.png", "Infiltration", 0, 7, 33, "M", "AP", "train"),
    ("00000008_000.png", "No Finding", 0, 8, 68, "F", "PA", "test"),
    ("00000008_001.png", "Pneumonia|Effusion", 1, 8, 68, "F", "AP", "test"),
    ("00000009_000.png", "Atelectasis", 0, 9, 72, "M", "PA", "test"),
    ("00000010_000.png", "No Finding", 0, 10, 84, "F", "PA", None),  # in no list
]


@pytest.fixture
def nih_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    root = tmp_path / "nih"
    lines = [NIH_HEADER]
    for name, findings, fu, pid, age, sex, view, _ in NIH_ROWS:
        lines.append(f"{name},{findings},{fu},{pid},{age},{sex},{view},2500,2048,0.143,0.143,")
    root.mkdir()
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(r[0] for r in NIH_ROWS if r[7] == "train") + "\n")
    (root / "test_list.txt").write_text("\n".join(r[0] for r in NIH_ROWS if r[7] == "test") + "\n")
    for i, row in enumerate(NIH_ROWS):  # the Kaggle layout: images_001/images/, images_002/images/
        folder = root / f"images_{1 + i % 2:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_gray(rng, 36, 36), "L").save(folder / row[0])
    return root


# --------------------------------------------------------------------------- PneumoniaMNIST


def write_medmnist_npz(path: Path, size: int, n=(12, 4, 6), seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 256, (k, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(k) % 2).reshape(k, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


@pytest.fixture
def medmnist_root(tmp_path: Path) -> Path:
    root = tmp_path / "medmnist-data"
    write_medmnist_npz(root / "pneumoniamnist.npz", 28)
    write_medmnist_npz(root / "pneumoniamnist_64.npz", 64)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make_jpeg():
    """write_jpeg(path, rng, h=40, w=48, rgb=True) for tests that add files."""
    return write_jpeg


@pytest.fixture
def make_dicom():
    """write_dicom(path, arr, **tags) for tests that add DICOM files."""
    return write_dicom


@pytest.fixture
def make_npz():
    """write_medmnist_npz(path, size, n=(train, val, test), seed=5)."""
    return write_medmnist_npz
