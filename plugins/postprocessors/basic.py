"""Simple post-processing steps: equalization and border cropping (e.g. a watermark strip)."""

from __future__ import annotations

from dataclasses import dataclass

from cxrbench.contracts import Postprocessor, SyntheticBatch
from cxrbench.errors import ConfigError
from cxrbench.kit import equalize_hist


class Equalize(Postprocessor):
    """Histogram-equalize each image to 256 bins with the dataset loader's own function
    (:func:`cxrbench.kit.equalize_hist`), so synthetic images match the real preprocessing
    (a constant image is left unchanged, as the loader leaves it)."""

    name = "equalize"

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import torch

        images = batch.images.clone()
        for i in range(images.shape[0]):
            img = images[i, 0].cpu().numpy()
            images[i, 0] = torch.from_numpy(equalize_hist(img)).to(images.device)
        return SyntheticBatch(images, batch.conditions)


@dataclass
class CropBorderOptions:
    #: fraction of the side removed at the bottom / right / top / left (a watermark strip)
    bottom: float = 0.0
    right: float = 0.0
    top: float = 0.0
    left: float = 0.0


class CropBorder(Postprocessor):
    """Crop fractions off the borders, then resize back to the original size."""

    name = "crop-border"
    moves_pixels = True  # a segmentation pair would no longer align: refused for that task
    Options = CropBorderOptions

    @classmethod
    def check_options(cls, options, size: int) -> None:
        for side in ("bottom", "right", "top", "left"):
            if not 0 <= getattr(options, side) < 0.5:
                raise ConfigError(f"crop-border: {side}={getattr(options, side)} must be in [0, 0.5)")

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import torch.nn.functional as F

        o = self.options
        self.check_options(o, batch.images.shape[-1])
        n, c, h, w = batch.images.shape
        t, b = int(round(o.top * h)), h - int(round(o.bottom * h))
        l, r = int(round(o.left * w)), w - int(round(o.right * w))
        cropped = batch.images[:, :, t:b, l:r].float()
        resized = F.interpolate(cropped, size=(h, w), mode="bilinear", align_corners=False)
        return SyntheticBatch(resized.round().clamp(0, 255).byte(), batch.conditions)
