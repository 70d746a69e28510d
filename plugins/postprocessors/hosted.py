"""Post-processors for images from hosted models: `crop-watermark`, `grayscale` and `resize-pad`.

Hosted models return RGB images with a frame or a corner mark (a watermark); the Nano Banana
study found cropping it decisive. Both steps work image by image (batch-independent) and fit the
result back to size x size with the dataset loaders' own resize (:func:`cxrbench.kit.fit_image`),
so synthetic images are shaped exactly like real ones.

Images cross every boundary as uint8 (N, 1, H, W), so the RGB -> gray channel collapse happens
when the `api` generator decodes a reply (ITU-R 601 luma, the loaders' conversion). What is left
for the `grayscale` step is what that collapse cannot fix: a tinted rendering (sepia, blue) keeps
a compressed range of grey levels, and a "negative" rendering has bright air. `grayscale` stretches
each image to the full range and turns negatives back into radiographs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxrbench.contracts import Postprocessor, SyntheticBatch
from cxrbench.errors import ConfigError
from cxrbench.kit import fit_image
from cxrbench.plugins.postprocessors.basic import CropBorderOptions

MODES = ("detect", "fixed")
FIT_MODES = ("pad", "stretch", "center-crop")


#: How ``detect`` mode recognises a watermark: a frame row / column is uniform (std in grey
#: levels at most ``frame_std``) and differs from the image's median by ``frame_contrast``; marks
#: are searched in corner boxes (``corner`` of the side) and are ``mark_contrast`` brighter than
#: the image's 99th percentile outside them. Fixed here, measured on the fake server's frames.
DETECTION = {"frame_std": 6.0, "frame_contrast": 25.0, "corner": 0.15, "mark_contrast": 20.0}


@dataclass
class CropWatermarkOptions(CropBorderOptions):
    """``top`` / ``bottom`` / ``left`` / ``right``: fractions always removed (as in ``crop-border``)."""

    #: ``detect``: find a uniform frame and bright corner marks per image; ``fixed``: the fractions
    mode: str = "detect"
    #: detect: the widest frame removed per side, as a fraction of the side
    max_frame: float = 0.15
    #: how the crop is fitted back to size x size (the loaders' modes)
    fit: str = "pad"


class CropWatermark(Postprocessor):
    """Crop a frame and corner marks off each image (fixed fractions or detected), then fit it
    back to size; the crop of every image (fractions top, bottom, left, right) is in ``stats``."""

    name = "crop-watermark"
    moves_pixels = True  # a segmentation pair would no longer align: refused for that task
    Options = CropWatermarkOptions

    @classmethod
    def check_options(cls, options, size: int) -> None:
        o = options
        if o.mode not in MODES:
            raise ConfigError(f"crop-watermark: mode {o.mode!r} is not one of {', '.join(MODES)}")
        if o.fit not in FIT_MODES:
            raise ConfigError(f"crop-watermark: fit {o.fit!r} is not one of {', '.join(FIT_MODES)}")
        for side in ("top", "bottom", "left", "right"):
            if not 0 <= getattr(o, side) < 0.5:
                raise ConfigError(f"crop-watermark: {side}={getattr(o, side)} must be in [0, 0.5)")
        if not 0 <= o.max_frame < 0.5:
            raise ConfigError(f"crop-watermark: max_frame must be in [0, 0.5), got {o.max_frame!r}")
        if size < 8:
            raise ConfigError(f"crop-watermark: images of {size} px are too small to crop (at least 8)")

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import torch

        images = batch.images.clone()
        size = int(images.shape[-1])
        crops, marks = [], 0
        for i in range(images.shape[0]):
            img = images[i, 0].cpu().numpy()
            box, found = self.crop_box(img)
            marks += found
            t, b, l, r = box
            h, w = img.shape
            crops.append([round(t / h, 4), round((h - b) / h, 4), round(l / w, 4), round((w - r) / w, 4)])
            if box != (0, h, 0, w):
                images[i, 0] = torch.from_numpy(fit_image(img[t:b, l:r], size, resize=self.options.fit))
        self.stats = {"n": len(crops), "cropped": sum(1 for c in crops if any(c)), "corner_marks": marks,
                      "crop_fractions": "top, bottom, left, right", "crops": crops}
        return SyntheticBatch(images, list(batch.conditions))

    def crop_box(self, img) -> tuple[tuple[int, int, int, int], int]:
        """(top, bottom, left, right) pixel bounds of what is kept, and the number of corner marks."""
        import numpy as np

        o = self.options
        h, w = img.shape
        t, b = int(round(o.top * h)), h - int(round(o.bottom * h))
        l, r = int(round(o.left * w)), w - int(round(o.right * w))
        if o.mode == "fixed":
            return (t, b, l, r), 0
        x = img.astype(np.float32)
        med = float(np.median(x))

        def frame(line) -> bool:
            return float(line.std()) <= DETECTION["frame_std"] and abs(float(line.mean()) - med) >= DETECTION["frame_contrast"]

        lim_h, lim_w = int(o.max_frame * h), int(o.max_frame * w)
        while t < lim_h and frame(x[t, l:r]):
            t += 1
        while h - b < lim_h and frame(x[b - 1, l:r]):
            b -= 1
        while l < lim_w and frame(x[t:b, l]):
            l += 1
        while w - r < lim_w and frame(x[t:b, r - 1]):
            r -= 1
        # corner marks: pixels in a corner box far brighter than anything outside the boxes
        found = 0
        c = max(2, int(round(DETECTION["corner"] * min(b - t, r - l))))
        inner = x[t:b, l:r].copy()
        ih, iw = inner.shape
        if ih > 2 * c and iw > 2 * c:
            outside = np.ones_like(inner, dtype=bool)
            outside[:c, :c] = outside[:c, -c:] = outside[-c:, :c] = outside[-c:, -c:] = False
            level = float(np.percentile(inner[outside], 99)) + DETECTION["mark_contrast"]
            for top_side in (True, False):
                for left_side in (True, False):
                    rows = slice(0, c) if top_side else slice(ih - c, ih)
                    cols = slice(0, c) if left_side else slice(iw - c, iw)
                    ys, xs = np.nonzero(inner[rows, cols] > level)
                    if len(ys) < 2:
                        continue
                    found += 1
                    # remove the thinner strip that holds the whole mark
                    depth_y = (ys.max() + 2) if top_side else (c - ys.min() + 1)
                    depth_x = (xs.max() + 2) if left_side else (c - xs.min() + 1)
                    if depth_y <= depth_x:
                        t, b = (t + depth_y, b) if top_side else (t, b - depth_y)
                    else:
                        l, r = (l + depth_x, r) if left_side else (l, r - depth_x)
        return (int(t), int(b), int(l), int(r)), found


#: ``grayscale``'s polarity test: a radiograph's border ring (air, shoulders) is darker than its
#: centre (mediastinum). Measured on 400 real Kermany train images at 64 px: border minus centre
#: mean -58 grey levels (median), -8.5 at most, positive for none; a negative shows the opposite.
POLARITY = {"border": 0.08, "centre": 0.5}


@dataclass
class GrayscaleOptions:
    #: grey levels below / above these percentiles of each image are clipped and the rest
    #: stretched linearly to 0..255 (a tinted, washed-out rendering gets a radiograph's range)
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    #: invert an image whose border ring is brighter than its centre (see POLARITY)
    fix_polarity: bool = True


class Grayscale(Postprocessor):
    """Per-image grey-level normalisation of hosted renderings: negatives inverted (optional),
    then a percentile window stretched to 0..255. A constant image is left unchanged. The window
    of every image and which ones were inverted are in ``stats``."""

    name = "grayscale"
    Options = GrayscaleOptions

    @classmethod
    def check_options(cls, options, size: int) -> None:
        lo, hi = options.low_percentile, options.high_percentile
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"grayscale: need 0 <= low_percentile < high_percentile <= 100, got {lo} and {hi}")

    @staticmethod
    def is_negative(img) -> bool:
        """True when the border ring is brighter on average than the central box."""
        import numpy as np

        h, w = img.shape
        b = max(1, int(round(POLARITY["border"] * min(h, w))))
        ring = np.ones((h, w), dtype=bool)
        ring[b:h - b, b:w - b] = False
        ch, cw = int(h * (1 - POLARITY["centre"]) / 2), int(w * (1 - POLARITY["centre"]) / 2)
        centre = img[ch:h - ch, cw:w - cw]
        return float(img[ring].mean()) > float(centre.mean())

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import numpy as np
        import torch

        o = self.options
        images = batch.images.clone()
        windows, inverted = [], []
        for i in range(images.shape[0]):
            img = images[i, 0].cpu().numpy().astype(np.float32)
            if o.fix_polarity and self.is_negative(img):
                img = 255.0 - img
                inverted.append(i)
            lo, hi = (float(v) for v in np.percentile(img, [o.low_percentile, o.high_percentile]))
            windows.append([round(lo, 2), round(hi, 2)])
            if hi > lo:  # a constant image has no range to stretch
                img = (img - lo) * (255.0 / (hi - lo))
            images[i, 0] = torch.from_numpy(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        self.stats = {"n": len(windows), "inverted": inverted, "windows": windows,
                      "window": "grey levels at low_percentile, high_percentile before stretching"}
        return SyntheticBatch(images, list(batch.conditions))


@dataclass
class ResizePadOptions:
    #: pixels at or below this grey level count as background (earlier padding, letterbox bars)
    background: int = 0
    #: histogram-equalize the content before padding, as the loaders do (`preprocessing.equalize`)
    equalize: bool = False


class ResizePad(Postprocessor):
    """Aspect-preserving fit, as the dataset loaders do it (``preprocessing.resize: pad``): the
    image's content box (rows / columns with any pixel above ``background``) is resized so its
    long side is the size, then zero-padded to a centred square, by the loaders' own code."""

    name = "resize-pad"
    moves_pixels = True  # a segmentation pair would no longer align: refused for that task
    Options = ResizePadOptions

    @classmethod
    def check_options(cls, options, size: int) -> None:
        if not 0 <= options.background < 255:
            raise ConfigError(f"resize-pad: background={options.background} must be in [0, 255)")

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import numpy as np
        import torch

        images = batch.images.clone()
        size = int(images.shape[-1])
        boxes = []
        for i in range(images.shape[0]):
            img = images[i, 0].cpu().numpy()
            rows = np.nonzero((img > self.options.background).any(axis=1))[0]
            cols = np.nonzero((img > self.options.background).any(axis=0))[0]
            if len(rows) == 0:  # nothing but background: nothing to fit
                boxes.append(None)
                continue
            t, b, l, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            boxes.append([t, b, l, r])
            images[i, 0] = torch.from_numpy(fit_image(img[t:b, l:r], size, resize="pad",
                                                      equalize=self.options.equalize))
        self.stats = {"n": len(boxes), "content_boxes": boxes, "box": "top, bottom, left, right (px)"}
        return SyntheticBatch(images, list(batch.conditions))
