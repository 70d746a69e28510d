"""Precision, recall, density and coverage of a generated feature set (Naeem et al. 2020).

"Reliable Fidelity and Diversity Metrics for Generative Models" (ICML 2020). Each real
sample gets a ball whose radius is the distance to its k-th nearest *other* real sample:
- precision: fraction of fake samples inside at least one real ball (fidelity);
- recall: fraction of real samples inside at least one fake ball (fake k-NN radii; diversity);
- density: ``(1 / (k M)) sum_j sum_i 1[fake_j in B(real_i, r_i)]``: how many real balls a
  fake sample sits in, relative to k; ~1 for matching distributions, unbounded above;
- coverage: fraction of real balls that hold at least one fake sample (diversity, robust to
  real outliers, unlike recall).
Matches the authors' reference package ``prdc`` (clovaai): strict ``<`` comparisons, the same
distance arithmetic, but chunked over real rows so 5,000 x 5,000 never builds a full matrix.
"""

from __future__ import annotations

import numpy as np

from cxrbench.errors import CxrbenchError
from cxrbench.quality.memorization import as_float, distance_chunks

__all__ = ["knn_radii", "prdc"]


def knn_radii(feats, k: int, *, chunk: int = 1024) -> np.ndarray:
    """Distance of each row to its k-th nearest other row, float64 (N,).

    The row itself sits at distance 0, so the k-th other neighbour is the (k+1)-th smallest
    entry of its distance row (duplicates count as neighbours at 0, as in the reference).
    """
    x = as_float(feats)
    radii = np.empty(len(x))
    for lo, hi, d in distance_chunks(x, x, chunk=chunk, same=True):
        radii[lo:hi] = np.partition(d, k, axis=1)[:, k]
    return radii


def prdc(real_feats, fake_feats, *, k: int = 5, chunk: int = 1024) -> dict:
    """``{"precision", "recall", "density", "coverage", "k"}`` of ``fake_feats`` (M, D)
    against ``real_feats`` (N, D); float64; needs more than ``k`` rows in each set."""
    real, fake = as_float(real_feats), as_float(fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise CxrbenchError(f"prdc: expects (N, D) and (M, D) features, got {real.shape} and {fake.shape}")
    if k < 1 or min(len(real), len(fake)) <= k:
        raise CxrbenchError(f"prdc: k={k} needs more than k rows per set, got {len(real)} real, {len(fake)} fake")
    r_real = knn_radii(real, k, chunk=chunk)
    r_fake = knn_radii(fake, k, chunk=chunk)

    balls_per_fake = np.zeros(len(fake), dtype=np.int64)  # how many real balls hold fake_j
    recalled = np.zeros(len(real), dtype=bool)
    covered = np.zeros(len(real), dtype=bool)
    for lo, hi, d in distance_chunks(real, fake, chunk=chunk):  # d: real[lo:hi] x fake
        inside = d < r_real[lo:hi, None]
        balls_per_fake += inside.sum(0)
        covered[lo:hi] = inside.any(1)
        recalled[lo:hi] = (d < r_fake[None, :]).any(1)
    return {
        "precision": float(np.mean(balls_per_fake > 0)),
        "recall": float(recalled.mean()),
        "density": float(balls_per_fake.sum() / (k * len(fake))),
        "coverage": float(covered.mean()),
        "k": k,
    }
