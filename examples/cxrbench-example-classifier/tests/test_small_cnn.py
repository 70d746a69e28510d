"""small-cnn passes cxrbench's classifier contract kit.

``pytest`` in this folder (``pythonpath = ["src"]`` in pyproject.toml: no install needed), or
``classifier_name = "small-cnn"`` instead of the class once the package is installed.
"""

from cxrbench.testing import ClassifierContractTests
from cxrbench_example_classifier.plugin import SmallCNN


class TestSmallCNN(ClassifierContractTests):
    classifier_class = SmallCNN
    classifier_options = {"width": 8, "depth": 3}
    sizes = (16, 32)  # the sizes users run it at; the kit also tries the smallest accepted (8 px)
    bad_options = [({"width": 0}, 32), ({"depth": 3}, 4), ({"depth": 9}, 1024)]
