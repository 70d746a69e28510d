"""`crop-watermark` and `resize-pad` (plugins/postprocessors/hosted.py): the contract kit, and
what they do on images with a frame, a corner mark and padding."""

import numpy as np
import pytest
import torch

from cxrbench.contracts import Condition, SyntheticBatch
from cxrbench.kit import fit_image
from cxrbench.plugins.postprocessors.hosted import CropWatermark, CropWatermarkOptions, ResizePad, ResizePadOptions
from cxrbench.testing import PostprocessorContractTests


class TestCropWatermarkDetect(PostprocessorContractTests):
    postprocessor_name = "crop-watermark"
    size = 16
    bad_options = [({"mode": "guess"}, 16), ({"bottom": 0.5}, 16), ({"fit": "zoom"}, 16), ({}, 4)]


class TestCropWatermarkFixed(PostprocessorContractTests):
    postprocessor_name = "crop-watermark"
    postprocessor_options = {"mode": "fixed", "bottom": 0.1, "right": 0.1}
    size = 16


class TestResizePad(PostprocessorContractTests):
    postprocessor_name = "resize-pad"
    postprocessor_options = {"background": 5, "equalize": True}
    size = 16
    bad_options = [({"background": 255}, 16)]


def radiograph(size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size * 2 - 1
    lungs = (np.abs(np.abs(xx) - 0.45) < 0.28) & (np.abs(yy) < 0.6)
    return np.clip(150 - 90 * lungs + rng.normal(0, 10, (size, size)), 0, 200).astype(np.uint8)


def batch(*imgs):
    return SyntheticBatch(torch.from_numpy(np.stack(imgs))[:, None], [Condition(labels=(0.0,), seed=i) for i in range(len(imgs))])


def test_detects_frame_and_corner_mark_and_records_the_crop():
    clean = radiograph()
    marked = clean.copy()
    marked[:3, :] = marked[-3:, :] = marked[:, :3] = marked[:, -3:] = 240  # a frame
    marked[52:58, 54:60] = 255  # a mark in the bottom-right corner, inside the frame
    step = CropWatermark(CropWatermarkOptions())
    out = step(batch(clean, marked))
    top, bottom, left, right = step.stats["crops"][1]
    assert top == pytest.approx(3 / 64, abs=1e-3) and left == pytest.approx(3 / 64, abs=1e-3)
    assert min(bottom, right) >= 3 / 64 and max(bottom, right) >= 10 / 64  # frame + the mark's strip
    assert step.stats["crops"][0] == [0, 0, 0, 0] and step.stats["corner_marks"] == 1 and step.stats["cropped"] == 1
    assert torch.equal(out.images[0], batch(clean).images[0])  # nothing found: untouched
    assert int(out.images[1].max()) < 240  # frame and mark gone


def test_fixed_fractions_and_fit_by_the_loaders_code():
    img = radiograph()
    step = CropWatermark(CropWatermarkOptions(mode="fixed", bottom=0.25))
    out = step(batch(img))
    assert step.stats["crops"] == [[0.0, 0.25, 0.0, 0.0]]
    assert np.array_equal(out.images[0, 0].numpy(), fit_image(img[:48], 64, resize="pad"))


def test_resize_pad_refits_the_content_box_and_keeps_full_images():
    img = radiograph(seed=1)
    padded = np.zeros_like(img)
    padded[16:48, :] = fit_image(img, 64, resize="stretch")[::2]  # letterboxed: content 32 x 64
    step = ResizePad(ResizePadOptions())
    out = step(batch(img, padded))
    assert torch.equal(out.images[0], batch(img).images[0])  # a full image is left as it is
    assert step.stats["content_boxes"][1] == [16, 48, 0, 64]
    assert np.array_equal(out.images[1, 0].numpy(), fit_image(padded[16:48], 64, resize="pad"))
