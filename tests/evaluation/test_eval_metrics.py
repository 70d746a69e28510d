"""AUROC / AP / threshold metrics against sklearn, the reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from cxrbench.evaluation import (
    aupr,
    auroc,
    choose_threshold,
    threshold_metrics,
    weighted_aupr,
    weighted_auroc,
)


def random_case(seed: int):
    """Random labels / scores: varying size, prevalence (down to ~3%), and tie density."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    prevalence = rng.choice([0.03, 0.1, 0.3, 0.5, 0.8])
    y = (rng.random(n) < prevalence).astype(float)
    y[0], y[1] = 0.0, 1.0  # both classes present
    s = rng.normal(size=n) + rng.uniform(0, 2) * y
    decimals = rng.choice([0, 1, 2, 8])  # 0 decimals -> heavy ties
    return y, np.round(s, decimals)


@pytest.mark.parametrize("seed", range(60))
def test_auroc_and_aupr_equal_sklearn(seed):
    y, s = random_case(seed)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert aupr(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_all_tied_scores():
    y = np.array([0, 1, 0, 1, 1.0])
    s = np.zeros(5)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s)) == 0.5
    assert aupr(y, s) == pytest.approx(average_precision_score(y, s))


def test_single_class_gives_nan():
    s = np.linspace(0, 1, 10)
    assert math.isnan(auroc(np.ones(10), s))
    assert math.isnan(aupr(np.zeros(10), s))
    assert math.isnan(auroc(np.full(10, np.nan), s))


@pytest.mark.parametrize("seed", range(10))
def test_nan_labels_are_masked(seed):
    y, s = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    masked = y.copy()
    drop = rng.random(y.size) < 0.3
    drop[:2] = False
    masked[drop] = np.nan
    assert auroc(masked, s) == pytest.approx(roc_auc_score(y[~drop], s[~drop]), abs=1e-12)
    assert aupr(masked, s) == pytest.approx(average_precision_score(y[~drop], s[~drop]), abs=1e-12)
    # a masked image must not matter whatever its score
    s2 = s.copy()
    s2[drop] = 1e6
    assert auroc(masked, s2) == auroc(masked, s)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        auroc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError):
        auroc([0, 1, 1], [0.1, 0.2])


@pytest.mark.parametrize("seed", range(10))
def test_weighted_kernels_equal_metric_on_repeated_sample(seed):
    """A weight row must mean 'this image appears w times', ties included."""
    y, s = random_case(seed)
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 4, size=(5, y.size)).astype(float)
    weights[:, :2] = 1  # keep both classes
    yb = y.astype(bool)
    got_roc, got_ap = weighted_auroc(yb, s, weights), weighted_aupr(yb, s, weights)
    for b, w in enumerate(weights.astype(int)):
        take = np.repeat(np.arange(y.size), w)
        assert got_roc[b] == pytest.approx(roc_auc_score(y[take], s[take]), abs=1e-12)
        assert got_ap[b] == pytest.approx(average_precision_score(y[take], s[take]), abs=1e-12)


def test_weighted_kernels_nan_for_single_class_rows():
    y = np.array([True, False, True])
    s = np.array([0.3, 0.2, 0.9])
    w = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    assert np.isnan(weighted_auroc(y, s, w)[:2]).all() and np.isnan(weighted_aupr(y, s, w)[:2]).all()
    assert weighted_auroc(y, s, w)[2] == 1.0


@pytest.mark.parametrize("seed", range(20))
def test_threshold_metrics_equal_sklearn(seed):
    y, s = random_case(seed)
    threshold = float(np.quantile(s, 0.6))
    pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    got = threshold_metrics(y, s, threshold)
    assert (got["tp"], got["fp"], got["tn"], got["fn"]) == (tp, fp, tn, fn)
    assert got["f1"] == pytest.approx(f1_score(y, pred, zero_division=0.0))
    assert got["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert got["specificity"] == pytest.approx(tn / (tn + fp))
    assert got["accuracy"] == pytest.approx((tp + tn) / y.size)
    if tp + fp:
        assert got["ppv"] == pytest.approx(tp / (tp + fp))
    if tn + fn:
        assert got["npv"] == pytest.approx(tn / (tn + fn))


def test_threshold_metrics_undefined_is_nan_and_masks_labels():
    got = threshold_metrics([0, 0, np.nan], [0.1, 0.2, 0.9], threshold=0.5)
    assert (got["tp"], got["fp"], got["tn"], got["fn"]) == (0, 0, 2, 0)
    assert math.isnan(got["sensitivity"]) and math.isnan(got["ppv"])
    assert got["specificity"] == 1.0


def counts(y, pred):
    """(tp, fp, tn, fn) by explicit boolean counting."""
    y, pred = y.astype(bool), pred.astype(bool)
    return (pred & y).sum(), (pred & ~y).sum(), (~pred & ~y).sum(), (~pred & y).sum()


def youden(y, pred):
    tp, fp, tn, fn = counts(y, pred)
    return tp / (tp + fn) + tn / (tn + fp) - 1


def f1(y, pred):
    tp, fp, _, fn = counts(y, pred)
    return 2 * tp / (2 * tp + fp + fn)


@pytest.mark.parametrize("seed", range(15))
def test_choose_threshold_is_optimal(seed):
    """The chosen threshold reaches the best objective over every candidate (exhaustive)."""
    y, s = random_case(seed)
    for method, objective in (("youden", youden), ("f1", f1)):
        t = choose_threshold(y, s, method)
        best = max(objective(y, s >= c) for c in np.unique(s))
        assert objective(y, s >= t) == pytest.approx(best, abs=1e-12)
        assert t in s
    pred = (s >= choose_threshold(y, s, "f1")).astype(int)
    assert f1(y, pred) == pytest.approx(f1_score(y, pred))


def test_choose_threshold_prefers_highest_among_ties():
    y = np.array([0, 1, 0, 1.0])
    s = np.array([0.1, 0.5, 0.6, 0.9])
    assert choose_threshold(y, s, "youden") == 0.9  # J = 0.5 at both 0.9 and 0.5


def test_choose_threshold_errors():
    with pytest.raises(ValueError):
        choose_threshold([0, 1], [0.1, 0.2], method="accuracy")
    with pytest.raises(ValueError):
        choose_threshold([1, 1], [0.1, 0.2])
