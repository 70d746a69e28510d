"""Transfer gap (external - internal macro AUROC) against sklearn, and its paired bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrbench.evaluation import percentile_ci, transfer_gap, two_sample_weights, weighted_auroc


def make_set(rng, n, separation, prevalence=None):
    """(n, L) labels and scores = N(0,1) + separation[l] * y; L = len(separation)."""
    prevalence = prevalence or [0.4, 0.3, 0.2, 0.35][: len(separation)]
    y = (rng.random((n, len(separation))) < np.asarray(prevalence)).astype(float)
    s = rng.normal(size=y.shape) + np.asarray(separation) * y
    return y, s


def test_two_sample_weights_are_aligned_independent_and_by_patient():
    patients = np.arange(40) // 4
    blocks = list(two_sample_weights(40, 40, n_resamples=300, seed=3, groups_b=patients))
    w_a, w_b = np.vstack([a for a, _ in blocks]), np.vstack([b for _, b in blocks])
    assert w_a.shape == w_b.shape == (300, 40)
    assert np.all(w_a.sum(axis=1) == 40) and np.all(w_b.sum(axis=1) == 40)
    assert np.all(w_b[:, ::4] == w_b[:, 3::4])  # the images of one patient share its count
    assert not np.array_equal(w_a[:, ::4], w_b[:, ::4])
    # independent draws: the two samples' counts are uncorrelated
    assert abs(np.corrcoef(w_a[:, 0], w_b[:, 0])[0, 1]) < 0.2
    again = np.vstack([a for a, _ in two_sample_weights(40, 40, n_resamples=300, seed=3, groups_b=patients)])
    assert np.array_equal(again, w_a)
    other_a, other_b = (np.vstack(w) for w in zip(*two_sample_weights(40, 40, n_resamples=300, seed=4)))
    assert not np.array_equal(other_a, w_a)
    assert not np.array_equal(other_a, other_b)  # same size, no groups: still two different draws


def test_single_label_gap_equals_sklearn_and_ci_contains_it():
    rng = np.random.default_rng(0)
    y_i, s_i = make_set(rng, 300, [1.5], prevalence=[0.4])
    y_e, s_e = make_set(rng, 250, [0.9], prevalence=[0.3])
    r = transfer_gap(y_i[:, 0], s_i[:, 0], y_e[:, 0], s_e[:, 0], n_resamples=500)
    auc_i, auc_e = roc_auc_score(y_i[:, 0], s_i[:, 0]), roc_auc_score(y_e[:, 0], s_e[:, 0])
    assert r["internal_auroc"] == pytest.approx(auc_i, abs=1e-12)
    assert r["external_auroc"] == pytest.approx(auc_e, abs=1e-12)
    assert r["gap"] == pytest.approx(auc_e - auc_i, abs=1e-12)
    lo, hi = r["gap_ci"]
    assert lo <= r["gap"] <= hi < 0  # a clear loss on the external set
    assert r["labels"] == ["0"] and r["labels_excluded"] == []
    assert r["bootstrap_skipped"] == 0 and (r["n_resamples"], r["confidence"]) == (500, 0.95)
    assert r["baseline_gap"] is None and r["gap_vs_baseline"] is None and r["gap_vs_baseline_ci"] is None


def test_gap_vs_baseline_equals_difference_of_gaps():
    rng = np.random.default_rng(1)
    y_i, s_i = make_set(rng, 300, [1.5, 1.2, 1.0])
    y_e, s_e = make_set(rng, 300, [1.2, 0.9, 0.8])
    b_i = s_i + rng.normal(scale=1.5, size=s_i.shape)  # a weaker baseline on the same images
    b_e = s_e + rng.normal(scale=2.5, size=s_e.shape)
    names = ["pneumonia", "effusion", "edema"]
    r = transfer_gap(y_i, s_i, y_e, s_e, baseline_internal_scores=b_i, baseline_external_scores=b_e,
                     label_names=names, n_resamples=400)

    def macro(y, s):
        return np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(3)])

    gap = macro(y_e, s_e) - macro(y_i, s_i)
    base_gap = macro(y_e, b_e) - macro(y_i, b_i)
    assert r["gap"] == pytest.approx(gap, abs=1e-12)
    assert r["baseline_internal_auroc"] == pytest.approx(macro(y_i, b_i), abs=1e-12)
    assert r["baseline_external_auroc"] == pytest.approx(macro(y_e, b_e), abs=1e-12)
    assert r["baseline_gap"] == pytest.approx(base_gap, abs=1e-12)
    assert r["gap_vs_baseline"] == pytest.approx(gap - base_gap, abs=1e-12)
    for key in ("gap", "baseline_gap", "gap_vs_baseline"):
        lo, hi = r[f"{key}_ci"]
        assert lo <= r[key] <= hi
    assert r["labels"] == names
    assert r["per_label"]["effusion"]["gap"] == pytest.approx(
        roc_auc_score(y_e[:, 1], s_e[:, 1]) - roc_auc_score(y_i[:, 1], s_i[:, 1]), abs=1e-12
    )


def test_identical_model_and_baseline_give_exact_zero():
    rng = np.random.default_rng(2)
    y_i, s_i = make_set(rng, 200, [1.5, 1.2, 1.0])
    y_e, s_e = make_set(rng, 180, [1.0, 0.9, 0.8])
    r = transfer_gap(y_i, s_i, y_e, s_e, baseline_internal_scores=s_i.copy(), baseline_external_scores=s_e.copy(),
                     n_resamples=300)
    assert r["gap_vs_baseline"] == 0.0
    assert r["gap_vs_baseline_ci"] == [0.0, 0.0]
    assert r["baseline_gap"] == r["gap"] and r["baseline_gap_ci"] == r["gap_ci"]


def test_cis_equal_a_manual_two_sample_bootstrap():
    rng = np.random.default_rng(3)
    y_i, s_i = make_set(rng, 90, [1.2, 0.8])
    y_e, s_e = make_set(rng, 70, [0.9, 0.7])
    b_i, b_e = s_i + rng.normal(size=s_i.shape), s_e + rng.normal(size=s_e.shape)
    pat_i = np.arange(90) // 3
    y_i[::7, 1] = np.nan
    r = transfer_gap(y_i, s_i, y_e, s_e, internal_groups=pat_i, baseline_internal_scores=b_i,
                     baseline_external_scores=b_e, n_resamples=60, seed=5, confidence=0.9)

    def macro_w(y, s, w):
        vals = []
        for j in range(y.shape[1]):
            k = ~np.isnan(y[:, j])
            vals.append(weighted_auroc(y[k, j].astype(bool), s[k, j], w[None, k])[0])
        return np.mean(vals)

    gaps, base_gaps = [], []
    for w_i, w_e in two_sample_weights(90, 70, n_resamples=60, seed=5, groups_a=pat_i):
        for wi, we in zip(w_i, w_e):
            gaps.append(macro_w(y_e, s_e, we) - macro_w(y_i, s_i, wi))
            base_gaps.append(macro_w(y_e, b_e, we) - macro_w(y_i, b_i, wi))
    gaps, base_gaps = np.array(gaps), np.array(base_gaps)
    assert r["gap_ci"] == pytest.approx(list(percentile_ci(gaps, 0.9)), abs=1e-12)
    assert r["baseline_gap_ci"] == pytest.approx(list(percentile_ci(base_gaps, 0.9)), abs=1e-12)
    # paired: the difference is taken resample by resample, on the same draws
    assert r["gap_vs_baseline_ci"] == pytest.approx(list(percentile_ci(gaps - base_gaps, 0.9)), abs=1e-12)
    assert r["bootstrap_skipped"] == int(np.isnan(gaps).sum())
    # the paired CI is narrower than combining the two gaps' CIs as if independent
    paired = np.diff(r["gap_vs_baseline_ci"])[0]
    assert paired < np.diff(r["gap_ci"])[0] + np.diff(r["baseline_gap_ci"])[0]


def test_multilabel_macro_with_masked_and_excluded_labels():
    rng = np.random.default_rng(4)
    y_i, s_i = make_set(rng, 250, [1.5, 1.0, 0.8, 1.0])
    y_e, s_e = make_set(rng, 200, [1.0, 0.7, 0.8, 1.0])
    y_i[rng.random(250) < 0.3, 1] = np.nan  # label 1 partly masked internally
    y_e[:, 2] = 0.0  # label 2 has no positive externally: excluded
    y_e[:, 3] = np.nan  # label 3 entirely masked externally: excluded
    y_e[0, 3] = 1.0
    names = ["a", "b", "c", "d"]
    s_i[np.isnan(y_i)] = np.nan  # a masked image's score is never read
    r = transfer_gap(y_i, s_i, y_e, s_e, label_names=names, n_resamples=200)
    assert r["labels"] == ["a", "b"] and r["labels_excluded"] == ["c", "d"]

    def auc(y, s):
        k = ~np.isnan(y)
        return roc_auc_score(y[k], s[k])

    internal = np.mean([auc(y_i[:, 0], s_i[:, 0]), auc(y_i[:, 1], s_i[:, 1])])
    external = np.mean([auc(y_e[:, 0], s_e[:, 0]), auc(y_e[:, 1], s_e[:, 1])])
    assert r["internal_auroc"] == pytest.approx(internal, abs=1e-12)
    assert r["external_auroc"] == pytest.approx(external, abs=1e-12)
    assert r["gap"] == pytest.approx(external - internal, abs=1e-12)
    assert set(r["per_label"]) == {"a", "b"}
    json.dumps(r, allow_nan=False)


def test_patient_resampling_of_duplicated_images_matches_image_resampling():
    rng = np.random.default_rng(5)
    y_i, s_i = make_set(rng, 150, [1.2, 0.9])
    y_e, s_e = make_set(rng, 120, [0.8, 0.8])
    base = transfer_gap(y_i, s_i, y_e, s_e, n_resamples=300, seed=2)
    dup = transfer_gap(np.repeat(y_i, 2, axis=0), np.repeat(s_i, 2, axis=0), np.repeat(y_e, 2, axis=0),
                       np.repeat(s_e, 2, axis=0), internal_groups=np.repeat(np.arange(150), 2),
                       external_groups=np.repeat(np.arange(120), 2), n_resamples=300, seed=2)
    assert dup["gap"] == pytest.approx(base["gap"], abs=1e-12)
    assert dup["gap_ci"] == pytest.approx(base["gap_ci"], abs=1e-12)
    naive = transfer_gap(np.repeat(y_i, 2, axis=0), np.repeat(s_i, 2, axis=0), np.repeat(y_e, 2, axis=0),
                         np.repeat(s_e, 2, axis=0), n_resamples=300, seed=2)
    assert np.diff(naive["gap_ci"])[0] < 0.85 * np.diff(base["gap_ci"])[0]
    assert dup["resampling"] == "patient" and base["resampling"] == "image"


def test_deterministic_for_a_seed_and_no_bootstrap():
    rng = np.random.default_rng(6)
    y_i, s_i = make_set(rng, 200, [1.2, 0.9, 1.0])
    y_e, s_e = make_set(rng, 200, [0.8, 0.8, 1.0])
    r1 = transfer_gap(y_i, s_i, y_e, s_e, n_resamples=200, seed=11)
    assert r1 == transfer_gap(y_i, s_i, y_e, s_e, n_resamples=200, seed=11)
    r2 = transfer_gap(y_i, s_i, y_e, s_e, n_resamples=200, seed=12)
    assert r2["gap"] == r1["gap"] and r2["gap_ci"] != r1["gap_ci"]
    r0 = transfer_gap(y_i, s_i, y_e, s_e, n_resamples=0)
    assert r0["gap"] == r1["gap"] and r0["gap_ci"] is None and r0["bootstrap_skipped"] is None


def test_no_usable_label_and_bad_inputs():
    rng = np.random.default_rng(7)
    y_i, s_i = make_set(rng, 50, [1.0, 1.0])
    y_e, s_e = make_set(rng, 40, [1.0, 1.0])
    r = transfer_gap(y_i, s_i, np.zeros_like(y_e), s_e, n_resamples=50)
    assert r["gap"] is None and r["gap_ci"] is None and r["labels"] == []
    assert "no label" in r["note"]
    json.dumps(r, allow_nan=False)
    with pytest.raises(ValueError, match="both"):
        transfer_gap(y_i, s_i, y_e, s_e, baseline_internal_scores=s_i)
    with pytest.raises(ValueError):
        transfer_gap(y_i, s_i[:, :1], y_e, s_e)
    with pytest.raises(ValueError):
        transfer_gap(y_i, s_i, y_e[:, :1], s_e[:, :1])
    with pytest.raises(ValueError):
        transfer_gap(y_i, s_i, y_e, s_e, label_names=["only-one"])
    with pytest.raises(ValueError):
        transfer_gap(y_i, s_i, y_e, s_e, internal_groups=np.arange(3))
