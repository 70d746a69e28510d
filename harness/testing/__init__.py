"""Contract kits for plugin authors: subclass them in pytest to check a plugin's contract.

One kit per plugin kind (``GeneratorContractTests``, ``PostprocessorContractTests``,
``ClassifierContractTests``, ``DatasetContractTests``, ``SegmenterContractTests``). Each check is also a plain function
(``CHECKS`` in each kit module) that ``cxrbench check NAME`` and the pre-flight of ``cxrbench
run`` use. Importing this package does not import torch; pytest is only needed to run the
classes as tests. Installed with cxrbench, the pytest plugin ``cxrbench.pytest_plugin`` rewrites
the asserts of this package and offers a few fixtures.
"""

from cxrbench.testing.base import CheckSkipped, ContractViolation
from cxrbench.testing.classifier_contract import ClassifierContractTests
from cxrbench.testing.dataset_contract import DatasetContractTests
from cxrbench.testing.generator_contract import GeneratorContractTests
from cxrbench.testing.plugins import generator_plugin, plugin_module, plugins_with, plugins_with_generator
from cxrbench.testing.postprocessor_contract import PostprocessorContractTests
from cxrbench.testing.segmenter_contract import SegmenterContractTests
from cxrbench.testing.toydata import label_probe_auroc, make_toy_disks, make_toy_images, make_toy_split

__all__ = [
    "CheckSkipped",
    "ClassifierContractTests",
    "ContractViolation",
    "DatasetContractTests",
    "GeneratorContractTests",
    "PostprocessorContractTests",
    "SegmenterContractTests",
    "generator_plugin",
    "label_probe_auroc",
    "make_toy_disks",
    "make_toy_images",
    "make_toy_split",
    "plugin_module",
    "plugins_with",
    "plugins_with_generator",
]
