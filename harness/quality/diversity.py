"""Within-class diversity of an image set: MS-SSIM between random pairs, and pixel spread.

A generator that collapses makes images of one class look alike: high pairwise MS-SSIM and a
small per-pixel spread. Both are computed per label group ("label{j}={v}": images whose label
column j is v, v in {0, 1}; NaN = unknown, left out), because classes differ on purpose and
across-class pairs would hide a collapse within each class.
"""

from __future__ import annotations

import numpy as np

from cxrbench.errors import CxrbenchError
from cxrbench.quality.memorization import as_float

__all__ = ["label_groups", "ms_ssim_settings", "ms_ssim_diversity", "pixel_spread"]

# torchmetrics' default MS-SSIM weights (Wang et al. 2003), finest scale first
DEFAULT_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def label_groups(labels, n: int) -> dict[str, np.ndarray]:
    """``{"label{j}={v}": indices}`` for each label column j and v in (0, 1); NaN labels are in
    no group. ``labels=None``: one group ``"all"``. (N,) labels are one column."""
    if labels is None:
        return {"all": np.arange(n)}
    y = as_float(labels)
    y = y.reshape(len(y), -1)
    if len(y) != n:
        raise CxrbenchError(f"labels has {len(y)} rows for {n} images")
    return {f"label{j}={v}": np.flatnonzero(y[:, j] == v) for j in range(y.shape[1]) for v in (0, 1)}


def ms_ssim_settings(size: int) -> dict:
    """MS-SSIM settings for images whose smaller side is ``size`` pixels (>= 16).

    The defaults (5 scales, 11-px window) need >= 176 px. Rule: ``scales`` = the most (<= 5)
    that keep the coarsest scale (``size // 2**(scales-1)``) at >= 8 px, so it still holds
    structure; ``kernel_size`` = the largest odd size <= 11 that fits in the coarsest scale
    and passes torchmetrics' own size check (``size // (scales-1)**2 > kernel_size - 1``).
    ``sigma = 1.5 * kernel_size / 11`` keeps the default window/sigma ratio; torchmetrics
    builds its Gaussian from sigma alone (``2 * int(3.5 sigma + 0.5) + 1`` wide), which this
    makes exactly ``kernel_size``. ``betas``: the first ``scales`` default betas, renormalised
    to sum to 1. 16 px: 2 scales, 7 px; 32: 3, 7; 64: 4, 7; 128: 5, 7; 256: 5, 11.
    """
    if size < 16:
        raise CxrbenchError(f"ms_ssim_diversity: images must be at least 16 px, got {size}")
    scales = max(s for s in range(1, 6) if size // 2 ** (s - 1) >= 8)
    coarsest = size // 2 ** (scales - 1)
    k = min(11, coarsest if coarsest % 2 else coarsest - 1)
    while size // max(1, scales - 1) ** 2 <= k - 1:
        k -= 2
    betas = np.asarray(DEFAULT_BETAS[:scales])
    sigma = 1.5 * k / 11
    assert 2 * int(3.5 * sigma + 0.5) + 1 == k  # the window torchmetrics will build
    return {"scales": scales, "kernel_size": k, "sigma": sigma, "betas": tuple(float(b) for b in betas / betas.sum())}


def ms_ssim_diversity(images, labels=None, *, pairs: int = 200, seed: int = 0, batch: int = 64) -> dict:
    """Mean MS-SSIM of ``pairs`` random pairs of distinct images per label group.

    ``images``: (N, C, H, W), uint8 or float on 0..255 (data_range=255); ``labels``: (N, L)
    0/1/NaN or None (one group "all"). Pairs are drawn with ``numpy.random.default_rng(seed)``,
    independently (a pair may recur in a small group), never an image with itself. Groups
    with fewer than 2 images are left out. Higher MS-SSIM = more alike = less diverse.

    Returns ``{group: mean, ..., "overall": mean over groups, "groups": [names], "pairs",
    "seed", "scales", "kernel_size", "sigma", "betas"}`` (settings: :func:`ms_ssim_settings`).
    Computed with torchmetrics' ``multiscale_structural_similarity_index_measure`` in float32
    (7x faster than float64 on CPU, agreeing to ~1e-6), with its default ``normalize="relu"``
    (negative per-scale terms count as 0).
    """
    import torch
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    x = _numpy(images)
    if x.ndim != 4:
        raise CxrbenchError(f"ms_ssim_diversity: expects (N, C, H, W) images, got shape {x.shape}")
    cfg = ms_ssim_settings(min(x.shape[-2:]))
    rng = np.random.default_rng(seed)
    out: dict = {}
    for name, idx in label_groups(labels, len(x)).items():
        if len(idx) < 2:
            continue
        i = rng.integers(len(idx), size=pairs)
        j = rng.integers(len(idx) - 1, size=pairs)
        j += j >= i  # uniform over the other images of the group
        vals = []
        for lo in range(0, pairs, batch):
            a = torch.from_numpy(as_float(x[idx[i[lo : lo + batch]]], np.float32))
            b = torch.from_numpy(as_float(x[idx[j[lo : lo + batch]]], np.float32))
            vals.append(ms_ssim(a, b, data_range=255.0, kernel_size=cfg["kernel_size"], sigma=cfg["sigma"],
                                betas=cfg["betas"], reduction="none"))
        out[name] = float(torch.cat(vals).mean())
    if not out:
        raise CxrbenchError("ms_ssim_diversity: no label group has 2 images")
    groups = list(out)
    out["overall"] = float(np.mean([out[g] for g in groups]))
    return {**out, "groups": groups, "pairs": pairs, "seed": seed, **cfg}


def _spread(x: np.ndarray, idx: np.ndarray, chunk: int = 512) -> float:
    """Mean over pixels of the per-pixel std (ddof=0) across images ``x[idx]``, float64.

    Streams sums of (x - first image) and their squares: no float64 copy of the whole set,
    and the shift keeps ``E[v^2] - E[v]^2`` from cancelling on near-constant pixels.
    """
    shift = as_float(x[idx[0]])
    s1 = s2 = 0.0
    for lo in range(0, len(idx), chunk):
        v = as_float(x[idx[lo : lo + chunk]]) - shift  # float before arithmetic: uint8 would wrap
        s1 = s1 + v.sum(0)
        s2 = s2 + (v * v).sum(0)
    n = len(idx)
    return float(np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0)).mean())


def pixel_spread(images, labels=None) -> dict:
    """Per label group, the mean over pixels of the per-pixel standard deviation across the
    group's images (ddof=0, 0..255 values): how much the images differ pixel by pixel.

    Returns ``{group: spread, ..., "overall": mean over groups, "all": spread of all images
    regardless of labels, "groups": [names]}``; groups with fewer than 2 images are left out.
    """
    x = _numpy(images)
    out = {name: _spread(x, idx) for name, idx in label_groups(labels, len(x)).items() if len(idx) >= 2}
    groups = list(out)
    out["overall"] = float(np.mean([out[g] for g in groups])) if groups else float("nan")
    out["all"] = _spread(x, np.arange(len(x))) if len(x) >= 1 else float("nan")
    return {**out, "groups": groups}
