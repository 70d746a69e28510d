"""`lung-crop`: crop each image to its lung fields (plus a margin), then fit it back to size.

Hosted models frame a chest X-ray loosely (shoulders, neck, empty border); a classifier trained
on real radiographs sees the thorax filling the frame. The lung fields are found by the kit's
classical estimate (:func:`cxrbench.kit.masks.estimate_lung_mask`, Dice 0.90 on the phantom's
true masks); their bounding box, widened by ``margin`` of its size on every side, is cropped
and fitted back aspect-preserving by the loaders' own resize (:func:`cxrbench.kit.fit_image`).
An image whose estimate is empty or covers less than ``min_area`` is left unchanged (counted).
"""

from __future__ import annotations

from dataclasses import dataclass

from cxrbench.contracts import Postprocessor, SyntheticBatch
from cxrbench.errors import ConfigError
from cxrbench.kit import fit_image
from cxrbench.kit.masks import estimate_lung_mask


@dataclass
class LungCropOptions:
    #: the lung box is widened by this fraction of its height / width on every side
    margin: float = 0.1
    #: below this fraction of the image, an estimate is not trusted: the image is left as is
    min_area: float = 0.02


class LungCrop(Postprocessor):
    """Crop to the estimated lung fields (+ margin) and fit back, image by image."""

    Options = LungCropOptions
    name = "lung-crop"
    moves_pixels = True  # a segmentation pair would no longer align: refused for that task
    #: the range each option must lie in (both ends allowed)
    RANGES = {"margin": (0.0, 1.0), "min_area": (0.0, 0.99)}

    @classmethod
    def check_options(cls, options, size: int) -> None:
        bad = {k: getattr(options, k) for k, (low, high) in cls.RANGES.items() if not low <= getattr(options, k) <= high}
        if bad:
            raise ConfigError(f"lung-crop: {bad} out of range; allowed: {cls.RANGES}")

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import numpy as np
        import torch

        images = batch.images.clone()
        size, boxes, unchanged = int(images.shape[-1]), [], 0
        for i in range(images.shape[0]):
            img = images[i, 0].cpu().numpy()
            mask = estimate_lung_mask(img)
            if mask.mean() < self.options.min_area:
                boxes.append(None)  # no trustworthy lung fields: unchanged
                unchanged += 1
                continue
            rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
            t, b, l, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            dy, dx = int(round((b - t) * self.options.margin)), int(round((r - l) * self.options.margin))
            t, b, l, r = max(0, t - dy), min(img.shape[0], b + dy), max(0, l - dx), min(img.shape[1], r + dx)
            boxes.append([t, b, l, r])
            images[i, 0] = torch.from_numpy(fit_image(img[t:b, l:r], size, resize="pad"))
        self.stats = {"n": len(boxes), "unchanged": unchanged, "lung_boxes": boxes, "box": "top, bottom, left, right (px)"}
        return SyntheticBatch(images, list(batch.conditions))
