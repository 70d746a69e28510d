"""Test kits for plugin authors: subclass them in pytest to check a plugin's contract."""

from cxrbench.testing.generator_contract import (
    GeneratorContractTests,
    label_probe_auroc,
    make_toy_images,
    make_toy_split,
)

__all__ = ["GeneratorContractTests", "label_probe_auroc", "make_toy_images", "make_toy_split"]
