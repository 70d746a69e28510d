"""Subgroup report: per-group AUROC / FNR / FPR and gaps against sklearn and fairlearn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from cxrbench.evaluation import (
    age_band,
    percentile_ci,
    resample_weights,
    subgroup_report,
    subgroup_reports,
    subgroup_values,
)

THRESHOLD = 0.4
GROUPS = ("a", "b", "c")


def make_data(seed: int = 0, n_patients: int = 250, shifts=(1.5, 1.0, 0.6), decimals=None):
    """One label on 1-3 images per patient; 3 groups with different separations.

    About 10% of labels are masked (NaN) and 5% of images have no group (None). ``decimals``
    rounds the scores (ties, some exactly at the threshold).
    """
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), rng.integers(1, 4, size=n_patients))
    n = patients.size
    group_of_patient = rng.choice(len(GROUPS), size=n_patients)
    g = group_of_patient[patients]
    y = (rng.random(n) < 0.35).astype(float)
    s = rng.normal(size=n) + np.asarray(shifts)[g] * y
    s = s if decimals is None else np.round(s, decimals)
    y[rng.random(n) < 0.10] = np.nan
    values = [GROUPS[k] for k in g]
    for i in np.flatnonzero(rng.random(n) < 0.05):
        values[i] = None
    return y, s, values, patients


def kept(y, s, values):
    """Labels, scores, groups of the images that count (label known, group given)."""
    m = np.array([(not math.isnan(a)) and v is not None for a, v in zip(y, values)])
    return y[m], s[m], np.array([v for v, k in zip(values, m) if k]), m


def python_only(obj) -> bool:
    """True if obj is built only from dict / list / str / int / float / None (no numpy)."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) and python_only(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(python_only(v) for v in obj)
    return obj is None or type(obj) in (str, int, float)


# --------------------------------------------------------------------------- point estimates


@pytest.mark.parametrize("seed", range(4))
def test_per_group_metrics_equal_sklearn(seed):
    y, s, values, patients = make_data(seed, decimals=1)
    assert np.sum(s == THRESHOLD) > 0  # score == threshold predicts positive
    report = subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=0)
    yk, sk, gk, _ = kept(y, s, values)
    assert list(report["groups"]) == list(GROUPS)
    for name in GROUPS:
        e = report["groups"][name]
        yg, sg = yk[gk == name], sk[gk == name]
        tn, fp, fn, tp = confusion_matrix(yg, sg >= THRESHOLD, labels=[0, 1]).ravel()
        assert e["auroc"] == pytest.approx(roc_auc_score(yg, sg), abs=1e-12)
        assert e["fnr"] == pytest.approx(fn / (fn + tp), abs=1e-12)
        assert e["fpr"] == pytest.approx(fp / (fp + tn), abs=1e-12)
        assert (e["tp"], e["fn"], e["fp"], e["tn"]) == (tp, fn, fp, tn)
        assert (e["n"], e["n_pos"], e["n_neg"]) == (yg.size, int(yg.sum()), int((yg == 0).sum()))
        assert e["prevalence"] == pytest.approx(yg.mean())
        all_patients = patients[kept(y, s, values)[3]]
        assert e["n_patients"] == np.unique(all_patients[gk == name]).size
        assert e["too_few"] is None
        assert e["auroc_ci"] is None and e["fnr_ci"] is None and e["bootstrap_skipped"] is None


@pytest.mark.parametrize("seed", range(4))
def test_per_group_rates_and_gaps_equal_fairlearn(seed):
    fl = pytest.importorskip("fairlearn.metrics")
    y, s, values, patients = make_data(seed)
    report = subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=0)
    yk, sk, gk, _ = kept(y, s, values)
    rates = fl.MetricFrame(
        metrics={"fnr": fl.false_negative_rate, "fpr": fl.false_positive_rate},
        y_true=yk.astype(int),
        y_pred=(sk >= THRESHOLD).astype(int),
        sensitive_features=gk,
    )
    aucs = fl.MetricFrame(metrics={"auroc": roc_auc_score}, y_true=yk.astype(int), y_pred=sk, sensitive_features=gk)
    for name in GROUPS:
        e = report["groups"][name]
        assert e["fnr"] == pytest.approx(rates.by_group.loc[name, "fnr"], abs=1e-12)
        assert e["fpr"] == pytest.approx(rates.by_group.loc[name, "fpr"], abs=1e-12)
        assert e["auroc"] == pytest.approx(aucs.by_group.loc[name, "auroc"], abs=1e-12)
    gaps = report["gaps"]
    assert gaps["fnr"]["gap"] == pytest.approx(rates.difference()["fnr"], abs=1e-12)
    assert gaps["fpr"]["gap"] == pytest.approx(rates.difference()["fpr"], abs=1e-12)
    assert gaps["auroc"]["gap"] == pytest.approx(aucs.difference()["auroc"], abs=1e-12)
    # best / worst: highest AUROC, lowest error rates
    assert gaps["auroc"]["best"] == aucs.by_group["auroc"].idxmax()
    assert gaps["auroc"]["worst"] == aucs.by_group["auroc"].idxmin()
    assert gaps["fnr"]["best"] == rates.by_group["fnr"].idxmin()
    assert gaps["fnr"]["worst"] == rates.by_group["fnr"].idxmax()
    assert gaps["fpr"]["worst_value"] == pytest.approx(rates.by_group["fpr"].max(), abs=1e-12)


def test_too_few_withholds_metrics():
    rng = np.random.default_rng(5)
    # group "big": 60 pos / 80 neg; group "small": 20 pos but only 3 negatives
    y = np.r_[np.ones(60), np.zeros(80), np.ones(20), np.zeros(3)]
    s = rng.normal(size=y.size) + y
    values = ["big"] * 140 + ["small"] * 23
    report = subgroup_report(y, s, values, threshold=0.5, n_resamples=100)
    small = report["groups"]["small"]
    assert small["auroc"] is None and small["auroc_ci"] is None
    assert small["fpr"] is None and small["fpr_ci"] is None
    assert small["too_few"] == "3 negatives < 10"
    pred = s[140:] >= 0.5
    assert small["fnr"] == pytest.approx(np.sum(~pred[:20]) / 20)
    assert small["fnr_ci"] is not None
    assert (small["n_pos"], small["n_neg"]) == (20, 3)
    assert set(small["bootstrap_skipped"]) == {"fnr"}
    # the gaps only use groups that report the metric
    assert report["gaps"]["auroc"]["groups"] == ["big"]
    assert report["gaps"]["auroc"]["gap"] is None and report["gaps"]["auroc"]["gap_ci"] is None
    assert "at least 2 groups" in report["gaps"]["auroc"]["note"]
    assert report["gaps"]["fnr"]["groups"] == ["big", "small"]
    big_fnr = np.sum(s[:60] < 0.5) / 60
    assert report["gaps"]["fnr"]["gap"] == pytest.approx(abs(big_fnr - small["fnr"]))
    # both short, and thresholds configurable
    both = subgroup_report(y, s, values, threshold=0.5, min_positives=25, min_negatives=5, n_resamples=0)
    assert both["groups"]["small"]["too_few"] == "20 positives < 25; 3 negatives < 5"
    assert all(both["groups"]["small"][m] is None for m in ("auroc", "fnr", "fpr"))
    assert both["min_positives"] == 25 and both["min_negatives"] == 5


def test_masked_labels_and_missing_groups_are_excluded():
    y, s, values, patients = make_data(1)
    report = subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=200)
    masked = np.isnan(y)
    no_group = np.array([v is None for v in values])
    assert report["n_masked"] == masked.sum()
    assert report["n_without_group"] == (~masked & no_group).sum()
    assert report["n_images"] == (~masked & ~no_group).sum()
    assert sum(e["n"] for e in report["groups"].values()) == report["n_images"]
    # what excluded images score cannot matter, not even for the CIs
    s2 = s.copy()
    s2[masked | no_group] = 1e6
    assert subgroup_report(y, s2, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=200) == report
    # NaN and "" group values are "no group" too
    values2 = [float("nan") if v is None and i % 2 else ("" if v is None else v) for i, v in enumerate(values)]
    assert subgroup_report(y, s, values2, threshold=THRESHOLD, patient_ids=patients, n_resamples=200) == report


# --------------------------------------------------------------------------- group values


def test_age_band():
    assert age_band(17) == "<18"
    assert age_band(17.99) == "<18"
    assert age_band(18) == "18-39"
    assert age_band(39.5) == "18-39"
    assert age_band(40) == "40-64"
    assert age_band(64) == "40-64"
    assert age_band(65) == "65+"
    assert age_band(" 70 ") == "65+"
    assert age_band("0") == "<18"
    for missing in (None, float("nan"), "", "  ", "unknown", np.nan):
        assert age_band(missing) is None
    assert age_band(49, edges=(50,)) == "<50" and age_band(50, edges=(50,)) == "50+"
    assert age_band(30, edges=(20, 30, 60)) == "30-59"
    with pytest.raises(ValueError):
        age_band(30, edges=(40, 20))


def test_subgroup_values():
    meta = {
        "age": [17, 18, None, "70", float("nan"), 45],
        "site": ["A", "B", "B", "C", "C", "C"],
        "sex": ["F", None, "", float("nan"), "M", "F"],
        "scanner": [3.0, 3.0, 1.0, float("nan"), 2, "x"],
    }
    assert subgroup_values(meta, "age_band") == ["<18", "18-39", None, "65+", None, "40-64"]
    assert subgroup_values(meta, "age_band", age_edges=(40,)) == ["<40", "<40", None, "40+", None, "40+"]
    assert subgroup_values(meta, "sex") == ["F", None, None, None, "M", "F"]
    assert subgroup_values(meta, "scanner") == ["3", "3", "1", None, "2", "x"]
    assert subgroup_values(meta, "site", max_levels=2) == [None, "B", "B", "C", "C", "C"]
    # ties broken by name: 1, 2 and x appear once each
    assert subgroup_values(meta, "scanner", max_levels=2) == ["3", "3", "1", None, None, None]
    assert subgroup_values(meta, "site", max_levels=10) == meta["site"]
    with pytest.raises(ValueError, match="unknown subgroup field 'race'.*age, age_band, scanner, sex, site"):
        subgroup_values(meta, "race")
    with pytest.raises(ValueError, match="available"):
        subgroup_values({"site": ["A"]}, "age_band")


def test_subgroup_reports_match_single_reports():
    y, s, values, patients = make_data(2)
    rng = np.random.default_rng(0)
    meta = {"site": values, "age": rng.integers(5, 90, size=y.size).tolist()}
    out = subgroup_reports(y, s, meta, ["site", "age_band"], threshold=THRESHOLD, patient_ids=patients,
                           n_resamples=50, min_positives=5, min_negatives=5)
    assert list(out) == ["site", "age_band"]
    single = subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=50,
                             min_positives=5, min_negatives=5)
    assert out["site"] == {"field": "site", **single}
    bands = [age_band(a) for a in meta["age"]]
    single_age = subgroup_report(y, s, bands, threshold=THRESHOLD, patient_ids=patients, n_resamples=50,
                                 min_positives=5, min_negatives=5)
    assert out["age_band"] == {"field": "age_band", **single_age}
    assert set(out["age_band"]["groups"]) == {"<18", "18-39", "40-64", "65+"}
    with pytest.raises(ValueError, match="unknown subgroup field"):
        subgroup_reports(y, s, meta, ["site", "view"], threshold=THRESHOLD)


# --------------------------------------------------------------------------- bootstrap


def _manual_metrics(y, s, values, weights, threshold, groups=GROUPS):
    """Per-group AUROC/FNR/FPR per resample, on the explicitly repeated sample (sklearn)."""
    out = {name: {m: [] for m in ("auroc", "fnr", "fpr")} for name in groups}
    vals = np.array([v if v is not None else "" for v in values])
    for row in weights.astype(int):
        take = np.repeat(np.arange(y.size), row)
        yt, st, gt = y[take], s[take], vals[take]
        for name in groups:
            m = (gt == name) & ~np.isnan(yt)
            yg, pg = yt[m], st[m]
            both = yg.size and 0 < yg.sum() < yg.size
            out[name]["auroc"].append(roc_auc_score(yg, pg) if both else np.nan)
            pred = pg >= threshold
            pos, neg = yg == 1, yg == 0
            out[name]["fnr"].append(np.sum(~pred & pos) / pos.sum() if pos.any() else np.nan)
            out[name]["fpr"].append(np.sum(pred & neg) / neg.sum() if neg.any() else np.nan)
    return {name: {m: np.array(v) for m, v in d.items()} for name, d in out.items()}


def _check_against_manual(report, manual, groups, confidence):
    """Per-group CIs, gap CIs and skipped counts equal the manual bootstrap's."""
    for name in groups:
        e = report["groups"][name]
        for m in ("auroc", "fnr", "fpr"):
            assert e[f"{m}_ci"] == pytest.approx(list(percentile_ci(manual[name][m], confidence)), abs=1e-12)
            assert e["bootstrap_skipped"][m] == np.isnan(manual[name][m]).sum()
    for m in ("auroc", "fnr", "fpr"):
        per = np.column_stack([manual[name][m] for name in groups])
        ok = ~np.isnan(per).any(axis=1)
        gaps = per[ok].max(axis=1) - per[ok].min(axis=1)
        assert report["gaps"][m]["gap_ci"] == pytest.approx(list(percentile_ci(gaps, confidence)), abs=1e-12)
        assert report["gaps"][m]["bootstrap_skipped"] == (~ok).sum()


def test_cis_equal_a_manual_patient_bootstrap():
    # integer scores: heavy ties, a quarter of them exactly at the threshold 1.0
    y, s, values, patients = make_data(3, n_patients=60, decimals=0)
    assert np.mean(s == 1.0) > 0.15
    n_res = 60
    report = subgroup_report(y, s, values, threshold=1.0, patient_ids=patients, n_resamples=n_res,
                             seed=7, min_positives=5, min_negatives=5, confidence=0.9)
    w = np.vstack(list(resample_weights(y.size, n_resamples=n_res, seed=7, groups=patients)))
    _check_against_manual(report, _manual_metrics(y, s, values, w, 1.0), GROUPS, 0.9)


def test_resamples_where_a_small_group_is_undefined_are_skipped():
    rng = np.random.default_rng(8)
    y = np.r_[(rng.random(80) < 0.4).astype(float), [1, 1, 0, 0.0]]
    s = np.round(rng.normal(size=y.size) + y, 1)
    values = ["big"] * 80 + ["tiny"] * 4
    report = subgroup_report(y, s, values, threshold=0.5, n_resamples=80, seed=2, min_positives=2, min_negatives=2)
    w = np.vstack(list(resample_weights(y.size, n_resamples=80, seed=2)))
    manual = _manual_metrics(y, s, values, w, 0.5, groups=("big", "tiny"))
    assert np.isnan(manual["tiny"]["auroc"]).sum() > 10  # the tiny group often lacks a class
    _check_against_manual(report, manual, ("big", "tiny"), 0.95)
    assert report["gaps"]["auroc"]["bootstrap_skipped"] == report["groups"]["tiny"]["bootstrap_skipped"]["auroc"] > 10


def test_gap_ci_contains_point_and_narrows_with_more_data():
    small = subgroup_report(*make_data(4, n_patients=150)[:3], threshold=THRESHOLD,
                            patient_ids=make_data(4, n_patients=150)[3], n_resamples=500)
    big = subgroup_report(*make_data(4, n_patients=1500)[:3], threshold=THRESHOLD,
                          patient_ids=make_data(4, n_patients=1500)[3], n_resamples=500)
    for m in ("auroc", "fnr", "fpr"):
        for r in (small, big):
            lo, hi = r["gaps"][m]["gap_ci"]
            assert lo <= r["gaps"][m]["gap"] <= hi
            assert lo >= 0
        width_small = np.diff(small["gaps"][m]["gap_ci"])[0]
        width_big = np.diff(big["gaps"][m]["gap_ci"])[0]
        assert width_big < 0.6 * width_small
    for name in GROUPS:
        for m in ("auroc", "fnr", "fpr"):
            lo, hi = big["groups"][name][f"{m}_ci"]
            assert lo <= big["groups"][name][m] <= hi


def test_patient_resampling_is_not_fooled_by_duplicated_images():
    y, s, values, _ = make_data(5, n_patients=300)
    keep = ~np.isnan(y)
    y, s = y[keep], s[keep]
    values = [v for v, k in zip(values, keep) if k]
    n = y.size
    base = subgroup_report(y, s, values, threshold=THRESHOLD, n_resamples=400, seed=1)
    # every image twice, both copies from the same patient: the patient bootstrap sees the same data
    y2, s2, v2 = np.repeat(y, 2), np.repeat(s, 2), [v for v in values for _ in range(2)]
    same_patient = subgroup_report(y2, s2, v2, threshold=THRESHOLD, patient_ids=np.repeat(np.arange(n), 2),
                                   n_resamples=400, seed=1)
    # ... as independent images: falsely twice the data, intervals ~1/sqrt(2) as wide
    independent = subgroup_report(y2, s2, v2, threshold=THRESHOLD, n_resamples=400, seed=1)
    for m in ("auroc", "fnr", "fpr"):
        assert same_patient["gaps"][m]["gap_ci"] == pytest.approx(base["gaps"][m]["gap_ci"], abs=1e-12)
        for name in GROUPS:
            assert same_patient["groups"][name][f"{m}_ci"] == pytest.approx(base["groups"][name][f"{m}_ci"], abs=1e-12)
            w_base = np.diff(base["groups"][name][f"{m}_ci"])[0]
            w_indep = np.diff(independent["groups"][name][f"{m}_ci"])[0]
            assert w_indep < 0.85 * w_base
    assert same_patient["groups"]["a"]["n_patients"] == base["groups"]["a"]["n"]
    assert same_patient["resampling"] == "patient" and independent["resampling"] == "image"


def test_json_ready_deterministic_and_no_bootstrap():
    y, s, values, patients = make_data(6)
    r1 = subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=100, seed=3)
    json.dumps(r1, allow_nan=False)
    assert python_only(r1)
    assert r1 == subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=100, seed=3)
    assert r1 != subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=100, seed=4)
    for key, value in (("threshold", THRESHOLD), ("min_positives", 10), ("min_negatives", 10),
                       ("n_resamples", 100), ("confidence", 0.95)):
        assert r1[key] == value
    r0 = subgroup_report(y, s, values, threshold=THRESHOLD, patient_ids=patients, n_resamples=0)
    for name in GROUPS:
        assert all(r0["groups"][name][f"{m}_ci"] is None for m in ("auroc", "fnr", "fpr"))
        assert r0["groups"][name]["auroc"] == r1["groups"][name]["auroc"]
    assert all(r0["gaps"][m]["gap_ci"] is None and r0["gaps"][m]["gap"] == r1["gaps"][m]["gap"]
               for m in ("auroc", "fnr", "fpr"))


def test_bad_inputs_raise():
    y, s, values, patients = make_data(0)
    with pytest.raises(ValueError):
        subgroup_report(y, s, values[:-1], threshold=0.5)
    with pytest.raises(ValueError):
        subgroup_report(y, s, values, threshold=0.5, patient_ids=patients[:-1])
    with pytest.raises(ValueError):
        subgroup_report(y, s, values, threshold=0.5, min_negatives=0)
