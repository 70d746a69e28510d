"""Bootstrap CIs: nominal coverage under a known model, patient-level resampling, speed."""

from __future__ import annotations


import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrbench.evaluation import (
    aupr,
    auroc,
    bootstrap_ci,
    bootstrap_distribution,
    resample_weights,
)


def binormal(rng, n_pos: int, n_neg: int, d: float):
    """Positives ~ N(d, 1), negatives ~ N(0, 1): true AUROC = Phi(d / sqrt(2))."""
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    s = np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]
    return y, s


def test_ci_coverage_matches_nominal_on_binormal_model():
    d = 1.0
    true_auc = norm.cdf(d / np.sqrt(2))
    covered95, covered80 = [], []
    for k in range(200):
        y, s = binormal(np.random.default_rng(1000 + k), 40, 60, d)
        dist = bootstrap_distribution(auroc, y, s, n_resamples=200, seed=k)
        lo, hi = dist.ci(0.95)
        covered95.append(lo <= true_auc <= hi)
        lo, hi = dist.ci(0.80)
        covered80.append(lo <= true_auc <= hi)
    assert 0.88 <= np.mean(covered95) <= 0.99
    assert 0.70 <= np.mean(covered80) <= 0.90  # not just "wide enough": also not too wide


def test_fast_path_equals_per_resample_sklearn():
    """Vectorised kernels and a plain metric_fn see the same resamples: same interval."""
    y, s = binormal(np.random.default_rng(0), 30, 50, 0.8)
    s = np.round(s, 1)  # ties
    groups = np.arange(y.size) // 2
    for fast, slow in ((auroc, roc_auc_score), (aupr, average_precision_score)):
        for g in (None, groups):
            a = bootstrap_ci(fast, y, s, n_resamples=100, seed=3, groups=g)
            b = bootstrap_ci(lambda yy, ss: slow(yy, ss), y, s, n_resamples=100, seed=3, groups=g)
            assert a == pytest.approx(b, abs=1e-12)


def test_cluster_bootstrap_resamples_patients():
    """Each patient's images copied 4x: image-level CIs shrink ~2x, patient-level ones don't."""
    y, s = binormal(np.random.default_rng(5), 60, 90, 1.0)
    base = bootstrap_ci(auroc, y, s, n_resamples=1000, seed=1)
    y4, s4 = np.repeat(y, 4), np.repeat(s, 4)
    patients = np.repeat(np.arange(y.size), 4)
    by_image = bootstrap_ci(auroc, y4, s4, n_resamples=1000, seed=1)
    by_patient = bootstrap_ci(auroc, y4, s4, n_resamples=1000, seed=1, groups=patients)

    def width(ci):
        return ci[1] - ci[0]

    assert width(by_patient) > 1.6 * width(by_image)
    assert width(by_patient) == pytest.approx(width(base), rel=0.2)


def test_resample_weights_structure():
    n = 12
    groups = np.array(list("aabbbcddddef"))
    (w,) = list(resample_weights(n, n_resamples=50, seed=0, groups=groups))
    assert w.shape == (50, n)
    for members in ([0, 1], [2, 3, 4], [6, 7, 8, 9]):
        assert (w[:, members] == w[:, members[:1]]).all()  # a patient's images share its count
    first_of_group = [0, 2, 5, 6, 10, 11]
    assert (w[:, first_of_group].sum(axis=1) == 6).all()  # 6 patients drawn per resample
    (w_iid,) = list(resample_weights(n, n_resamples=50, seed=0))
    assert (w_iid.sum(axis=1) == n).all()


def test_resample_weights_deterministic_and_block_independent():
    whole = np.vstack(list(resample_weights(30, n_resamples=25, seed=7)))
    blocks = np.vstack(list(resample_weights(30, n_resamples=25, seed=7, block=4)))
    other = np.vstack(list(resample_weights(30, n_resamples=25, seed=8)))
    assert (whole == blocks).all()
    assert not (whole == other).all()


def test_single_class_resamples_are_skipped_and_counted():
    y = np.r_[1.0, np.zeros(9)]
    s = np.linspace(0, 1, 10)
    result = bootstrap_distribution(auroc, y, s, n_resamples=300, seed=2)
    (w,) = list(resample_weights(10, n_resamples=300, seed=2))
    expected_skips = int((w[:, 0] == 0).sum())  # the only positive not drawn
    assert result.n_skipped == expected_skips > 0
    assert result.values.size == 300 - expected_skips
    assert not np.isnan(result.values).any()


def test_masked_labels_dropped_before_resampling():
    y, s = binormal(np.random.default_rng(9), 20, 30, 1.0)
    masked = np.r_[y, np.full(7, np.nan)]
    padded = np.r_[s, np.zeros(7)]
    assert bootstrap_ci(auroc, masked, padded, n_resamples=200) == bootstrap_ci(auroc, y, s, n_resamples=200)
