"""The real Kermany copy at 64 px (needs CXRBENCH_DATA_ROOT; skipped without it)."""

import os
from pathlib import Path

import pytest

from cxrbench.datasets import check_patient_disjoint, load_dataset
from cxrbench.plugins.datasets.kermany import KermanyDataset


def _root() -> Path | None:
    root = os.environ.get("CXRBENCH_DATA_ROOT")
    if not root:
        return None
    for candidate in (Path(root) / "kermany" / "chest_xray", Path(root) / "chest_xray"):
        if candidate.is_dir():
            return candidate.parent
    return None


@pytest.mark.integration
@pytest.mark.skipif(_root() is None, reason="CXRBENCH_DATA_ROOT does not hold kermany/chest_xray or chest_xray")
def test_real_kermany_at_64px(tmp_path):
    ds = load_dataset(KermanyDataset(_root()), size=64, cache_dir=tmp_path, progress=False)
    assert len(ds.train) + len(ds.val) == 5216
    assert len(ds.test) == 624
    test_labels = ds.test.labels[:, 0]
    assert int((test_labels == 0).sum()) == 234 and int((test_labels == 1).sum()) == 390
    assert 400 <= len(ds.val) <= 650  # ~10 % of train, by patient
    check_patient_disjoint({n: s.patient_ids for n, s in ds.splits().items()})
    ids = {n: set(s.patient_ids) for n, s in ds.splits().items()}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert tuple(ds.train.images.shape[1:]) == (1, 64, 64)
    assert ds.info["skipped"]["count"] == 0
    # the validation set has both classes in about the train proportion
    prev = ds.info["prevalence"]
    assert abs(prev["val"]["pneumonia"] - prev["train"]["pneumonia"]) < 0.05
    # warm load: no decoding
    again = load_dataset(KermanyDataset(_root()), size=64, cache_dir=tmp_path, progress=False)
    assert again.info["cache_hit"] and again.fingerprint == ds.fingerprint
