"""Lung-field masks for mask-conditioned generators: estimate, perturb, compare.

- :func:`estimate_lung_masks`: a classical lung-field estimate for datasets without masks
  (Kermany, NIH...) and for measuring whether a generated image follows its mask. Lungs are
  the large dark regions *inside* the body: threshold (Otsu) the smoothed image within the
  body, drop what touches the border (air outside the patient), keep the two largest
  components, close and fill them. Crude, but cheap, deterministic and dependency-free
  (scipy); its Dice against the phantom's true masks is measured in the tests.
- :func:`perturb_masks`: seeded affine + elastic transforms of masks (the study draws
  generation masks from the training masks this way), a pure function of (mask, seed).
- :func:`dice`: per-pair Dice overlap.

torch is imported inside the functions that use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of uint8-range values (between-class variance maximised)."""
    hist = np.bincount(np.clip(values, 0, 255).astype(np.int64).ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 127.0
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mean_all = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * w0 / total - m0) ** 2 / (w0 * w1 / total)
    between[~np.isfinite(between)] = -1.0
    return float(np.argmax(between))


def estimate_lung_mask(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) radiograph -> uint8 (H, W) lung-field estimate (0/1)."""
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    smooth = ndimage.gaussian_filter(img, sigma=max(0.5, min(h, w) / 64.0))
    # the body: brighter than the air around it; its holes (the lungs) filled in
    body = ndimage.binary_fill_holes(smooth > _otsu(smooth))
    inside = smooth[body] if body.sum() > 0.05 * h * w else smooth.ravel()
    dark = (smooth < _otsu(inside)) & body
    dark = ndimage.binary_opening(dark, iterations=max(1, min(h, w) // 64))
    labels, n = ndimage.label(dark)
    if n == 0:
        return np.zeros((h, w), np.uint8)
    # air that touches the border is outside the patient, not lung
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    sizes = ndimage.sum(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    order = [i + 1 for i in np.argsort(-sizes) if (i + 1) not in border]
    keep = [k for k in order[:2] if sizes[k - 1] >= 0.01 * h * w]
    mask = np.isin(labels, keep)
    mask = ndimage.binary_closing(mask, iterations=max(1, min(h, w) // 32))
    return ndimage.binary_fill_holes(mask).astype(np.uint8)


def estimate_lung_masks(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> uint8 (N, 1, H, W) lung-field estimates (0/1)."""
    import torch

    arr = images.detach().cpu().numpy()
    out = np.stack([estimate_lung_mask(a[0])[None] for a in arr]) if len(arr) else np.zeros_like(arr)
    return torch.from_numpy(out.astype(np.uint8))


def dice(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Dice overlap of binary masks (N, 1, H, W) -> (N,) floats; two empty masks give 1."""
    a = (a > 0).flatten(1).float()
    b = (b > 0).flatten(1).float()
    inter = (a * b).sum(1)
    return (2 * inter + eps) / (a.sum(1) + b.sum(1) + eps)


def perturb_masks(masks: torch.Tensor, seeds: Sequence[int], *, rotate_deg: float = 8.0, scale: float = 0.08,
                  shift: float = 0.05, elastic: float = 0.04) -> torch.Tensor:
    """Seeded affine (rotation, scale, shift) + smooth elastic warp of binary masks.

    uint8 (N, 1, H, W), one seed per mask -> uint8 (N, 1, H, W) 0/1. Mask i depends on
    (masks[i], seeds[i]) only, so a synthetic image's mask is reproducible from its seed.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = masks.shape
    out = []
    for i in range(n):
        g, p = _perturbation_draw(seeds[i], rotate_deg, scale, shift)
        ang = p["rotate_deg"] * np.pi / 180.0
        cos, sin = np.cos(ang) / p["scale"], np.sin(ang) / p["scale"]
        theta = torch.tensor([[cos, -sin, p["shift_x"]], [sin, cos, p["shift_y"]]], dtype=torch.float32)[None]
        grid = F.affine_grid(theta, (1, 1, h, w), align_corners=False)
        # elastic: a coarse random displacement field, upsampled so it is smooth
        coarse = torch.randn((1, 2, 4, 4), generator=g) * elastic
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        m = masks[i : i + 1].float()
        warped = F.grid_sample(m, grid + field, mode="bilinear", padding_mode="zeros", align_corners=False)
        out.append((warped > 0.5).to(torch.uint8))
    return torch.cat(out) if out else masks.new_zeros(masks.shape, dtype=torch.uint8)


def _perturbation_draw(seed: int, rotate_deg: float, scale: float, shift: float):
    """The seeded draws of one perturbation: (the generator, positioned for the elastic field,
    and the affine parameters). One function, so the recorded parameters are the applied ones."""
    import torch

    g = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
    u = torch.rand(5, generator=g) * 2 - 1
    return g, {"rotate_deg": float(u[0]) * rotate_deg, "scale": 1.0 + float(u[1]) * scale,
               "shift_x": float(u[2]) * shift * 2, "shift_y": float(u[3]) * shift * 2}


def perturbation_params(seeds: Sequence[int], *, rotate_deg: float = 8.0, scale: float = 0.08, shift: float = 0.05,
                        elastic: float = 0.04) -> list[dict]:
    """What :func:`perturb_masks` does to mask i, for the record: the seed, rotation (degrees),
    scale, shift (fractions of the half-width, as ``affine_grid`` reads them) and the elastic
    field's amplitude (the field itself is the seed's next 32 normal draws, times ``elastic``)."""
    return [{"seed": int(s), **_perturbation_draw(s, rotate_deg, scale, shift)[1], "elastic": float(elastic)}
            for s in seeds]
