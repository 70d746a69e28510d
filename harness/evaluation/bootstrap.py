"""Percentile bootstrap confidence intervals, by image or by patient (cluster bootstrap).

A resample is represented as a row of *weights*: how many times each image was drawn. With
``groups`` (patient ids) whole patients are drawn with replacement and every image of a drawn
patient gets that patient's count, so images of one patient never pretend to be independent
(they are correlated; treating them as independent makes intervals too narrow).

Metrics that carry a ``.weighted(y, score, weights) -> (B,)`` kernel (``auroc``, ``aupr``)
are evaluated for a whole block of resamples at once; any other ``metric_fn(y, score)`` is
called once per resample on the explicitly repeated sample. Both see the same resamples for
the same seed, so they give the same interval. Resamples with a single class are skipped and
counted, never silently turned into an arbitrary value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .metrics import binary_inputs

__all__ = ["BootstrapResult", "resample_weights", "bootstrap_distribution", "bootstrap_ci", "percentile_ci"]

#: at most this many weight entries (resamples x images) are held in memory at once
_BLOCK_ENTRIES = 2_000_000


def _counts(rng: np.random.Generator, n_rows: int, n_items: int) -> np.ndarray:
    """(n_rows, n_items) draw counts: each row draws n_items items uniformly with replacement."""
    draws = rng.integers(0, n_items, size=(n_rows, n_items))
    flat = (np.arange(n_rows)[:, None] * n_items + draws).ravel()
    return np.bincount(flat, minlength=n_rows * n_items).reshape(n_rows, n_items)


def resample_weights(
    n: int, *, n_resamples: int, seed: int = 0, groups=None, block: int | None = None
) -> Iterator[np.ndarray]:
    """Yield blocks of bootstrap weights, float64 arrays (rows, n), n_resamples rows in all.

    Without ``groups`` each row counts how often each of the n images was drawn (n draws).
    With ``groups`` (length n, one patient id per image) the G patients are drawn G times and
    each image gets its patient's count. Deterministic for a given (n, groups, seed); blocks
    only bound memory (block size depends on n, not on anything else).
    """
    rng = np.random.default_rng(seed)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups must have one entry per image ({n}), got shape {groups.shape}")
        _, image_group = np.unique(groups, return_inverse=True)
        n_items = int(image_group.max()) + 1 if n else 0
    else:
        image_group, n_items = None, n
    block = block or max(1, _BLOCK_ENTRIES // max(n, n_items, 1))
    done = 0
    while done < n_resamples:
        rows = min(block, n_resamples - done)
        counts = _counts(rng, rows, n_items).astype(np.float64)
        yield counts if image_group is None else counts[:, image_group]
        done += rows


def percentile_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Equal-tailed percentile interval of ``values`` (NaN ignored); (nan, nan) if none left."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if v.size == 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    low, high = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass
class BootstrapResult:
    """Bootstrap distribution of a metric.

    ``values`` holds the metric of every *kept* resample; ``n_skipped`` counts resamples
    skipped because they held a single class (or the metric was undefined on them).
    """

    estimate: float
    values: np.ndarray
    n_resamples: int
    n_skipped: int

    def ci(self, confidence: float = 0.95) -> tuple[float, float]:
        """Percentile confidence interval at ``confidence``."""
        return percentile_ci(self.values, confidence)


def _loop_metric(metric_fn: Callable, y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Apply an arbitrary metric_fn to each weight row, on the explicitly repeated sample."""
    out = np.full(weights.shape[0], np.nan)
    index = np.arange(y.size)
    for b, row in enumerate(weights.astype(np.int64)):
        take = np.repeat(index, row)
        yb = y[take]
        if yb.any() and not yb.all():
            out[b] = metric_fn(yb.astype(np.float64), s[take])
    return out


def _single_class_rows(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Boolean (B,): rows whose resample holds no positive or no negative."""
    n_pos = weights @ y.astype(np.float64)
    n_neg = weights.sum(axis=1) - n_pos
    return (n_pos == 0) | (n_neg == 0)


def bootstrap_distribution(
    metric_fn: Callable,
    y_true,
    y_score,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    groups=None,
) -> BootstrapResult:
    """Bootstrap distribution of ``metric_fn(y_true, y_score)``.

    NaN labels are masked first (with their group entries). ``y_score`` may be 2-D (n, k) for a
    metric of several score columns (e.g. an AUROC difference); it is resampled by row. Uses
    ``metric_fn.weighted`` when present (vectorised), else one call per resample.
    """
    y_arr = np.asarray(y_true, dtype=np.float64)
    s_arr = np.asarray(y_score, dtype=np.float64)
    if s_arr.ndim == 1:
        y, s, keep = binary_inputs(y_arr, s_arr)
    else:  # several score columns: validate the labels against the first one
        _, _, keep = binary_inputs(y_arr, s_arr[:, 0])
        y, s = y_arr[keep].astype(bool), s_arr[keep]
    g = None if groups is None else np.asarray(groups)[keep]
    estimate = float(metric_fn(y.astype(np.float64), s)) if y.any() and not y.all() else math.nan
    kernel = getattr(metric_fn, "weighted", None) if s.ndim == 1 else None
    chunks = []
    for w in resample_weights(y.size, n_resamples=n_resamples, seed=seed, groups=g):
        vals = kernel(y, s, w) if kernel is not None else _loop_metric(metric_fn, y, s, w)
        vals[_single_class_rows(y, w)] = np.nan
        chunks.append(vals)
    values = np.concatenate(chunks) if chunks else np.empty(0)
    kept = values[~np.isnan(values)]
    return BootstrapResult(estimate, kept, n_resamples, int(values.size - kept.size))


def bootstrap_ci(
    metric_fn: Callable,
    y_true,
    y_score,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups=None,
) -> tuple[float, float]:
    """Percentile bootstrap CI ``(low, high)`` of ``metric_fn(y_true, y_score)``.

    With ``groups`` (patient ids, one per image) patients are resampled (cluster bootstrap)
    and take all their images. Resamples with a single class are skipped; use
    :func:`bootstrap_distribution` to see how many. (nan, nan) when every resample is skipped.
    """
    result = bootstrap_distribution(
        metric_fn, y_true, y_score, n_resamples=n_resamples, seed=seed, groups=groups
    )
    return result.ci(confidence)
