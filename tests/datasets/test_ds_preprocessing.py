"""preprocess_image / preprocess_mask: geometry of the resize modes, equalization, dtypes."""

import numpy as np
import pytest

from cxrbench.datasets import Preprocessing, preprocess_image, preprocess_mask
from cxrbench.errors import ConfigError
from cxrbench.kit import equalize_hist


def test_pad_keeps_aspect_and_pads_with_zeros():
    img = np.full((50, 100), 200, np.uint8)  # wide: 2:1
    out = preprocess_image(img, 64, Preprocessing(resize="pad", equalize=False))
    assert out.shape == (64, 64) and out.dtype == np.uint8
    rows = np.flatnonzero(out.max(axis=1) > 0)
    cols = np.flatnonzero(out.max(axis=0) > 0)
    assert len(cols) == 64  # the long side fills the square
    assert len(rows) == 32  # the short side keeps the 2:1 aspect
    assert rows[0] == 16 and rows[-1] == 47  # centred
    assert out[0].max() == 0 and out[-1].max() == 0
    assert abs(int(out[32, 32]) - 200) <= 1


def test_pad_tall_image_pads_left_and_right():
    img = np.full((90, 30), 99, np.uint8)
    out = preprocess_image(img, 30, Preprocessing(equalize=False))
    cols = np.flatnonzero(out.max(axis=0) > 0)
    assert len(cols) == 10 and cols[0] == 10


def test_stretch_and_center_crop():
    img = np.zeros((50, 100), np.uint8)
    img[:, :50] = 50
    img[:, 50:] = 250
    st = preprocess_image(img, 32, Preprocessing(resize="stretch", equalize=False))
    assert st.shape == (32, 32) and st.min() >= 40  # no padding anywhere
    cc = preprocess_image(img, 32, Preprocessing(resize="center-crop", equalize=False))
    assert cc.shape == (32, 32)
    # centre crop of a 64x32 resize keeps the middle: half dark, half bright
    assert cc[:, :10].mean() < 100 and cc[:, -10:].mean() > 200


def test_equalization_spreads_the_histogram():
    rng = np.random.default_rng(0)
    img = rng.integers(100, 121, (80, 80)).astype(np.uint8)  # low contrast: 21 levels
    out = preprocess_image(img, 80, Preprocessing(resize="stretch", equalize=True))
    assert out.min() == 0 and out.max() == 255
    assert out.std() > 4 * img.std()
    # roughly uniform: each quarter of the range holds a fair share
    counts = np.histogram(out, bins=4, range=(0, 256))[0] / out.size
    assert counts.min() > 0.1


def test_equalize_hist_matches_cv2_formula_and_keeps_constant_images():
    img = np.array([[0, 0, 10, 10], [20, 20, 20, 30]], np.uint8)
    out = equalize_hist(img)
    # cdf = [2,4,7,8] at levels 0,10,20,30 -> (cdf-2)*255/6
    assert out.tolist() == [[0, 0, 85, 85], [212, 212, 212, 255]]
    const = np.full((5, 5), 77, np.uint8)
    assert (equalize_hist(const) == 77).all()


def test_equalization_ignores_padding():
    img = np.tile(np.linspace(100, 140, 40).astype(np.uint8), (20, 1))
    out = preprocess_image(img, 40, Preprocessing(resize="pad", equalize=True))
    content = out[10:30]
    assert content.max() == 255 and content.min() == 0
    assert out[:10].max() == 0  # padding stays black, not part of the histogram


def test_uint16_and_float_inputs():
    img16 = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    out = preprocess_image(img16, 32, Preprocessing(equalize=False))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() >= 250
    outf = preprocess_image(img16.astype(np.float32) / 7.0, 32, Preprocessing(equalize=True))
    assert outf.dtype == np.uint8 and outf.shape == (32, 32)


def test_rgb_and_upscaling_are_accepted():
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[..., 1] = 90
    out = preprocess_image(rgb, 64, Preprocessing(equalize=False))
    assert out.shape == (64, 64) and abs(int(out[32, 32]) - 53) <= 1  # luma of (0, 90, 0)
    with pytest.raises(ValueError):
        preprocess_image(np.zeros((2, 3, 4, 5), np.uint8), 8)


def test_mask_uses_the_image_geometry():
    mask = np.zeros((50, 100), np.uint8)
    mask[:, 50:] = 1
    m = preprocess_mask(mask, 64, Preprocessing(resize="pad"))
    assert set(np.unique(m).tolist()) == {0, 1}
    assert m[:16].max() == 0 and m[48:].max() == 0
    assert m[32, 40] == 1 and m[32, 20] == 0


def test_preprocessing_options_are_validated():
    with pytest.raises(ConfigError, match="resize"):
        Preprocessing(resize="squash")
    with pytest.raises(ConfigError, match="on_unreadable"):
        Preprocessing(on_unreadable="ignore")
