"""The `equalize` post-processor and the dataset loader equalize exactly alike."""

import numpy as np
import pytest
import torch

from cxrbench.contracts import Condition, SyntheticBatch
from cxrbench.datasets import Preprocessing, preprocess_image
from cxrbench.plugins.postprocessors.basic import Equalize

SIZE = 24


def _images():
    rng = np.random.default_rng(0)
    return {
        "constant": np.full((SIZE, SIZE), 77, np.uint8),
        "black": np.zeros((SIZE, SIZE), np.uint8),
        "random": rng.integers(0, 256, (SIZE, SIZE)).astype(np.uint8),
        "low-contrast": rng.integers(100, 121, (SIZE, SIZE)).astype(np.uint8),
    }


@pytest.mark.parametrize("kind", list(_images()))
def test_postprocessor_matches_loader(kind):
    img = _images()[kind]
    # the loader at the image's own size: no resize, no padding, only equalization
    loaded = preprocess_image(img, SIZE, Preprocessing(resize="stretch", equalize=True))
    batch = SyntheticBatch(torch.from_numpy(img.copy())[None, None], [Condition(labels=(0.0,), seed=0)])
    post = Equalize()(batch).images[0, 0].numpy()
    assert post.dtype == np.uint8 and loaded.dtype == np.uint8
    assert np.array_equal(post, loaded)
    if kind in ("constant", "black"):
        assert np.array_equal(post, img)  # a constant image is left unchanged by both
    else:
        assert post.min() == 0 and post.max() == 255


def test_postprocessor_equalizes_each_image_on_its_own():
    imgs = _images()
    stack = torch.from_numpy(np.stack([imgs["random"], imgs["constant"]]))[:, None]
    conds = [Condition(labels=(0.0,), seed=i) for i in range(2)]
    out = Equalize()(SyntheticBatch(stack, conds)).images
    assert out.shape == stack.shape and out.dtype == torch.uint8
    assert (out[1] == 77).all()
    alone = Equalize()(SyntheticBatch(stack[:1].clone(), conds[:1])).images
    assert torch.equal(out[:1], alone)
    assert torch.equal(stack[1, 0], torch.from_numpy(imgs["constant"]))  # input untouched
