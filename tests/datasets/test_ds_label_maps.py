"""Label maps: a classifier trained on Kermany (``pneumonia``) tested on a set shaped like NIH
ChestX-ray14 (``Pneumonia`` among 14 findings)."""

import json

import pandas as pd
import pytest

from cxrbench.config import spec_from_data
from cxrbench.spec_validation import validate_plugins
from cxrbench.errors import ConfigError
from cxrbench.runner import Runner


def _spec(kermany_root, nih_root, **external):
    return spec_from_data({
        "name": "maps", "size": 16, "classifier": {"name": "tiny-cnn"},
        "dataset": {"name": "kermany", "root": str(kermany_root)},
        # the fixture's NIH test list has 1 positive and 2 negatives: the minimums say so
        "external": [{"name": "nih-cxr14", "root": str(nih_root), "min_positives": 1, "min_negatives": 1, **external}],
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
        "external": [{"name": "nih-cxr14", "root": str(nih_root), "labels": {"pneumonia": "Pneumonia"},
                      "min_positives": 1, "min_negatives": 1}],
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


# --------------------------------------------------------------------------- any-of maps and rules

from cxrbench.labelmaps import check_counts, map_counts, resolve_label_map  # noqa: E402

NAN = float("nan")


def _map(entry, target=("Pneumonia", "Consolidation", "Effusion")):
    return resolve_label_map(["pneumonia"], list(target), {"pneumonia": entry}, "external[0]", "nih-cxr14")


def _applied(label_map, rows):
    import numpy as np

    return [None if np.isnan(v) else v for v in label_map.apply(np.array(rows, dtype=float))[:, 0]]


def test_any_of_is_positive_if_any_negative_if_all_else_masked():
    m = _map(["Pneumonia", "Consolidation"])
    assert m.labels[0].rule == "any_of" and m.labels[0].columns == (0, 1)
    rows = [[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, NAN, 0], [0, NAN, 0], [NAN, NAN, 1], [1, 1, 0]]
    # an unknown finding beside a negative one could be the positive: masked, not negative
    assert _applied(m, rows) == [1.0, 1.0, 0.0, 1.0, None, None, 1.0]


def test_all_of_rule_and_single_names():
    m = _map({"all_of": ["Pneumonia", "Effusion"]})
    rows = [[1, 0, 1], [1, 0, 0], [1, 0, NAN], [0, 0, NAN], [NAN, 0, NAN]]
    assert _applied(m, rows) == [1.0, 0.0, None, 0.0, None]
    one = _map("Consolidation")
    assert one.labels[0].rule == "same" and _applied(one, [[1, 0, 0], [0, 1, 0], [0, NAN, 1]]) == [0.0, 1.0, None]
    assert _map(["Effusion"]).labels[0].rule == "same"  # a one-name list is that name


def test_tensors_keep_their_dtype_through_a_map():
    import torch

    m = _map(["Pneumonia", "Consolidation"])
    out = m.apply(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float32))
    assert out.dtype == torch.float32 and out[:, 0].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("entry, message", [
    (["Pneumonia", "Pneumonai"], r"'Pneumonai' is not a label of nih-cxr14 \(did you mean 'Pneumonia'\?\)"),
    ({"none_of": ["Pneumonia"]}, r"expected a label name, a list of names \(any of them\), or one rule"),
    ([], r"expected a label name"),
    ({"any_of": ["Pneumonia"], "all_of": ["Effusion"]}, r"expected a label name"),
])
def test_bad_map_entries_are_one_line_errors(entry, message):
    with pytest.raises(ConfigError, match=message):
        _map(entry)


def test_map_counts_record_each_external_label_and_the_mapped_label():
    m = _map(["Pneumonia", "Consolidation"])
    rows = [[1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0], [0, NAN, 0]]
    c = map_counts(rows, ("Pneumonia", "Consolidation", "Effusion"), m)["pneumonia"]
    assert (c["n_pos"], c["n_neg"], c["n_masked"], c["n_images"]) == (2, 2, 1, 5)
    assert c["external_labels"]["Pneumonia"] == {"n_pos": 1, "n_known": 5, "prevalence": 0.2}
    assert c["external_labels"]["Consolidation"] == {"n_pos": 1, "n_known": 4, "prevalence": 0.25}
    assert c["map"] == ["Pneumonia", "Consolidation"] and c["prevalence"] == 0.5
    with pytest.raises(ConfigError, match=r"label 'pneumonia' read as \['Pneumonia', 'Consolidation'\] leaves "
                                          r"2 positive\(s\) < min_positives 3 on nih-cxr14:all \(5 images, 1 masked\)"):
        check_counts({"pneumonia": c}, min_positives=3, min_negatives=2, where="external[0] nih-cxr14",
                     what="nih-cxr14:all")
    check_counts({"pneumonia": c}, min_positives=2, min_negatives=2, where="x", what="y")  # exactly enough


def test_too_few_mapped_positives_fail_the_run_and_validate(kermany_root, nih_root, tmp_path, monkeypatch, capsys):
    """The fixture's NIH test list holds 1 Pneumonia image: the default minimum (10) refuses it,
    at `validate --data-root` and at run time, naming the counts."""
    from cxrbench.cli import main

    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    spec = spec_from_data({
        "name": "maps", "size": 16, "classifier": {"name": "tiny-cnn"},
        "dataset": {"name": "kermany", "root": str(kermany_root)},
        "external": [{"name": "nih-cxr14", "root": str(nih_root), "labels": {"pneumonia": ["Pneumonia", "Effusion"]}}],
        "protocols": [{"name": "real-only", "schedule": "quick"}], "evaluation": {"bootstrap_resamples": 20},
    }, "maps.yaml")
    summary = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False).run()
    assert summary.failed
    rec = json.loads(next((tmp_path / "run" / "cells").glob("*.json")).read_text())
    assert "1 positive(s) < min_positives 10" in rec["error"]["message"]
    import yaml

    path = tmp_path / "maps.yaml"
    from cxrbench.config import spec_dict

    path.write_text(yaml.safe_dump(spec_dict(spec)))
    import shutil

    shutil.copytree(nih_root, kermany_root / "nih-cxr14")  # one data root serving both sets
    capsys.readouterr()
    assert main(["validate", str(path), "--data-root", str(kermany_root)]) == 2
    err = capsys.readouterr()
    assert "pneumonia = ['Pneumonia', 'Effusion']: 1 positive, 2 negative, 0 masked" in err.out
    assert "1 positive(s) < min_positives 10 and 2 negative(s) < min_negatives 10 on nih-cxr14:test" in err.err


def test_the_record_carries_the_maps_counts(kermany_root, nih_root, tmp_path, monkeypatch):
    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    spec = _spec(kermany_root, nih_root, labels={"pneumonia": ["Pneumonia", "Atelectasis"]})
    summary = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False).run()
    assert not summary.failed, summary
    rec = json.loads(next((tmp_path / "run" / "cells").glob("*.json")).read_text())
    lm = rec["external"][0]["label_map"]["pneumonia"]
    assert lm["map"] == ["Pneumonia", "Atelectasis"] and (lm["n_pos"], lm["n_neg"]) == (2, 1)
    assert lm["external_labels"]["Atelectasis"]["n_pos"] == 1
    assert rec["metrics"]["nih-cxr14:test"]["labels"]["pneumonia"]["n_pos"] == 2
