"""The dataset loaders' own resize for plugins: fit any decoded image to (size, size) uint8.

:func:`fit_image` is :func:`cxrbench.preprocessing.preprocess_image` (what every real image goes
through: luma grayscale for colour input, antialiased Lanczos resize, ``pad`` / ``stretch`` /
``center-crop``, optional histogram equalization), so a post-processor or a hosted-model
generator makes synthetic images the way the loaders make real ones, without a copy of that code.
"""

from __future__ import annotations

from typing import Any

#: the loaders' resize modes
RESIZE_MODES = ("pad", "stretch", "center-crop")


def fit_image(arr: Any, size: int, *, resize: str = "pad", equalize: bool = False):
    """A 2-D (or H x W x 3 colour) uint8 / uint16 / float array -> (size, size) uint8 numpy array."""
    # imported here: cxrbench.preprocessing itself imports the kit
    from cxrbench.preprocessing import Preprocessing, preprocess_image

    return preprocess_image(arr, int(size), Preprocessing(resize=resize, equalize=bool(equalize)))
