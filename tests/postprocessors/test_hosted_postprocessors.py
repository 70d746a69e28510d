"""`crop-watermark`, `grayscale` and `resize-pad` (plugins/postprocessors/hosted.py): the contract
kit, and what they do on images with a frame, a corner mark, padding, a tint or a negative."""

import numpy as np
import pytest
import torch

from cxrbench.contracts import Condition, SyntheticBatch
from cxrbench.kit import fit_image
from cxrbench.plugins.postprocessors.hosted import (
    CropWatermark, CropWatermarkOptions, Grayscale, GrayscaleOptions, ResizePad, ResizePadOptions,
)
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


class TestGrayscale(PostprocessorContractTests):
    postprocessor_name = "grayscale"
    postprocessor_options = {"low_percentile": 1.0, "high_percentile": 99.0}
    size = 16
    bad_options = [({"low_percentile": 50, "high_percentile": 50}, 16), ({"high_percentile": 101}, 16)]


def phantoms(n=6, size=64):
    """Phantom radiographs rendered by the phantom dataset (dark air, bright mediastinum)."""
    from cxrbench.plugins.datasets.phantom import PhantomDataset, PhantomOptions

    ds = PhantomDataset(None, PhantomOptions(n_train=max(n, 2), n_val=2, n_test=2, render_size=size))
    return [ds.read_image(r) for r in ds.records() if r.split == "train"][:n]


def test_grayscale_turns_a_tinted_rendering_and_a_negative_back_into_the_radiograph():
    originals = phantoms()
    # a tint after the luma: the same picture squeezed into grey levels 90..170; a negative: inverted
    tinted = [np.rint(90 + img.astype(np.float32) * (80 / 255)).astype(np.uint8) for img in originals]
    negative = [255 - img for img in originals]
    step = Grayscale(GrayscaleOptions(low_percentile=0.0, high_percentile=100.0))
    out = step(batch(*originals, *tinted, *negative)).images[:, 0].numpy().astype(int)
    n = len(originals)
    assert step.stats["inverted"] == list(range(2 * n, 3 * n))  # only the negatives, all of them
    for i, img in enumerate(originals):
        ref = step(batch(img)).images[0, 0].numpy().astype(int)  # the original, stretched alone
        assert out[i].min() == 0 and out[i].max() == 255
        assert np.abs(out[n + i] - ref).max() <= 4  # undone up to the tint's 80-level quantisation
        assert np.abs(out[2 * n + i] - ref).max() <= 1  # the negative is the radiograph again
        assert np.corrcoef(out[n + i].ravel(), img.ravel())[0, 1] > 0.999


def test_grayscale_leaves_polarity_alone_when_told_and_a_constant_image_unchanged():
    img = phantoms(n=1)[0]
    kept = Grayscale(GrayscaleOptions(fix_polarity=False))
    out = kept(batch(255 - img, np.full((64, 64), 77, np.uint8))).images[:, 0].numpy()
    assert kept.stats["inverted"] == []
    assert np.corrcoef(out[0].ravel().astype(float), (255 - img).ravel().astype(float))[0, 1] > 0.99
    assert (out[1] == 77).all()


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
