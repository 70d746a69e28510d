"""Label maps: a classifier trained on Kermany (``pneumonia``) tested on a set shaped like NIH
ChestX-ray14 (``Pneumonia`` among 14 findings)."""

import json

import pandas as pd
import pytest

from cxrbench.config import spec_from_data, validate_plugins
from cxrbench.errors import ConfigError
from cxrbench.runner import Runner


def _spec(kermany_root, nih_root, **external):
    return spec_from_data({
        "name": "maps", "size": 16, "classifier": {"name": "tiny-cnn"},
        "dataset": {"name": "kermany", "root": str(kermany_root)},
        "external": [{"name": "nih-cxr14", "root": str(nih_root), **external}],
        "protocols": [{"name": "real-only", "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 20},
    }, "maps.yaml")


def test_kermany_classifier_is_scored_on_nih_through_a_label_map(kermany_root, nih_root, tmp_path, monkeypatch):
    # the environment's data root takes precedence over a spec's root (README): use the fixtures'
    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    spec = _spec(kermany_root, nih_root, labels={"pneumonia": "Pneumonia"})
    validate_plugins(spec, "maps.yaml")
    summary = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False).run()
    assert not summary.failed, summary
    rec = json.loads(next((tmp_path / "run" / "cells").glob("*.json")).read_text())
    assert set(rec["metrics"]) == {"kermany:test", "nih-cxr14:test"}
    assert rec["external"][0]["labels"] == {"pneumonia": "Pneumonia"}
    nih = pd.read_csv(rec["artifacts"]["predictions"]["nih-cxr14:test"]).set_index("key")
    assert list(c for c in nih.columns if c.startswith("true_")) == ["true_pneumonia"]
    # the NIH test list: one image with Pneumonia (00000008_001), two without
    truth = {k.split("/")[-1]: v for k, v in nih["true_pneumonia"].items()}
    assert truth == {"00000008_000.png": 0.0, "00000008_001.png": 1.0, "00000009_000.png": 0.0}
    assert rec["metrics"]["nih-cxr14:test"]["labels"]["pneumonia"]["auroc"] is not None


def test_a_label_that_maps_to_nothing_is_a_clear_error(kermany_root, nih_root):
    with pytest.raises(ConfigError, match=r"label 'pneumonia' of the training dataset maps to nothing in "
                                          r"nih-cxr14 .*add labels: \{pneumonia: Pneumonia\}"):
        validate_plugins(_spec(kermany_root, nih_root), "maps.yaml")
    with pytest.raises(ConfigError, match=r"'Pneumonai' is not a label of nih-cxr14 \(did you mean 'Pneumonia'\?\)"):
        validate_plugins(_spec(kermany_root, nih_root, labels={"pneumonia": "Pneumonai"}), "maps.yaml")
    with pytest.raises(ConfigError, match=r"'effusion' is not a label of the training dataset"):
        validate_plugins(_spec(kermany_root, nih_root, labels={"effusion": "Effusion"}), "maps.yaml")


def test_mixed_external_trains_on_the_mapped_labels(kermany_root, nih_root, tmp_path, monkeypatch):
    """mixed-external trains on NIH's training split, its labels read through the same map."""
    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    spec = spec_from_data({
        "name": "mixed", "size": 16, "classifier": {"name": "tiny-cnn"},
        "dataset": {"name": "kermany", "root": str(kermany_root)},
        "external": [{"name": "nih-cxr14", "root": str(nih_root), "labels": {"pneumonia": "Pneumonia"}}],
        "generators": [{"name": "real"}],
        "protocols": [{"name": "mixed-external", "ratios": [1], "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 20},
    }, "mixed.yaml")
    summary = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False).run()
    assert not summary.failed, summary
    rec = json.loads(next((tmp_path / "run" / "cells").glob("mixed-external*.json")).read_text())
    ts = rec["training_set"]
    assert ts["dataset"] == "nih-cxr14" and ts["n_real"] > 0 and ts["n_synthetic"] > 0
    assert len(ts["prevalence"]) == 1  # one label: Kermany's pneumonia, read from NIH's Pneumonia column
