"""Binary classification metrics: AUROC, average precision, thresholds and confusion metrics.

Functional and numpy-only. Every metric takes ``y_true`` (1.0 positive, 0.0 negative, NaN
masked: an uncertain label is left out of the metric) and ``y_score`` (higher = more likely
positive). A metric undefined on its input (one class present, empty denominator) returns
NaN rather than raising, so a report over many labels never dies on a rare one.

AUROC and average precision are computed by one *weighted* kernel each
(:func:`weighted_auroc`, :func:`weighted_aupr`): a weight per image per row, so the point
estimate (all weights 1) and every bootstrap resample (weights = how many times each image
was drawn) go through the same code, vectorised over resamples. Weighted results equal the
metric on the explicitly repeated sample, ties included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "auroc",
    "aupr",
    "weighted_auroc",
    "weighted_aupr",
    "binary_inputs",
    "GroupedWeights",
    "group_weights",
    "auroc_from_groups",
    "aupr_from_groups",
    "choose_threshold",
    "threshold_metrics",
    "THRESHOLD_METHODS",
]


# --------------------------------------------------------------------------- input checks


def binary_inputs(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one label's inputs and drop masked (NaN) labels.

    Returns ``(y, score, keep)``: ``y`` boolean and ``score`` float64 for the kept images,
    ``keep`` the boolean mask over the input. Raises ValueError on a shape mismatch, a label
    other than 0/1/NaN, or a non-finite score (a NaN score is a classifier bug, never masked).
    """
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"y_true and y_score must be 1-D of equal length, got {y.shape} and {s.shape}")
    keep = ~np.isnan(y)
    y, s = y[keep], s[keep]
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must hold only 0, 1 or NaN (masked)")
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score must be finite (a NaN/inf score is a classifier bug)")
    return y.astype(bool), s, keep


def _has_both_classes(y: np.ndarray) -> bool:
    """True when ``y`` (boolean) holds at least one positive and one negative."""
    return bool(y.any() and not y.all())


# --------------------------------------------------------------------------- weighted kernels


@dataclass(frozen=True)
class GroupedWeights:
    """Weights of positives and of negatives summed per distinct score (ascending).

    ``scores`` (U,) the distinct scores; ``pos`` and ``neg`` (B, U). Everything the ranking
    metrics and the confusion counts at any threshold need, for B resamples at once. Grouping
    tied scores is what makes ties count as half (AUROC) / one threshold (AP), like sklearn.
    """

    scores: np.ndarray
    pos: np.ndarray
    neg: np.ndarray


def group_weights(y: np.ndarray, s: np.ndarray, weights: np.ndarray, columns=None) -> GroupedWeights:
    """Group ``weights`` (B, n) by distinct score; see :class:`GroupedWeights`.

    ``columns`` (optional, length n) selects which columns of ``weights`` belong to ``y, s``
    (saves a copy when ``weights`` covers more images, e.g. masked ones).
    """
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    cols = order if columns is None else np.asarray(columns)[order]
    w = np.asarray(weights, dtype=np.float64)[:, cols]
    pos = np.where(y[order], w, 0.0)
    new_value = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    if not new_value.all():  # ties: sum each run of equal scores
        starts = np.flatnonzero(new_value)
        pos = np.add.reduceat(pos, starts, axis=1)
        w = np.add.reduceat(w, starts, axis=1)
    return GroupedWeights(s_sorted[new_value], pos, w - pos)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (no warnings)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def auroc_from_groups(g: GroupedWeights) -> np.ndarray:
    """(B,) AUROC: Mann-Whitney, ties half. NaN where a row has a single class."""
    neg_below = np.cumsum(g.neg, axis=1) - 0.5 * g.neg  # negatives strictly below + half of ties
    wins = np.einsum("bu,bu->b", g.pos, neg_below)
    return _safe_ratio(wins, g.pos.sum(axis=1) * g.neg.sum(axis=1))


def aupr_from_groups(g: GroupedWeights) -> np.ndarray:
    """(B,) average precision as sklearn defines it. NaN where a row has a single class.

    AP = sum over distinct thresholds t of (recall gained at t) x precision(score >= t).
    """
    n_pos, n_neg = g.pos.sum(axis=1), g.neg.sum(axis=1)
    tp = n_pos[:, None] - np.cumsum(g.pos, axis=1) + g.pos  # positives with score >= t
    predicted = tp + (n_neg[:, None] - np.cumsum(g.neg, axis=1) + g.neg)
    predicted[predicted == 0] = 1.0  # only where tp == 0 too: precision 0, weight 0
    ap = _safe_ratio(np.einsum("bu,bu->b", g.pos, tp / predicted), n_pos)
    ap[n_neg == 0] = np.nan
    return ap


def weighted_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC for each row of ``weights`` (B, n): Mann-Whitney with ties counted half.

    ``y`` boolean (n,), ``s`` float (n,), already validated. Row b is the AUROC of the sample
    in which image i appears ``weights[b, i]`` times. NaN where a row has a single class.
    """
    return auroc_from_groups(group_weights(y, s, weights))


def weighted_aupr(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision for each row of ``weights`` (B, n), as sklearn defines it.

    Tied scores form one threshold. NaN where a row has a single class.
    """
    return aupr_from_groups(group_weights(y, s, weights))


# --------------------------------------------------------------------------- ranking metrics


def auroc(y_true, y_score) -> float:
    """Area under the ROC curve; equals ``sklearn.metrics.roc_auc_score``.

    Computed as the Mann-Whitney statistic (ties count half). NaN labels are masked; NaN is
    returned when only one class remains (sklearn raises instead).
    """
    y, s, _ = binary_inputs(y_true, y_score)
    return float(weighted_auroc(y, s, np.ones((1, y.size)))[0]) if y.size else math.nan


def aupr(y_true, y_score) -> float:
    """Average precision (area under the precision-recall curve, step-wise).

    Equals ``sklearn.metrics.average_precision_score``. NaN labels are masked; NaN when only
    one class remains (sklearn returns 0 or warns).
    """
    y, s, _ = binary_inputs(y_true, y_score)
    return float(weighted_aupr(y, s, np.ones((1, y.size)))[0]) if y.size else math.nan


# Fast path for the bootstrap: metric -> its weighted kernel (see bootstrap.bootstrap_distribution).
auroc.weighted = weighted_auroc  # type: ignore[attr-defined]
aupr.weighted = weighted_aupr  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- thresholds


def _operating_points(y: np.ndarray, s: np.ndarray):
    """(thresholds descending, tp, fp) when predicting positive for ``score >= threshold``.

    One operating point per distinct score, so every reachable confusion matrix is listed.
    """
    order = np.argsort(-s, kind="mergesort")
    s_desc, y_desc = s[order], y[order]
    last_of_value = np.r_[s_desc[1:] != s_desc[:-1], True]
    tp = np.cumsum(y_desc)[last_of_value]
    fp = np.cumsum(~y_desc)[last_of_value]
    return s_desc[last_of_value], tp, fp


THRESHOLD_METHODS = ("youden", "f1")


def choose_threshold(y_true, y_score, method: str = "youden") -> float:
    """Pick a decision threshold on the TUNING (validation) set; apply it unchanged on test.

    ``method="youden"`` maximises sensitivity + specificity - 1; ``"f1"`` maximises F1.
    Candidates are the distinct tuning scores (predict positive when ``score >= threshold``);
    among equally good ones the highest threshold wins, so the result is deterministic.
    Choosing on the test set would leak and inflate the threshold metrics, hence the split.
    Raises ValueError for an unknown method or a tuning set without both classes.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; choose from {THRESHOLD_METHODS}")
    y, s, _ = binary_inputs(y_true, y_score)
    if not _has_both_classes(y):
        raise ValueError("choose_threshold needs both classes in the tuning set")
    thresholds, tp, fp = _operating_points(y, s)
    n_pos, n_neg = y.sum(), (~y).sum()
    if method == "youden":
        objective = tp / n_pos - fp / n_neg
    else:
        objective = 2 * tp / (tp + fp + n_pos)
    return float(thresholds[int(np.argmax(objective))])


def threshold_metrics(y_true, y_score, threshold: float) -> dict:
    """Confusion-matrix metrics when predicting positive for ``score >= threshold``.

    Returns f1, sensitivity (recall, TPR), specificity (TNR), ppv (precision), npv, accuracy as
    floats (NaN when the denominator is empty) and the counts tp, fp, tn, fn as ints. NaN
    labels are masked.
    """
    y, s, _ = binary_inputs(y_true, y_score)
    pred = s >= threshold
    tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
    fn, tn = int(np.sum(~pred & y)), int(np.sum(~pred & ~y))

    def ratio(num: int, den: int) -> float:
        return num / den if den else math.nan

    return {
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
