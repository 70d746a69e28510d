"""How a decoded real image becomes the canonical (size, size) uint8 image of the benchmark.

The dataset loader (:mod:`cxrbench.datasets`) calls :func:`preprocess_image` (and
:func:`preprocess_mask` for segmentation masks) on every decoded image, identically for every
dataset, with the :class:`Preprocessing` settings of the spec: resize mode (pad, stretch or
centre crop, antialiased Lanczos), mapping to uint8, histogram equalization of the image
content (:func:`cxrbench.kit.equalize_hist`, also used by the ``equalize`` post-processor)
and what to do with unreadable images. Any change to these pixels (equalize_hist included)
must bump ``cxrbench.datasets.CACHE_FORMAT``, or stale decoded caches would be reused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrbench.errors import ConfigError
from cxrbench.kit.images import equalize_hist

RESIZE_MODES = ("pad", "stretch", "center-crop")
UNREADABLE_MODES = ("fail", "skip")


@dataclass
class Preprocessing:
    """How decoded images become the canonical (size, size) uint8 image (Khosravi et al. defaults).

    :param resize: ``"pad"``: aspect-preserving resize of the long side to ``size``, then zero
        padding to a square (centred); ``"stretch"``: resize both sides to ``size`` (distorts);
        ``"center-crop"``: aspect-preserving resize of the short side, then a centred crop.
    :param equalize: histogram equalization to 256 bins (as ``cv2.equalizeHist``), applied to
        the image content before padding so the padding does not count in the histogram.
    :param on_unreadable: ``"fail"`` (default): an image that cannot be read or decoded stops
        the load with a :class:`DatasetError` naming it; ``"skip"``: such images are dropped,
        and their number and paths are recorded in ``LoadedDataset.info["skipped"]``.
    :param min_side: the smallest side (px) of a dataset's source image: a smaller one (a 1x1
        placeholder, a thumbnail) is unreadable - an error naming the file, or skipped and counted
        with ``on_unreadable: skip`` - instead of being upscaled into a made-up image. 8 by
        default (PneumoniaMNIST's 28 px images pass); raise it for datasets of full-size films.
    """

    resize: str = "pad"
    equalize: bool = True
    on_unreadable: str = "fail"
    min_side: int = 8

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ConfigError(
                f"preprocessing.resize must be one of {', '.join(RESIZE_MODES)}, not {self.resize!r}"
            )
        if self.on_unreadable not in UNREADABLE_MODES:
            raise ConfigError(
                "preprocessing.on_unreadable must be one of "
                f"{', '.join(UNREADABLE_MODES)}, not {self.on_unreadable!r}"
            )
        if not isinstance(self.equalize, bool):
            raise ConfigError(f"preprocessing.equalize must be true or false, not {self.equalize!r}")
        if isinstance(self.min_side, bool) or not isinstance(self.min_side, int) or self.min_side < 1:
            raise ConfigError(f"preprocessing.min_side must be a positive integer (px), not {self.min_side!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _as_2d(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        else:  # colour: ITU-R 601 luma, keeping an integer dtype
            luma = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            arr = np.round(luma).astype(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else luma
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"empty image of shape {arr.shape}")
    return arr


def _geometry(h: int, w: int, size: int, mode: str) -> tuple[tuple[int, int], tuple[int, int, int, int] | None, tuple[int, int] | None]:
    """(resized (w, h), crop box or None, paste offset or None) for one resize mode."""
    if mode == "stretch":
        return (size, size), None, None
    if mode == "pad":
        scale = size / max(h, w)
        nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
        return (nw, nh), None, ((size - nw) // 2, (size - nh) // 2)
    # center-crop
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (nw - size) // 2, (nh - size) // 2
    return (nw, nh), (left, top, left + size, top + size), None


def _resize(arr: np.ndarray, wh: tuple[int, int], *, mask: bool = False) -> np.ndarray:
    """High-quality (antialiased Lanczos) resize; float32 out. Masks: area-average then 0/1."""
    from PIL import Image

    h, w = arr.shape
    if (w, h) == wh:
        out = arr.astype(np.float32)
    elif arr.dtype == np.uint8 and not mask:
        out = np.asarray(Image.fromarray(arr, "L").resize(wh, Image.Resampling.LANCZOS), np.float32)
    else:
        src = arr.astype(np.float32)
        resample = Image.Resampling.BOX if mask else Image.Resampling.LANCZOS
        if mask and (wh[0] > w or wh[1] > h):
            resample = Image.Resampling.BILINEAR
        out = np.asarray(Image.fromarray(src, "F").resize(wh, resample), np.float32)
        if not mask:  # Lanczos rings: keep the input's range
            out = np.clip(out, float(src.min()), float(src.max()))
    return out


def _to_uint8(resized: np.ndarray, src_dtype: np.dtype) -> np.ndarray:
    if src_dtype == np.uint8:
        return np.clip(np.round(resized), 0, 255).astype(np.uint8)
    lo, hi = float(resized.min()), float(resized.max())
    if hi <= lo:
        return np.zeros(resized.shape, np.uint8)
    return np.clip(np.round((resized - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def check_min_side(arr: np.ndarray, prep: Preprocessing) -> None:
    """A source image smaller than ``prep.min_side`` on a side is refused (ValueError): upscaled,
    it would become a made-up image."""
    h, w = _as_2d(arr).shape
    if min(h, w) < prep.min_side:
        raise ValueError(f"{w}x{h} px is below the minimum of {prep.min_side} px per side (preprocessing "
                         "min_side); it would be upscaled into a made-up image")


def preprocess_image(arr: np.ndarray, size: int, prep: Preprocessing | None = None) -> np.ndarray:
    """A decoded 2-D image (uint8, uint16 or float, any size) -> (size, size) uint8.

    Steps: resize (``prep.resize``, antialiased Lanczos), map to uint8 (uint8 input kept as is,
    other types min-max scaled), histogram-equalize the image content (``prep.equalize``), then
    zero-pad to a square (``"pad"``, centred).
    """
    prep = prep or Preprocessing()
    size = int(size)
    arr = _as_2d(arr)
    src_dtype = arr.dtype
    if src_dtype != np.uint8 and not np.issubdtype(src_dtype, np.number):
        raise ValueError(f"unsupported image dtype {src_dtype}")
    if src_dtype == np.bool_:
        arr, src_dtype = arr.astype(np.uint8) * 255, np.dtype(np.uint8)
    h, w = arr.shape
    wh, crop, offset = _geometry(h, w, size, prep.resize)
    resized = _resize(arr, wh)
    if crop is not None:
        left, top, right, bottom = crop
        resized = resized[top:bottom, left:right]
    img = _to_uint8(resized, src_dtype)
    if prep.equalize:
        img = equalize_hist(img)
    if offset is not None:
        out = np.zeros((size, size), np.uint8)
        x, y = offset
        out[y : y + img.shape[0], x : x + img.shape[1]] = img
        img = out
    return img


def preprocess_mask(mask: np.ndarray, size: int, prep: Preprocessing | None = None) -> np.ndarray:
    """A 2-D mask (nonzero = region) -> (size, size) uint8 0/1, same geometry as the image."""
    prep = prep or Preprocessing()
    m = (_as_2d(mask) != 0).astype(np.float32)
    h, w = m.shape
    wh, crop, offset = _geometry(h, w, int(size), prep.resize)
    resized = _resize(m, wh, mask=True)
    if crop is not None:
        left, top, right, bottom = crop
        resized = resized[top:bottom, left:right]
    out_small = (resized >= 0.5).astype(np.uint8)
    if offset is None:
        return out_small
    out = np.zeros((size, size), np.uint8)
    x, y = offset
    out[y : y + out_small.shape[0], x : x + out_small.shape[1]] = out_small
    return out
