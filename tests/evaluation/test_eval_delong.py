"""DeLong test: fast midrank version vs the O(n^2) definition, vs the bootstrap; Bonferroni."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from cxrbench.evaluation import (
    bonferroni,
    bootstrap_distribution,
    auroc,
    delong_covariance,
    delong_paired_test,
    delong_roc_variance,
    resample_weights,
    weighted_auroc,
)

# --------------------------------------------------------------------------- references


def psi_matrix(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """psi[i, j] = 1 if positive i outranks negative j, 1/2 if tied, 0 otherwise."""
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def reference_placements(y, scores):
    """Per classifier: AUC, V10 (one per positive), V01 (one per negative), from psi."""
    out = []
    for s in scores:
        psi = psi_matrix(s[y == 1], s[y == 0])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    return out


def reference_delong(y, score_a, score_b):
    """DeLong et al. (1988) straight from the definition: explicit structural components."""
    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = reference_placements(y, [score_a, score_b])
    m, n = v10_a.size, v01_a.size

    def s10(u, v, cu, cv):
        return np.sum((u - cu) * (v - cv)) / (m - 1)

    def s01(u, v, cu, cv):
        return np.sum((u - cu) * (v - cv)) / (n - 1)

    var_a = s10(v10_a, v10_a, auc_a, auc_a) / m + s01(v01_a, v01_a, auc_a, auc_a) / n
    var_b = s10(v10_b, v10_b, auc_b, auc_b) / m + s01(v01_b, v01_b, auc_b, auc_b) / n
    cov = s10(v10_a, v10_b, auc_a, auc_b) / m + s01(v01_a, v01_b, auc_a, auc_b) / n
    z = (auc_a - auc_b) / math.sqrt(var_a + var_b - 2 * cov)
    return auc_a, auc_b, var_a, z, 2 * (1 - norm.cdf(abs(z)))


def reference_obuchowski_variance(y, s, groups):
    """Obuchowski (1997) clustered AUC variance with explicit per-cluster loops."""
    auc, v10, v01 = reference_placements(y, [s])[0]
    pos_groups, neg_groups = groups[y == 1], groups[y == 0]
    clusters = np.unique(groups)
    big_m, big_n = v10.size, v01.size
    x = np.array([v10[pos_groups == c].sum() - (pos_groups == c).sum() * auc for c in clusters])
    z = np.array([v01[neg_groups == c].sum() - (neg_groups == c).sum() * auc for c in clusters])
    i10, i01, i_all = np.unique(pos_groups).size, np.unique(neg_groups).size, clusters.size
    s10 = i10 / ((i10 - 1) * big_m) * np.sum(x * x)
    s01 = i01 / ((i01 - 1) * big_n) * np.sum(z * z)
    s11 = i_all / (i_all - 1) * np.sum(x * z)
    return s10 / big_m + s01 / big_n + 2 * s11 / (big_m * big_n)


def correlated_pair(seed: int, n_pos=None, n_neg=None, ties=False):
    """Labels and two correlated classifiers' scores on the same images."""
    rng = np.random.default_rng(seed)
    n_pos = n_pos or int(rng.integers(5, 80))
    n_neg = n_neg or int(rng.integers(5, 200))
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    shared = rng.normal(size=y.size) + 1.0 * y
    a = shared + rng.normal(scale=0.7, size=y.size)
    b = 0.6 * shared + rng.normal(scale=0.9, size=y.size) + 0.3 * y
    if ties:
        a, b = np.round(a), np.round(b, 1)
    perm = rng.permutation(y.size)
    return y[perm], a[perm], b[perm]


# --------------------------------------------------------------------------- fast vs definition


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("ties", [False, True])
def test_fast_delong_equals_definition(seed, ties):
    y, a, b = correlated_pair(seed, ties=ties)
    auc_a, auc_b, var_a, z, p = reference_delong(y, a, b)
    got = delong_paired_test(y, a, b)
    assert got["auc_a"] == pytest.approx(auc_a, abs=1e-12)
    assert got["auc_b"] == pytest.approx(auc_b, abs=1e-12)
    assert got["z"] == pytest.approx(z, abs=1e-8)
    assert got["p_value"] == pytest.approx(p, abs=1e-8)
    assert delong_roc_variance(y, a)[1] == pytest.approx(var_a, rel=1e-10)


@pytest.mark.parametrize("seed", range(10))
def test_clustered_variance_equals_definition(seed):
    y, a, _ = correlated_pair(seed, ties=seed % 2 == 0)
    groups = np.random.default_rng(seed).integers(0, max(3, y.size // 3), size=y.size)
    auc, var = delong_roc_variance(y, a, groups=groups)
    assert auc == pytest.approx(auroc(y, a), abs=1e-12)
    assert var == pytest.approx(reference_obuchowski_variance(y, a, groups), rel=1e-10)


def test_clustered_reduces_to_delong_with_one_image_per_patient():
    y, a, b = correlated_pair(3)
    plain = delong_paired_test(y, a, b)
    clustered = delong_paired_test(y, a, b, groups=[f"p{i}" for i in range(y.size)])
    for key in ("auc_a", "auc_b", "delta", "se", "z", "p_value"):
        assert clustered[key] == pytest.approx(plain[key], rel=1e-10)


def test_duplicated_images_fool_plain_delong_but_not_clustered():
    y, a, _ = correlated_pair(4, n_pos=40, n_neg=60)
    _, var = delong_roc_variance(y, a)
    y3, a3 = np.repeat(y, 3), np.repeat(a, 3)
    patients = np.repeat(np.arange(y.size), 3)
    _, var_naive = delong_roc_variance(y3, a3)
    _, var_clustered = delong_roc_variance(y3, a3, groups=patients)
    assert var_naive == pytest.approx(var / 3, rel=0.05)
    assert var_clustered == pytest.approx(var, rel=1e-10)


# --------------------------------------------------------------------------- vs the bootstrap


def test_delong_variance_close_to_bootstrap_variance():
    y, a, b = correlated_pair(11, n_pos=150, n_neg=200)
    yb = y.astype(bool)
    (weights,) = list(resample_weights(y.size, n_resamples=2000, seed=0))
    boot_a, boot_b = weighted_auroc(yb, a, weights), weighted_auroc(yb, b, weights)
    aucs, cov = delong_covariance(y, np.vstack([a, b]))
    assert cov[0, 0] / np.var(boot_a) == pytest.approx(1.0, abs=0.15)
    var_delta = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert var_delta / np.var(boot_a - boot_b) == pytest.approx(1.0, abs=0.15)
    assert cov[0, 1] > 0  # correlated classifiers on the same images


def test_clustered_variance_close_to_cluster_bootstrap_variance():
    rng = np.random.default_rng(21)
    patients = np.repeat(np.arange(150), rng.integers(1, 5, size=150))
    patient_sick = rng.random(150) < 0.4
    y = patient_sick[patients].astype(float)
    s = rng.normal(size=150)[patients] + 0.5 * rng.normal(size=y.size) + 1.2 * y  # patient effect
    _, var_clustered = delong_roc_variance(y, s, groups=patients)
    _, var_plain = delong_roc_variance(y, s)
    boot = bootstrap_distribution(auroc, y, s, n_resamples=2000, seed=0, groups=patients)
    assert var_clustered / np.var(boot.values) == pytest.approx(1.0, abs=0.2)
    assert var_clustered > 1.3 * var_plain


def test_null_hypothesis_p_values_are_calibrated():
    """Two equally good but different classifiers: ~5% of tests reject at 0.05."""
    rejections = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        y = np.r_[np.ones(40), np.zeros(60)]
        shared = rng.normal(size=100) + y
        a = shared + rng.normal(size=100)
        b = shared + rng.normal(size=100)
        rejections.append(delong_paired_test(y, a, b)["p_value"] < 0.05)
    assert 0.02 <= np.mean(rejections) <= 0.09


# --------------------------------------------------------------------------- edge cases


def test_symmetry_and_identical_scores():
    y, a, b = correlated_pair(7)
    ab, ba = delong_paired_test(y, a, b), delong_paired_test(y, b, a)
    assert ab["z"] == pytest.approx(-ba["z"]) and ab["p_value"] == pytest.approx(ba["p_value"])
    same = delong_paired_test(y, a, a)
    assert same["delta"] == 0 and same["p_value"] == 1.0 and same["z"] == 0.0


def test_masked_labels_and_single_class():
    y, a, b = correlated_pair(8)
    masked = y.copy()
    masked[:10] = np.nan
    got = delong_paired_test(masked, a, b)
    ref = delong_paired_test(y[10:], a[10:], b[10:])
    assert got == pytest.approx(ref)
    assert got["n"] == y.size - 10
    undefined = delong_paired_test(np.ones(5), np.arange(5.0), np.arange(5.0))
    assert math.isnan(undefined["p_value"]) and math.isnan(undefined["auc_a"])


# --------------------------------------------------------------------------- bonferroni


def test_bonferroni():
    assert bonferroni([]) == []
    assert bonferroni([0.01, 0.02, 0.5]) == pytest.approx([0.03, 0.06, 1.0])
    ps = np.random.default_rng(0).random(20)
    adjusted = bonferroni(ps)
    assert all(q >= p for p, q in zip(ps, adjusted))
    assert all(q <= 1.0 for q in adjusted)
    assert np.all(np.diff(np.array(adjusted)[np.argsort(ps)]) >= 0)  # order preserved
    # untested entries pass through and are not counted in m
    assert bonferroni([0.01, None, float("nan"), 0.02]) == [0.02, None, pytest.approx(float("nan"), nan_ok=True), 0.04]
