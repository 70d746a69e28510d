"""DeLong's test for correlated ROC curves (fast midrank algorithm) and Bonferroni correction.

Two classifiers scored on the SAME test images have correlated AUROCs; DeLong, DeLong &
Clarke-Pearson (1988) estimate their covariance from structural components (placements):
for each positive, the fraction of negatives it outranks; for each negative, the fraction
of positives that outrank it. Sun & Xu (2014) compute those placements with three midrank
passes, O(n log n) instead of O(n^2).

With ``groups`` (patient ids) the covariance is the cluster-robust version of Obuchowski
(1997, Biometrics 53:567): placements are summed per patient before taking (co)variances,
so several images of one patient are not counted as independent evidence. With one image
per patient it reduces exactly to DeLong.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata

from .metrics import binary_inputs

__all__ = ["delong_roc_variance", "delong_covariance", "delong_paired_test", "bonferroni"]


def _placements(y: np.ndarray, scores: np.ndarray):
    """AUCs (k,) and placements: v_pos (k, m) per positive, v_neg (k, n) per negative.

    ``v_pos[r, i]``: fraction of negatives below positive i under classifier r (ties half);
    ``v_neg[r, j]``: fraction of positives above negative j. Their means are the AUC.
    """
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    rank_pos = rankdata(pos, axis=1)
    rank_neg = rankdata(neg, axis=1)
    rank_all = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v_pos = (rank_all[:, :m] - rank_pos) / n
    v_neg = 1.0 - (rank_all[:, m:] - rank_neg) / m
    aucs = v_pos.mean(axis=1)
    return aucs, v_pos, v_neg


def _plain_covariance(v_pos: np.ndarray, v_neg: np.ndarray) -> np.ndarray:
    """DeLong covariance of the AUCs: S10/m + S01/n with unbiased sample covariances."""
    s10 = np.atleast_2d(np.cov(v_pos))
    s01 = np.atleast_2d(np.cov(v_neg))
    return s10 / v_pos.shape[1] + s01 / v_neg.shape[1]


def _clustered_covariance(v_pos, v_neg, aucs, group_pos, group_neg, n_groups) -> np.ndarray:
    """Obuchowski (1997) cluster-robust covariance of the AUCs.

    Sums each patient's centred placements, then combines positive-positive, negative-negative
    and within-patient positive-negative cross products with the I/(I-1) small-sample factors.
    """
    k, m, n = v_pos.shape[0], v_pos.shape[1], v_neg.shape[1]
    a = np.zeros((k, n_groups))
    b = np.zeros((k, n_groups))
    for r in range(k):
        a[r] = np.bincount(group_pos, weights=v_pos[r] - aucs[r], minlength=n_groups)
        b[r] = np.bincount(group_neg, weights=v_neg[r] - aucs[r], minlength=n_groups)
    i10 = np.unique(group_pos).size
    i01 = np.unique(group_neg).size
    i_all = np.unique(np.concatenate([group_pos, group_neg])).size
    if min(i10, i01) < 2:
        return np.full((k, k), np.nan)
    s10 = i10 / (i10 - 1) * (a @ a.T) / m**2
    s01 = i01 / (i01 - 1) * (b @ b.T) / n**2
    s11 = i_all / (i_all - 1) * (a @ b.T) / (m * n)
    return s10 + s01 + s11 + s11.T


def delong_covariance(y_true, score_matrix, *, groups=None):
    """AUCs (k,) and their (k, k) DeLong covariance for k classifiers on the same images.

    ``score_matrix`` is (k, n). NaN labels are masked. NaN covariance if a class has fewer
    than 2 images (or, with ``groups``, fewer than 2 patients).
    """
    scores = np.atleast_2d(np.asarray(score_matrix, dtype=np.float64))
    y, _, keep = binary_inputs(y_true, scores[0])
    scores = scores[:, keep]
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return np.full(scores.shape[0], np.nan), np.full((scores.shape[0],) * 2, np.nan)
    aucs, v_pos, v_neg = _placements(y, scores)
    if groups is None:
        if min(m, n) < 2:
            return aucs, np.full((scores.shape[0],) * 2, np.nan)
        return aucs, _plain_covariance(v_pos, v_neg)
    _, group_index = np.unique(np.asarray(groups)[keep], return_inverse=True)
    n_groups = int(group_index.max()) + 1
    cov = _clustered_covariance(v_pos, v_neg, aucs, group_index[y], group_index[~y], n_groups)
    return aucs, cov


def delong_roc_variance(y_true, y_score, *, groups=None) -> tuple[float, float]:
    """``(auc, variance)`` of one classifier's AUROC by DeLong (Obuchowski with ``groups``)."""
    aucs, cov = delong_covariance(y_true, np.asarray(y_score, dtype=np.float64)[None, :], groups=groups)
    return float(aucs[0]), float(cov[0, 0])


def delong_paired_test(y_true, score_a, score_b, *, groups=None) -> dict:
    """Two-sided DeLong test of AUROC(a) == AUROC(b) on the same images (same order).

    Returns auc_a, auc_b, delta (a - b), se (of delta), z, p_value, n, n_pos. When the
    variance of delta is zero (e.g. identical rankings) z is 0 / p is 1 if delta is 0, and
    z = +-inf / p = 0 otherwise. Everything NaN when a class is missing.
    """
    y, _, _ = binary_inputs(y_true, score_a)
    scores = np.vstack([np.asarray(score_a, dtype=np.float64), np.asarray(score_b, dtype=np.float64)])
    aucs, cov = delong_covariance(y_true, scores, groups=groups)
    delta = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if math.isnan(var) or math.isnan(delta):
        z = p = math.nan
    elif var <= 0:
        z = 0.0 if delta == 0 else math.copysign(math.inf, delta)
        p = 1.0 if delta == 0 else 0.0
    else:
        z = delta / math.sqrt(var)
        p = float(2 * norm.sf(abs(z)))
    return {
        "auc_a": float(aucs[0]),
        "auc_b": float(aucs[1]),
        "delta": delta,
        "se": math.nan if math.isnan(var) else math.sqrt(max(var, 0.0)),
        "z": float(z),
        "p_value": float(p),
        "n": int(y.size),
        "n_pos": int(y.sum()),
    }


def bonferroni(p_values) -> list:
    """Bonferroni-adjusted p-values: ``min(1, p * m)``.

    m counts the tests actually performed: None / NaN entries (a label that could not be
    tested) are passed through unchanged and not counted.
    """
    ps = list(p_values)
    tested = [p for p in ps if p is not None and not math.isnan(p)]
    m = len(tested)
    return [p if p is None or math.isnan(p) else min(1.0, float(p) * m) for p in ps]
