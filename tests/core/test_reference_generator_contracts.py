"""The reference generators and the example plugin pass the same contract kit as learned ones."""

import sys
from pathlib import Path

from cxrbench.testing.generator_contract import GeneratorContractTests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "cxrbench-example-generator" / "src"))
from cxrbench_example_generator.generator import ClassMeanGenerator  # noqa: E402


class TestRealGenerator(GeneratorContractTests):
    generator_name = "real"
    size = 16


class TestNoiseGenerator(GeneratorContractTests):
    generator_name = "noise"
    size = 16


class TestExampleClassMeanGenerator(GeneratorContractTests):
    generator_class = ClassMeanGenerator
    size = 16
