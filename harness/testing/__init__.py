"""Test kits for plugin authors: subclass them in pytest to check a plugin's contract."""

from cxrbench.testing.generator_contract import (
    GeneratorContractTests,
    label_probe_auroc,
    make_toy_images,
    make_toy_split,
)
from cxrbench.testing.plugins import generator_plugin, plugins_with_generator

__all__ = [
    "GeneratorContractTests",
    "generator_plugin",
    "label_probe_auroc",
    "make_toy_images",
    "make_toy_split",
    "plugins_with_generator",
]
