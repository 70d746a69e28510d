"""Image, seed and bookkeeping helpers for generators.

Images cross every plugin boundary as ``torch.uint8`` tensors of shape (N, 1, H, W); networks
usually want floats in [-1, 1] at their own resolution. Here:

- :func:`resize_uint8`, :func:`to_model_range`, :func:`from_model_range`: uint8 <-> [-1, 1],
  at the model's resolution and back at the requested size;
- :func:`equalize_hist`: the histogram equalization the dataset loader applies to real
  images (use it to make synthetic images look preprocessed the same way);
- :func:`seed_generator`, :func:`step_generator`, :func:`padded_chunks`: reproducible noise,
  so that image i depends on ``conditions[i]`` only and a resumed fit replays the same steps;
- :func:`data_fingerprint`: a hash of a training split (refuse to resume on other data);
- :func:`count_parameters`, :func:`peak_memory_mb`: numbers for the fit statistics.

torch is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrbench.contracts import Split

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> uint8 (N, 1, size, size) (area when shrinking, bilinear else)."""
    import torch
    import torch.nn.functional as F

    if images.shape[-2:] == (size, size):
        return images.contiguous()
    out = []
    for start in range(0, images.shape[0], 512):  # bounded memory on large splits
        x = images[start : start + 512].float()
        if images.shape[-1] >= size and images.shape[-2] >= size:
            x = F.interpolate(x, size=(size, size), mode="area")
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], size, size))


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float() / 127.5 - 1.0


def from_model_range(x: torch.Tensor, size: int) -> torch.Tensor:
    """float [-1, 1] (N, 1, h, w) -> uint8 (N, 1, size, size), resized when h != size."""
    import torch
    import torch.nn.functional as F

    x = x.float().cpu()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def data_fingerprint(split: Split) -> str:
    """Hash of the training images, labels and metadata (to refuse resuming on other data)."""
    h = hashlib.sha256()
    h.update(split.images.detach().cpu().contiguous().numpy().tobytes())
    h.update(split.labels.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(json.dumps(split.metadata, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def seed_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded from any Python int (negative or >= 2**64 folded in)."""
    import torch

    return torch.Generator().manual_seed(int(seed) % (2**63))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step: the run is reproducible and resumes exactly."""
    return seed_generator(int(seed) * 1_000_003 + int(step) * 7919 + 17)


def padded_chunks(n: int, batch_size: int) -> list[tuple[list[int], int]]:
    """Split range(n) into chunks of exactly ``batch_size`` indices, the last one padded by
    repeating its last index; returns (indices, number of real ones). Every image is then
    computed in a batch of the same shape, which makes kernels pick the same algorithm, so
    image i is bit-identical whatever the rest of the request (checked on CPU)."""
    chunks = []
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        real = len(idx)
        idx += [idx[-1]] * (batch_size - real)
        chunks.append((idx, real))
    return chunks


def equalize_hist(img: np.ndarray) -> np.ndarray:
    """Histogram equalization of a uint8 image over 256 bins (the ``cv2.equalizeHist`` formula).

    ``lut[v] = round((cdf[v] - cdf_min) * 255 / (N - cdf_min))``: the darkest level maps to 0,
    the brightest to 255, levels in between spread by their cumulative frequency. A constant
    image is returned unchanged.
    """
    hist = np.bincount(img.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    total = int(cdf[-1])
    cdf_min = int(cdf[np.flatnonzero(hist)[0]]) if total else 0
    if total == cdf_min:
        return img.copy()
    lut = np.round((cdf - cdf_min) * (255.0 / (total - cdf_min)))
    lut = np.clip(lut, 0, 255).astype(np.uint8)
    return lut[img]


def count_parameters(module: Any, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of a torch module."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only))


def peak_memory_mb(device: str) -> float:
    """CUDA: max allocated by torch; CPU: the process's max resident set size."""
    if str(device).startswith("cuda"):
        import torch

        return float(torch.cuda.max_memory_allocated(torch.device(device))) / 2**20
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss) / (2**20 if sys.platform == "darwin" else 2**10)
