"""`noise`: the floor. Smooth random noise that ignores the condition.

A classifier trained on it alone should score AUROC about 0.5 on real test sets; anything a
learned generator does must beat this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cxrbench.contracts import Condition, Generator, GeneratorCapabilities, Split


@dataclass
class NoiseOptions:
    #: blur radius in pixels at 64 px (scaled with size); 0 = white noise
    smoothness: float = 2.0


class NoiseGenerator(Generator):
    """Reference floor: seeded smooth noise, with the real images' mean and spread."""

    name = "noise"
    version = "1"
    # mask=True: it is asked with a mask like a mask-conditioned generator and ignores it, so
    # (noise image, real mask) pairs are the segmentation task's floor
    capabilities = GeneratorCapabilities(labels=False, needs_training=False, mask=True)
    Options = NoiseOptions

    def fit(self, train: Split, *, progress: bool = True) -> dict:
        images = train.images.float()
        # Matching global intensity statistics keeps the floor honest: the classifier cannot
        # win by detecting "synthetic = different brightness" on the test set.
        self._mean = float(images.mean())
        self._std = float(images.std())
        return {"mean": self._mean, "std": self._std}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"mean": self._mean, "std": self._std}))

    def load(self, directory: Path) -> None:
        state = json.loads((Path(directory) / "config.json").read_text())
        self._mean, self._std = float(state["mean"]), float(state["std"])

    def generate(self, conditions: Sequence[Condition]):
        import torch
        import torch.nn.functional as F

        mean = getattr(self, "_mean", 127.5)
        std = getattr(self, "_std", 64.0)
        out = torch.empty((len(conditions), 1, self.size, self.size), dtype=torch.uint8)
        sigma = self.options.smoothness * self.size / 64
        kernel = None
        if sigma > 0:
            radius = max(1, int(3 * sigma))
            x = torch.arange(-radius, radius + 1, dtype=torch.float32)
            g = torch.exp(-(x**2) / (2 * sigma**2))
            g = g / g.sum()
            kernel = (g[:, None] * g[None, :])[None, None]
        for i, cond in enumerate(conditions):
            gen = torch.Generator().manual_seed(int(cond.seed))
            z = torch.randn((1, 1, self.size, self.size), generator=gen)
            if kernel is not None:
                z = F.conv2d(z, kernel, padding=kernel.shape[-1] // 2)
                z = (z - z.mean()) / (z.std() + 1e-8)
            out[i] = (z[0] * std + mean).round().clamp(0, 255).to(torch.uint8)
        return out

    def conditioning_masks(self, conditions: Sequence[Condition], size: int | None = None):
        """The masks it was asked to draw (and ignored): uint8 (N, 1, size, size); None when the
        conditions carry none (a dataset without masks)."""
        if any(c.mask is None for c in conditions):
            return None
        return _condition_masks(conditions, size or self.size)


def _condition_masks(conditions, size: int):
    import torch
    import torch.nn.functional as F

    masks = torch.stack([torch.as_tensor(c.mask).reshape(1, *torch.as_tensor(c.mask).shape[-2:])
                         for c in conditions]) if conditions else torch.zeros((0, 1, size, size))
    if masks.shape[-1] != size:
        masks = F.interpolate(masks.float(), size=(size, size), mode="nearest")
    return (masks > 0).to(torch.uint8)
