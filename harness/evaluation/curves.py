"""Learning curves: AUROC against the number of real training images n.

A real-only classifier measured at a few sizes (47, 94, ..., 4695 images) gives a curve; a
classifier trained on real + synthetic images at one size gives a target AUROC. The *real-image
equivalent* of that target is how many real images the real-only classifier needs to reach it.

Measured curves wiggle (seed noise), so the equivalent is read off the monotone (isotonic) fit of
the real-only curve, interpolated linearly in log(n) (learning curves are close to linear in
log n, and the sizes are spaced geometrically). Outside the measured range it is only a bound.

Functional and numpy-only, like the rest of :mod:`cxrbench.evaluation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Equivalent", "monotone_curve", "real_image_equivalent", "equivalent_interval", "saturation_size"]

EQUIVALENT_METHOD = (
    "parametric bootstrap: real-only points ~ N(mean, se) independently, target ~ N(mean, se); "
    "equivalent per draw from the isotonic real-only curve, linear in log n; percentile interval "
    "(order statistics), censored draws count as the bound"
)
#: curve values this close count as equal (AUROC lives in [0, 1]; far below any real difference)
_TIE = 1e-12


# --------------------------------------------------------------------------- input checks


def _sizes(sizes, min_points: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validated sizes as float64 and the order that sorts them ascending."""
    n = np.asarray(sizes, dtype=np.float64)
    if n.ndim != 1 or n.size < min_points:
        raise ValueError(f"need at least {min_points} sizes in a 1-D sequence, got shape {n.shape}")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"sizes must be finite and positive, got {n.tolist()}")
    order = np.argsort(n, kind="stable")
    dup = n[order][1:][np.diff(n[order]) == 0]
    if dup.size:
        raise ValueError(f"duplicate size {dup[0]:.10g}: one curve point per size")
    return n, order


def _values(values, k: int, name: str) -> np.ndarray:
    """Validated finite float64 values, one per size."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (k,):
        raise ValueError(f"{name} must have one value per size ({k}), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {v.tolist()}")
    return v


def _ses(ses, k: int, name: str) -> np.ndarray:
    """Standard errors as float64; None means no uncertainty (0)."""
    if ses is None:
        return np.zeros(k)
    s = np.array([0.0 if x is None else x for x in ses], dtype=np.float64)
    if s.shape != (k,) or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"{name} must be {k} finite non-negative standard errors (or None), got {s.tolist()}")
    return s


# --------------------------------------------------------------------------- monotone fit


def _pav(y: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing least-squares fit of ``y`` (equal weights)."""
    means, counts = [], []
    for x in y:
        means.append(float(x))
        counts.append(1)
        # A block above its right neighbour violates monotonicity: merge them into their mean,
        # which may in turn violate the block before, hence the loop.
        while len(means) > 1 and means[-2] > means[-1]:
            c = counts[-2] + counts[-1]
            means[-2:] = [(means[-2] * counts[-2] + means[-1] * counts[-1]) / c]
            counts[-2:] = [c]
    return np.repeat(means, counts)


def monotone_curve(sizes: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """The non-decreasing least-squares (isotonic) fit of ``values`` ordered by ``sizes``.

    Computed by pool-adjacent-violators with equal weights. ``fit[i]`` belongs to ``sizes[i]``
    (input order is kept; the sizes need not be sorted). Raises ValueError on fewer than 2
    points, duplicate or non-positive sizes, or non-finite values.
    """
    n, order = _sizes(sizes)
    v = _values(values, n.size, "values")
    fit = np.empty_like(v)
    fit[order] = _pav(v[order])
    return fit


# --------------------------------------------------------------------------- real-image equivalent


@dataclass(frozen=True)
class Equivalent:
    """A real-image equivalent: ``n`` inside the measured range, else a ``bound`` at ``limit``.

    ``bound`` is "above" (the target exceeds the whole real-only curve; ``limit`` = largest
    size) or "below" (the target is at or below the curve's first point; ``limit`` = smallest
    size). Inside the range ``bound`` and ``limit`` are None.
    """

    n: float | None
    bound: str | None = None
    limit: float | None = None

    @property
    def value(self) -> float:
        """``n`` inside the range, else ``limit``: the number to plot or sort by."""
        return self.n if self.bound is None else self.limit

    def text(self) -> str:
        """"1,234" inside the range, "> 4,695" above it, "< 47" below it."""
        mark = {None: "", "above": "> ", "below": "< "}[self.bound]
        return f"{mark}{round(self.value):,}"


def _log_equivalent(log_n: np.ndarray, fit: np.ndarray, target: float) -> float:
    """log of the equivalent on a sorted isotonic curve; -inf below it, +inf above it."""
    # A pooled level is a mean computed with rounding: a target equal to it must still reach it.
    reached = fit >= target - _TIE
    if reached[0]:
        return -math.inf
    if not reached[-1]:
        return math.inf
    # The first point reaching the target: on a flat stretch that is its smallest n.
    i = int(np.argmax(reached))
    t = min(1.0, (target - fit[i - 1]) / (fit[i] - fit[i - 1]))
    return float(log_n[i - 1] + t * (log_n[i] - log_n[i - 1]))


def _as_equivalent(log_value: float, n_min: float, n_max: float) -> Equivalent:
    if math.isinf(log_value):
        return Equivalent(None, "below", float(n_min)) if log_value < 0 else Equivalent(None, "above", float(n_max))
    return Equivalent(math.exp(log_value))


def real_image_equivalent(sizes: Sequence[float], real_values: Sequence[float], target: float) -> Equivalent:
    """The number of real images at which the monotone (isotonic) real-only curve reaches
    ``target``, by linear interpolation in log(n) between the measured sizes; on a flat stretch
    of the curve, the smallest n that reaches it. A target above the whole curve gives the bound
    "above" the largest size; a target at or below the curve's first point gives "below" the
    smallest size.
    """
    n, order = _sizes(sizes)
    v = _values(real_values, n.size, "real_values")
    if not math.isfinite(target):
        raise ValueError(f"target must be finite, got {target}")
    n, v = n[order], v[order]
    return _as_equivalent(_log_equivalent(np.log(n), _pav(v), float(target)), n[0], n[-1])


def equivalent_interval(
    sizes: Sequence[float], real_means: Sequence[float], real_ses: Sequence[float | None] | None,
    target_mean: float, target_se: float | None, *, confidence: float = 0.95, draws: int = 2000, seed: int = 0,
) -> dict[str, Any]:
    """Percentile interval of the real-image equivalent under a parametric bootstrap.

    Each draw takes every real-only point ~ Normal(mean, se) independently and the target ~
    Normal(target_mean, target_se), and computes :func:`real_image_equivalent`. A draw outside
    the measured range counts as its bound (below: the smallest size, above: the largest); an
    interval end on such a draw is written "< n_min" / "> n_max". An se of None or 0 means no
    uncertainty. Deterministic for a given seed.
    """
    n, order = _sizes(sizes)
    mu = _values(real_means, n.size, "real_means")[order]
    se = _ses(real_ses, n.size, "real_ses")[order]
    (t_se,) = _ses([target_se], 1, "target_se")
    if not math.isfinite(target_mean):
        raise ValueError(f"target_mean must be finite, got {target_mean}")
    if not (0 < confidence < 1 and int(draws) == draws >= 1):
        raise ValueError(f"need 0 < confidence < 1 and a positive integer of draws, got {confidence}, {draws}")
    n, log_n, draws = n[order], np.log(n[order]), int(draws)
    rng = np.random.default_rng(seed)
    curves = mu + se * rng.standard_normal((draws, n.size))
    targets = target_mean + t_se * rng.standard_normal(draws)
    # Censored draws are kept as -inf / +inf so they sort below / above every measured value.
    x = np.sort([_log_equivalent(log_n, _pav(c), t) for c, t in zip(curves, targets)])
    alpha = 1 - confidence
    # Order statistics (numpy's "lower" / "higher"), never interpolation: an end is then a
    # single draw, censored or not, and the interval is at least as wide as the nominal one.
    lo = _as_equivalent(x[math.floor(alpha / 2 * (draws - 1))], n[0], n[-1])
    hi = _as_equivalent(x[math.ceil((1 - alpha / 2) * (draws - 1))], n[0], n[-1])
    return {
        "lo": lo.value, "hi": hi.value, "lo_text": lo.text(), "hi_text": hi.text(),
        "lo_censored": lo.bound is not None, "hi_censored": hi.bound is not None,
        "censored_below": float(np.mean(x == -math.inf)), "censored_above": float(np.mean(x == math.inf)),
        "confidence": confidence, "draws": draws, "seed": seed, "method": EQUIVALENT_METHOD,
    }


# --------------------------------------------------------------------------- saturation


def saturation_size(sizes: Sequence[float], gain_cis: Sequence[tuple[float, float] | None]) -> float | None:
    """The smallest size from which the gain interval covers 0 at every size at or above it.

    ``gain_cis[i]`` is the (lo, hi) confidence interval of supplemented minus real-only AUROC at
    ``sizes[i]``. None when the largest size's interval does not cover 0 (not saturated within
    the measured range). A missing interval is an error: it would silently move the answer.
    """
    n, order = _sizes(sizes, min_points=1)
    if len(gain_cis) != n.size:
        raise ValueError(f"gain_cis must have one interval per size ({n.size}), got {len(gain_cis)}")
    covers = []
    for i in order:
        ci = gain_cis[i]
        if ci is None:
            raise ValueError(f"no gain interval at size {n[i]:.10g}")
        lo, hi = (float(c) for c in ci) if len(ci) == 2 else (math.nan, math.nan)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"gain interval at size {n[i]:.10g} must be finite (lo, hi) with lo <= hi, got {ci}")
        covers.append(lo <= 0 <= hi)
    # Walk down from the largest size while the intervals cover 0.
    saturated = None
    for size, cover in zip(n[order][::-1], covers[::-1]):
        if not cover:
            break
        saturated = float(size)
    return saturated
