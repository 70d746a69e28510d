"""class-mean passes cxrbench's generator contract kit.

Run it like any pytest suite: ``pytest`` in this folder (``pythonpath = ["src"]`` in
pyproject.toml puts the package on the path, so no install is needed), or after
``pip install -e .``. Failures name the actual value (dtype, shape, AUROC...): cxrbench ships
a pytest plugin that makes its kits' messages readable.
"""

from cxrbench.testing import GeneratorContractTests
from cxrbench_example_generator.generator import ClassMeanGenerator


class TestClassMean(GeneratorContractTests):
    # The class itself: no install needed. Once installed, `generator_name = "class-mean"` tests
    # the registered plugin instead (found through the entry point, as `cxrbench run` finds it).
    generator_class = ClassMeanGenerator
    generator_options = {"noise_scale": 0.5}
    size = 16

