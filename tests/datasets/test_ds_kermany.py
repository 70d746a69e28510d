"""Kermany plugin: patient ids from file names, split namespacing, root variants, val carve."""

import shutil

import numpy as np
import pytest

from cxrbench.datasets import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.plugins.datasets.kermany import KermanyDataset, KermanyOptions


@pytest.mark.parametrize(
    "name, pid, finding",
    [
        ("person1000_bacteria_2931.jpeg", "person1000", "bacteria"),
        ("person1000_virus_1681.jpeg", "person1000", "virus"),
        ("person1_virus_1_2.jpeg", "person1", "virus"),
        ("IM-0115-0001.jpeg", "IM-0115", "normal"),
        ("IM-0011-0001-0002.jpeg", "IM-0011", "normal"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427", "normal"),
        ("scan.jpeg", None, None),
    ],
)
def test_patient_id_from_file_name(name, pid, finding):
    assert KermanyDataset.parse_name(name) == (pid, finding)


def test_records_labels_namespaces_and_metadata(kermany_root):
    ds = KermanyDataset(kermany_root)
    recs = {r.key: r for r in ds.records()}
    assert len(recs) == 27
    train_p7 = recs["train/PNEUMONIA/person7_bacteria_25.jpeg"]
    test_p7 = recs["test/PNEUMONIA/person7_bacteria_1.jpeg"]
    # same number, different children: namespaced by the official split
    assert train_p7.patient_id == "train:person7" and test_p7.patient_id == "test:person7"
    assert train_p7.labels == (1.0,) and train_p7.metadata == {"finding": "bacteria", "official_split": "train"}
    assert recs["train/NORMAL/NORMAL2-IM-0001-0001.jpeg"].patient_id == "train:NORMAL2-IM-0001"
    assert recs["train/NORMAL/IM-0001-0002.jpeg"].patient_id == "train:IM-0001"
    assert recs["test/NORMAL/IM-0002-0001.jpeg"].labels == (0.0,)
    # both images of a patient land in the same split
    assert recs["train/NORMAL/IM-0001-0001.jpeg"].split == recs["train/NORMAL/IM-0001-0002.jpeg"].split
    assert recs["train/PNEUMONIA/person12_bacteria_32.jpeg"].split == recs["train/PNEUMONIA/person12_virus_33.jpeg"].split
    assert {r.split for r in recs.values()} == {"train", "val", "test"}
    assert ds.split_notes["val_seed"] == 0


def test_val_carve_follows_options(kermany_root):
    a = {r.key: r.split for r in KermanyDataset(kermany_root, KermanyOptions(val_seed=0)).records()}
    b = {r.key: r.split for r in KermanyDataset(kermany_root, KermanyOptions(val_seed=0)).records()}
    c = {r.key: r.split for r in KermanyDataset(kermany_root, KermanyOptions(val_fraction=0.4)).records()}
    assert a == b
    assert sum(s == "val" for s in c.values()) > sum(s == "val" for s in a.values())


@pytest.mark.parametrize("rel", ["", "chest_xray", "nested"])
def test_root_may_be_parent_folder_or_kermany_subdir(kermany_root, tmp_path, rel, cache):
    if rel == "nested":
        root = tmp_path / "all-data"
        (root / "kermany").mkdir(parents=True)
        shutil.move(str(kermany_root / "chest_xray"), root / "kermany" / "chest_xray")
    else:
        root = kermany_root / rel if rel else kermany_root
    ds = load_dataset(KermanyDataset(root), size=16, cache_dir=cache, progress=False)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 27


def test_small_official_val_is_merged_then_carved_large_one_is_kept(kermany_root, make_jpeg):
    rng = np.random.default_rng(0)
    val = kermany_root / "chest_xray" / "val"
    make_jpeg(val / "NORMAL" / "NORMAL2-IM-1427-0001.jpeg", rng)
    make_jpeg(val / "PNEUMONIA" / "person1946_bacteria_4874.jpeg", rng)
    recs = KermanyDataset(kermany_root).records()
    merged = [r for r in recs if r.metadata["official_split"] == "val"]
    assert len(merged) == 2 and all(r.patient_id.startswith("train:") for r in merged)
    ds = KermanyDataset(kermany_root)
    ds.records()
    assert "merged into train" in ds.split_notes["val"]
    kept = KermanyDataset(kermany_root, KermanyOptions(min_official_val=2))
    recs = kept.records()
    assert sorted(r.key for r in recs if r.split == "val") == [
        "val/NORMAL/NORMAL2-IM-1427-0001.jpeg", "val/PNEUMONIA/person1946_bacteria_4874.jpeg"]
    assert kept.split_notes["val"].startswith("official val folder")


def test_missing_class_folder_is_named(kermany_root, cache):
    shutil.rmtree(kermany_root / "chest_xray" / "test" / "PNEUMONIA")
    with pytest.raises(DatasetError, match=r"test/PNEUMONIA"):
        KermanyDataset(kermany_root).records()


def test_unparsed_names_get_one_patient_per_file(kermany_root, make_jpeg):
    make_jpeg(kermany_root / "chest_xray" / "train" / "NORMAL" / "odd name.jpeg", np.random.default_rng(1))
    ds = KermanyDataset(kermany_root)
    rec = next(r for r in ds.records() if r.key.endswith("odd name.jpeg"))
    assert rec.patient_id == "train:file-odd name"
    assert ds.split_notes["unparsed_names"]["count"] == 1
