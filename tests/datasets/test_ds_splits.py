"""carve_validation / split_by_patient / check_patient_disjoint."""

import math
from collections import Counter

import pytest

from cxrbench.contracts import ImageRecord
from cxrbench.datasets import check_patient_disjoint
from cxrbench.errors import LeakageError
from cxrbench.kit import carve_validation, split_by_patient


def _records(n_patients=100, per_patient=2, prevalence_every=4):
    out = []
    for p in range(n_patients):
        label = 1.0 if p % prevalence_every == 0 else 0.0
        for k in range(1 + (p % per_patient)):
            out.append(ImageRecord(key=f"p{p}-{k}", split="train", labels=(label,), patient_id=f"p{p}", source=None))
    return out


def test_carve_moves_whole_patients_about_the_fraction():
    recs = _records()
    out = carve_validation(recs, fraction=0.2, seed=3)
    assert [r.key for r in out] == [r.key for r in recs]  # order kept
    val = [r for r in out if r.split == "val"]
    train = [r for r in out if r.split == "train"]
    assert abs(len(val) - 0.2 * len(recs)) <= 3
    assert not {r.patient_id for r in val} & {r.patient_id for r in train}


def test_carve_is_stratified_and_deterministic():
    recs = _records(n_patients=200)
    a = carve_validation(recs, fraction=0.25, seed=7)
    b = carve_validation(list(reversed(recs)), fraction=0.25, seed=7)
    val_a = sorted(r.key for r in a if r.split == "val")
    assert val_a == sorted(r.key for r in b if r.split == "val")  # input order does not matter
    c = carve_validation(recs, fraction=0.25, seed=8)
    assert val_a != sorted(r.key for r in c if r.split == "val")
    prev_all = sum(r.labels[0] for r in recs) / len(recs)
    val = [r for r in a if r.split == "val"]
    prev_val = sum(r.labels[0] for r in val) / len(val)
    assert abs(prev_val - prev_all) < 0.05


def test_carve_leaves_other_splits_and_keeps_a_train_patient():
    recs = _records(n_patients=3) + [ImageRecord("t", "test", (1.0,), "q", None)]
    out = carve_validation(recs, fraction=0.9, seed=0, min_val=1)
    assert [r.split for r in out if r.key == "t"] == ["test"]
    assert any(r.split == "train" for r in out) and any(r.split == "val" for r in out)


def test_carve_multilabel_with_nan():
    recs = [
        ImageRecord(f"k{i}", "train", tuple(float(i % (j + 2) == 0) for j in range(5)) + (math.nan,), f"p{i}", None)
        for i in range(60)
    ]
    out = carve_validation(recs, fraction=0.2, seed=0)
    assert 8 <= sum(r.split == "val" for r in out) <= 16


def test_split_by_patient_three_ways():
    recs = _records(n_patients=300)
    out = split_by_patient(recs, test_fraction=0.2, val_fraction=0.1, seed=0)
    counts = Counter(r.split for r in out)
    n = len(recs)
    assert abs(counts["test"] - 0.2 * n) <= 4 and abs(counts["val"] - 0.1 * n) <= 4
    owners = {}
    for r in out:
        owners.setdefault(r.patient_id, set()).add(r.split)
    assert all(len(s) == 1 for s in owners.values())


def test_check_patient_disjoint_names_patients_and_splits():
    check_patient_disjoint({"train": ["a", "b", "a"], "val": ["c"], "test": ["d"]})
    with pytest.raises(LeakageError) as err:
        check_patient_disjoint({"train": ["a", "b", "x"], "val": ["c", "x"], "test": ["b", "d"]})
    msg = str(err.value)
    assert "'b' in test and train" in msg and "'x' in train and val" in msg and "2 patient(s)" in msg
