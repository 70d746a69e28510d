"""evaluate() / compare_to_baseline(): structure, masking, JSON, consistency with the parts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrbench.evaluation import (
    aupr,
    auroc,
    bootstrap_ci,
    choose_threshold,
    choose_thresholds,
    compare_to_baseline,
    delong_paired_test,
    evaluate,
    percentile_ci,
    resample_weights,
    threshold_metrics,
    weighted_auroc,
)

NAMES = ["pneumonia", "effusion", "rare"]


def make_data(seed: int = 0, n_patients: int = 80):
    """3 labels on several images per patient; 'effusion' partly masked, 'rare' all negative."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), rng.integers(1, 4, size=n_patients))
    n = patients.size
    labels = (rng.random((n, 3)) < [0.4, 0.3, 0.0]).astype(float)
    labels[rng.random(n) < 0.25, 1] = np.nan
    scores = rng.normal(size=(n, 3)) + 1.2 * np.nan_to_num(labels)
    return scores, labels, patients


def python_only(obj) -> bool:
    """True if obj is built only from dict / list / str / int / float / None (no numpy)."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) and python_only(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(python_only(v) for v in obj)
    return obj is None or type(obj) in (str, int, float)


def test_structure_and_json():
    scores, labels, patients = make_data()
    report = evaluate(scores, labels, NAMES, patient_ids=patients, n_resamples=200)
    json.dumps(report, allow_nan=False)
    assert python_only(report)
    assert list(report["labels"]) == NAMES
    entry = report["labels"]["pneumonia"]
    for key in ("auroc", "auroc_ci", "aupr", "aupr_ci", "n", "n_pos", "threshold", "f1", "sensitivity",
                "specificity", "ppv", "npv", "accuracy", "f1_ci", "sensitivity_ci", "specificity_ci"):
        assert key in entry, key
    lo, hi = entry["auroc_ci"]
    assert lo <= entry["auroc"] <= hi
    for key in ("auroc", "auroc_ci", "aupr", "aupr_ci"):
        assert key in report["macro"]
    assert report["meta"]["resampling"] == "patient"
    assert report["meta"]["n_patients"] == 80


def test_masked_labels_excluded_from_that_label_only():
    scores, labels, _ = make_data()
    report = evaluate(scores, labels, NAMES, n_resamples=0)
    keep = ~np.isnan(labels[:, 1])
    eff = report["labels"]["effusion"]
    assert eff["n"] == keep.sum() and eff["n_masked"] == (~keep).sum()
    assert eff["n_pos"] == labels[keep, 1].sum()
    assert eff["auroc"] == pytest.approx(auroc(labels[keep, 1], scores[keep, 1]))
    assert eff["aupr"] == pytest.approx(aupr(labels[keep, 1], scores[keep, 1]))
    pn = report["labels"]["pneumonia"]
    assert pn["n"] == labels.shape[0]  # other labels keep every image
    assert pn["auroc"] == pytest.approx(auroc(labels[:, 0], scores[:, 0]))


def test_single_class_label_gives_none_and_note_and_leaves_macro():
    scores, labels, _ = make_data()
    report = evaluate(scores, labels, NAMES, n_resamples=100)
    rare = report["labels"]["rare"]
    assert rare["auroc"] is None and rare["aupr"] is None and rare["f1"] is None
    assert "one class" in rare["note"] and rare["n_pos"] == 0
    assert rare["auroc_ci"] is None and set(report["labels"]["pneumonia"]) | {"note"} == set(rare)
    macro = report["macro"]
    assert macro["labels_excluded"] == ["rare"] and macro["n_labels"] == 2
    expected = np.mean([report["labels"][n]["auroc"] for n in ("pneumonia", "effusion")])
    assert macro["auroc"] == pytest.approx(expected)


def test_label_ci_matches_bootstrap_ci_with_same_seed():
    scores, labels, patients = make_data(1)
    report = evaluate(scores, labels, NAMES, patient_ids=patients, n_resamples=300, seed=4)
    ci = bootstrap_ci(auroc, labels[:, 0], scores[:, 0], n_resamples=300, seed=4, groups=patients)
    assert report["labels"]["pneumonia"]["auroc_ci"] == pytest.approx(list(ci))


def test_macro_ci_uses_the_same_resamples_for_every_label():
    scores, labels, patients = make_data(2)
    report = evaluate(scores, labels, NAMES, patient_ids=patients, n_resamples=300, seed=5)
    (w,) = list(resample_weights(labels.shape[0], n_resamples=300, seed=5, groups=patients))
    per_label = []
    for j in (0, 1):  # 'rare' is excluded
        keep = ~np.isnan(labels[:, j])
        y = labels[keep, j].astype(bool)
        per_label.append(weighted_auroc(y, scores[keep, j], w[:, keep]))
    expected = percentile_ci(np.mean(per_label, axis=0), 0.95)
    assert report["macro"]["auroc_ci"] == pytest.approx(list(expected))


def test_thresholds_forms_and_threshold_metrics():
    scores, labels, _ = make_data(3)
    tuned = choose_thresholds(scores, labels, NAMES, method="f1")
    assert tuned["rare"] is None
    assert tuned["pneumonia"] == choose_threshold(labels[:, 0], scores[:, 0], "f1")
    by_map = evaluate(scores, labels, NAMES, thresholds=tuned, n_resamples=0)
    pn = by_map["labels"]["pneumonia"]
    expected = threshold_metrics(labels[:, 0], scores[:, 0], tuned["pneumonia"])
    assert pn["threshold"] == tuned["pneumonia"] and pn["threshold_source"] == "given"
    for key in ("f1", "sensitivity", "specificity", "ppv", "npv", "accuracy", "tp", "fn"):
        assert pn[key] == pytest.approx(expected[key])
    by_seq = evaluate(scores, labels, NAMES, thresholds=[tuned[n] for n in NAMES], n_resamples=0)
    assert by_seq["labels"] == by_map["labels"]
    default = evaluate(scores, labels, NAMES, n_resamples=0)["labels"]["pneumonia"]
    assert default["threshold"] == 0.5 and default["threshold_source"] == "default"
    scalar = evaluate(scores, labels, NAMES, thresholds=0.5, n_resamples=0)["labels"]["pneumonia"]
    assert scalar["f1"] == default["f1"]
    with pytest.raises(ValueError):
        evaluate(scores, labels, NAMES, thresholds={"pneumonia": 0.5})
    with pytest.raises(TypeError):
        evaluate(scores, labels, NAMES, thresholds="youden")  # never choose on the test set


def test_no_bootstrap_and_bad_shapes():
    scores, labels, _ = make_data()
    report = evaluate(scores, labels, NAMES, n_resamples=0)
    assert report["labels"]["pneumonia"]["auroc_ci"] is None and report["macro"]["auroc_ci"] is None
    with pytest.raises(ValueError):
        evaluate(scores[:, :2], labels, NAMES)
    with pytest.raises(ValueError):
        evaluate(scores, labels, NAMES[:2])
    with pytest.raises(ValueError):
        evaluate(scores, labels, NAMES, patient_ids=[1, 2, 3])


def test_single_label_vector_input():
    scores, labels, _ = make_data()
    report = evaluate(scores[:, 0], labels[:, 0], ["pneumonia"], n_resamples=50)
    assert report["labels"]["pneumonia"]["auroc"] == pytest.approx(auroc(labels[:, 0], scores[:, 0]))
    assert report["macro"]["auroc"] == report["labels"]["pneumonia"]["auroc"]


def test_compare_to_baseline():
    scores, labels, patients = make_data(4)
    baseline = 0.5 * scores + np.random.default_rng(0).normal(size=scores.shape)
    result = compare_to_baseline(labels, scores, baseline, NAMES)
    json.dumps(result, allow_nan=False)
    assert python_only(result)
    ref = delong_paired_test(labels[:, 1], scores[:, 1], baseline[:, 1])
    eff = result["labels"]["effusion"]
    assert eff["p_value"] == pytest.approx(ref["p_value"]) and eff["delta"] == pytest.approx(ref["delta"])
    assert eff["auroc"] == pytest.approx(ref["auc_a"]) and eff["auroc_baseline"] == pytest.approx(ref["auc_b"])
    assert result["labels"]["rare"]["p_value"] is None and "note" in result["labels"]["rare"]
    assert result["n_tests"] == 2 and result["method"] == "delong"
    clustered = compare_to_baseline(labels, scores, baseline, NAMES, patient_ids=patients)
    ref = delong_paired_test(labels[:, 0], scores[:, 0], baseline[:, 0], groups=patients)
    assert clustered["labels"]["pneumonia"]["p_value"] == pytest.approx(ref["p_value"])
    assert clustered["method"] != "delong"


def test_threshold_metric_cis_equal_explicit_resamples():
    """f1 / sensitivity / specificity CIs: same as recomputing on each explicit resample."""
    scores, labels, patients = make_data(6)
    scores = np.round(scores, 1)  # ties, and the threshold sits exactly on a score value
    threshold = float(scores[0, 1])
    report = evaluate(scores, labels, NAMES, patient_ids=patients, thresholds=threshold, n_resamples=150, seed=2)
    (w,) = list(resample_weights(labels.shape[0], n_resamples=150, seed=2, groups=patients))
    values = {"f1": [], "sensitivity": [], "specificity": []}
    for row in w.astype(int):
        take = np.repeat(np.arange(labels.shape[0]), row)
        y, s = labels[take, 1], scores[take, 1]
        y_kept = y[~np.isnan(y)]
        if 0 < y_kept.sum() < y_kept.size:
            got = threshold_metrics(y, s, threshold)
            for key in values:
                values[key].append(got[key])
    for key, vals in values.items():
        assert report["labels"]["effusion"][f"{key}_ci"] == pytest.approx(list(percentile_ci(vals)))
    assert report["labels"]["effusion"]["bootstrap_skipped"] == 150 - len(values["f1"])
