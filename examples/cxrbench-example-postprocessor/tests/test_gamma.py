"""gamma passes cxrbench's post-processor contract kit.

``pytest`` in this folder (``pythonpath = ["src"]`` in pyproject.toml: no install needed), or
``postprocessor_name = "gamma"`` instead of the class once the package is installed.
"""

import torch

from cxrbench.contracts import Condition, SyntheticBatch
from cxrbench.testing import PostprocessorContractTests
from cxrbench_example_postprocessor.plugin import Gamma, GammaOptions


class TestGamma(PostprocessorContractTests):
    postprocessor_class = Gamma
    postprocessor_options = {"gamma": 0.7}
    size = 16
    may_drop = False          # a pixel step: one image out per image in
    batch_independent = True  # each image depends on itself alone
    bad_options = [({"gamma": 0.0}, 16), ({"gamma": -1.0}, 16), ({"gamma": float("nan")}, 16)]


def test_gamma_curve_values():
    """The kit checks the contract, not what the step is for: check the curve itself."""
    images = torch.tensor([0, 64, 128, 255], dtype=torch.uint8).view(4, 1, 1, 1)
    batch = SyntheticBatch(images, [Condition(labels=(0.0,), seed=i) for i in range(4)])
    assert Gamma(GammaOptions(gamma=1.0))(batch).images.flatten().tolist() == [0, 64, 128, 255]
    assert Gamma(GammaOptions(gamma=2.0))(batch).images.flatten().tolist() == [0, 16, 64, 255]
