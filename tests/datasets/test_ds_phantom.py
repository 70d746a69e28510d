"""phantom: the embedded simulated dataset (deterministic, masks, metadata, learnable signal)."""

import time
from collections import Counter

import numpy as np
import pytest

from cxrbench.datasets import load_dataset
from cxrbench.errors import ConfigError
from cxrbench.plugins.datasets.phantom import PhantomDataset, PhantomOptions

SMALL = PhantomOptions(n_train=40, n_val=10, n_test=20, render_size=64)


def test_records_counts_patients_and_metadata():
    ds = PhantomDataset(None, SMALL)
    recs = ds.records()
    counts = Counter(r.split for r in recs)
    assert counts == {"train": 40, "val": 10, "test": 20}
    per_patient = Counter(r.patient_id for r in recs)
    assert max(per_patient.values()) == 2 and min(per_patient.values()) == 1
    for pid, n in per_patient.items():
        labels = {r.labels for r in recs if r.patient_id == pid}
        assert len(labels) == 1  # a patient's images share the label
    assert all(r.metadata["sex"] in ("F", "M") and 18 <= r.metadata["age"] <= 90 for r in recs)
    assert all(r.has_mask for r in recs)


def test_deterministic_from_seed():
    a = PhantomDataset(None, SMALL)
    b = PhantomDataset(None, SMALL)
    ra, rb = a.records(), b.records()
    assert [(r.key, r.labels, r.patient_id) for r in ra] == [(r.key, r.labels, r.patient_id) for r in rb]
    assert np.array_equal(a.read_image(ra[3]), b.read_image(rb[3]))
    c = PhantomDataset(None, PhantomOptions(n_train=40, n_val=10, n_test=20, render_size=64, seed=1))
    assert not np.array_equal(a.read_image(ra[3]), c.read_image(c.records()[3]))


def test_images_masks_and_the_opacity_signal():
    ds = PhantomDataset(None, PhantomOptions(n_train=120, n_val=2, n_test=2, render_size=64))
    recs = [r for r in ds.records() if r.split == "train"]
    img = ds.read_image(recs[0])
    mask = ds.read_mask(recs[0])
    assert img.shape == (64, 64) and img.dtype == np.uint8 and img.std() > 20
    assert mask.shape == (64, 64) and 0.1 < mask.mean() < 0.5
    # inside the lungs, positives are brighter on average (the opacity) but the classes overlap
    pos, neg = [], []
    for r in recs:
        m = ds.read_mask(r).astype(bool)
        v = ds.read_image(r)[m].astype(float)
        body = ds.read_image(r).astype(float).mean()
        (pos if r.labels[0] == 1.0 else neg).append(np.percentile(v, 95) - body)
    assert np.mean(pos) > np.mean(neg)
    assert min(pos) < max(neg)  # not separable by this simple statistic: not trivial


def test_prevalence_option():
    none = PhantomDataset(None, PhantomOptions(n_train=30, n_val=5, n_test=5, prevalence=0.0)).records()
    assert all(r.labels == (0.0,) for r in none)
    with pytest.raises(ConfigError):
        PhantomOptions(n_train=1)
    with pytest.raises(ConfigError):
        PhantomOptions(prevalence=1.5)


def test_load_through_the_harness_with_masks(cache):
    t = time.perf_counter()
    ds = load_dataset(PhantomDataset(None, SMALL), size=32, cache_dir=cache, progress=False)
    assert time.perf_counter() - t < 5
    assert len(ds.train) == 40 and len(ds.val) == 10 and len(ds.test) == 20
    assert ds.train.masks is not None and ds.train.masks.shape == (40, 1, 32, 32)
    assert set(ds.train.metadata) == {"sex", "age", "view"}
    assert "SIMULATED" in ds.info["splits"]["source"]
    again = load_dataset(PhantomDataset(None, SMALL), size=32, cache_dir=cache, progress=False)
    assert again.info["cache_hit"] and again.fingerprint == ds.fingerprint
    other = load_dataset(PhantomDataset(None, PhantomOptions(n_train=40, n_val=10, n_test=20, render_size=64, seed=3)),
                         size=32, cache_dir=cache, progress=False)
    assert other.fingerprint != ds.fingerprint
