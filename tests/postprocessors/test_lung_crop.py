"""`lung-crop` on phantom radiographs padded into a loose frame: the thorax fills the image again."""

import torch

from cxrbench.contracts import Condition, SyntheticBatch
from cxrbench.kit.masks import dice, estimate_lung_masks
from cxrbench.plugins.postprocessors.lung_crop import LungCrop


def test_a_loosely_framed_thorax_is_cropped_back_to_its_lungs():
    from cxrbench.datasets import load_dataset
    from cxrbench.registry import get_plugins

    train = load_dataset(get_plugins().load("dataset", "phantom")(None), size=64, progress=False).train
    images, truth = train.images[:8], train.masks[:8]
    # shrink each radiograph to half size inside a dark 64 px frame: a hosted model's loose framing
    small = torch.nn.functional.interpolate(images.float(), size=32, mode="area").round().to(torch.uint8)
    framed = torch.zeros_like(images)
    framed[:, :, 16:48, 16:48] = small
    conds = [Condition(labels=(0.0,), seed=i) for i in range(8)]
    step = LungCrop()
    out = step(SyntheticBatch(framed, conds))
    assert out.images.shape == framed.shape and out.images.dtype == torch.uint8
    assert step.stats["n"] == 8 and step.stats["unchanged"] == 0
    # the lung fields fill the frame again: their area grows ~4x, back near the original's
    area = lambda m: m.float().mean().item()  # noqa: E731
    assert area(estimate_lung_masks(out.images)) > 2.5 * area(estimate_lung_masks(framed))
    assert area(estimate_lung_masks(out.images)) > 0.6 * area(truth)
    assert float(dice(estimate_lung_masks(framed), estimate_lung_masks(out.images)).mean()) < 0.6
