"""Distribution distances on feature vectors: Fréchet distance, KID, and the FD ratio.

All float64 numpy on (N, D) feature arrays (numpy or torch). The Fréchet distance itself is
clean-fid's ``frechet_distance`` (one sqrtm implementation in the project, the one the
literature's numbers come from); clean-fid is imported on first use because it imports torch.
"""

from __future__ import annotations

import warnings

import numpy as np

from cxrbench.errors import CxrbenchError
from cxrbench.quality.memorization import as_float

__all__ = ["feature_stats", "frechet_distance", "kid", "fd_ratio"]


def _rows(feats, name: str, min_rows: int = 1) -> np.ndarray:
    x = as_float(feats)
    if x.ndim != 2:
        raise CxrbenchError(f"{name}: expects (N, D) features, got shape {x.shape}")
    if len(x) < min_rows:
        raise CxrbenchError(f"{name}: needs at least {min_rows} feature rows per set, got {len(x)}")
    return x


def feature_stats(feats):
    """``(mu, sigma)``: float64 mean (D,) and covariance (D, D) (rows = samples, ddof=1)."""
    x = _rows(feats, "feature_stats", 2)
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets:
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, by ``cleanfid.fid.frechet_distance``.

    Biased upward by small N (the covariance estimates are noisy), so compare values only at
    equal sample sizes (see :func:`fd_ratio`). Raises CxrbenchError on fewer than 2 rows.
    """
    a, b = _rows(feats_a, "frechet_distance", 2), _rows(feats_b, "frechet_distance", 2)
    if a.shape[1] != b.shape[1]:
        raise CxrbenchError(f"frechet_distance: feature sizes differ ({a.shape[1]} vs {b.shape[1]})")
    from cleanfid.fid import frechet_distance as _cleanfid_fd

    with warnings.catch_warnings():
        # clean-fid 0.1.35 passes sqrtm(disp=False), deprecated since SciPy 1.16: noise, not news
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated", category=DeprecationWarning)
        return float(_cleanfid_fd(*feature_stats(a), *feature_stats(b)))


def _poly(x: np.ndarray, y: np.ndarray, d: int) -> np.ndarray:
    """(x.y / d + 1)^3, in place: ``** 3`` calls pow() per entry, three times slower than k*k*k."""
    k = x @ y.T
    k /= d
    k += 1.0
    k3 = k * k
    k3 *= k
    return k3


def kid_subset_size(n_a: int, n_b: int, cap: int = 1000) -> int:
    """The subset size of a KID whose spread means something: at most half of the smaller set.
    A subset as large as the set is the whole set every time, so the "std over subsets" is 0 by
    construction (~1e-15 was recorded with 600 images a side and the 1000 cap; one published CXR
    benchmark reported that zero too)."""
    return max(2, min(int(cap), int(n_a) // 2, int(n_b) // 2))


def kid(feats_a, feats_b, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """Kernel Inception Distance: ``(mean, std)`` over ``subsets`` of the unbiased MMD^2 with
    the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3`` (Bińkowski et al. 2018).

    Each subset draws ``m = min(subset_size, len(a), len(b))`` rows *without* replacement from
    each set (a repeated row would add a zero-distance pair the estimator assumes absent), with
    ``numpy.random.default_rng(seed)``. Same estimator as torchmetrics and clean-fid; std is
    the population std (ddof=0, as torchmetrics reports it).
    """
    a, b = _rows(feats_a, "kid", 2), _rows(feats_b, "kid", 2)
    if a.shape[1] != b.shape[1]:
        raise CxrbenchError(f"kid: feature sizes differ ({a.shape[1]} vs {b.shape[1]})")
    m = min(subset_size, len(a), len(b))
    if m < 2 or subsets < 1:
        raise CxrbenchError(f"kid: needs subset_size >= 2 and subsets >= 1, got {subset_size} and {subsets}")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    scores = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = _poly(x, x, d), _poly(y, y, d), _poly(x, y, d)
        # unbiased: within-set sums leave out the diagonal k(x_i, x_i)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        scores[s] = within - 2.0 * kxy.sum() / (m * m)
    return float(scores.mean()), float(scores.std())


def fd_ratio(real_feats, syn_feats, *, seed: int = 0) -> dict:
    """FD normalised by the real data's own FD, so numbers compare across datasets (medigan).

    The real set is split at random (seeded) into halves A and B; ``fd_real_real = FD(A, B)``
    and ``fd_real_syn = FD(S, B)``, S a random synthetic subsample of A's size: every FD is
    then taken at the same sample size, which matters because FD's bias depends on it.
    ``n_half = min(len(real) // 2, len(syn))``. ``ratio = fd_real_real / fd_real_syn``: about
    1 when synthetic is as close to B as real data is, towards 0 the worse it is; NaN when
    ``fd_real_syn <= 0`` (indistinguishable at numerical precision, the ratio is undefined).
    """
    r, s = _rows(real_feats, "fd_ratio", 4), _rows(syn_feats, "fd_ratio", 2)
    n_half = min(len(r) // 2, len(s))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(r))
    a, b = r[perm[:n_half]], r[perm[n_half : 2 * n_half]]
    syn = s[rng.choice(len(s), n_half, replace=False)]
    fd_rr, fd_rs = frechet_distance(a, b), frechet_distance(syn, b)
    return {
        "fd_real_real": fd_rr,
        "fd_real_syn": fd_rs,
        "ratio": fd_rr / fd_rs if fd_rs > 0 else float("nan"),
        "n_half": int(n_half),
        "seed": seed,
    }
