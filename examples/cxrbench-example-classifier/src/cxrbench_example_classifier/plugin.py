"""`small-cnn`: a small plain CNN classifier, and its registration.

The registration hook only names the class (a lazy "module:Class" string), and torch is
imported inside ``build``, so ``cxrbench plugins`` and ``cxrbench validate`` stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cxrbench.contracts import BuiltClassifier, Classifier
from cxrbench.errors import ConfigError
from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_classifiers(registry):
    registry.add("small-cnn", "cxrbench_example_classifier.plugin:SmallCNN",
                 summary="example plugin: conv-BN-ReLU-maxpool stages, global pooling, linear head")


@dataclass
class SmallCNNOptions:
    #: channels of the first stage (doubled at each further stage)
    width: int = 16
    #: conv stages; each halves the image, so inputs need at least 2 ** depth px
    depth: int = 3


class SmallCNN(Classifier):
    """One input channel (float in [-1, 1]), ``num_labels`` logits; random initialisation only."""

    name: ClassVar[str] = "small-cnn"
    version: ClassVar[str] = "1"  # bump when the architecture or its initialisation changes
    Options: ClassVar[type] = SmallCNNOptions

    @classmethod
    def check_options(cls, options: SmallCNNOptions, size: int) -> None:
        # refuse here what build() could not do, so a spec fails at `validate`, not hours in
        if options.width < 1 or not 1 <= options.depth <= 8:
            raise ConfigError(f"small-cnn: need width >= 1 and depth in 1..8, got width={options.width} "
                              f"depth={options.depth}")
        if size < 2 ** options.depth:
            raise ConfigError(f"small-cnn: depth {options.depth} halves the image {options.depth} times, so it "
                              f"needs at least {2 ** options.depth} px; the spec asks for {size}")

    def build(self, num_labels: int, input_size: int, pretrained: bool) -> BuiltClassifier:
        from torch import nn

        self.check_options(self.options, input_size)
        layers, channels = [], 1
        for stage in range(self.options.depth):
            out = self.options.width * 2 ** stage
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, int(num_labels))]
        module = nn.Sequential(*layers)
        # `weights` says where the initial weights came from; this network has none to load, and
        # a classifier never downloads at run time, so a pretrained request is answered honestly
        weights = "scratch (small-cnn has no pretrained weights)" if pretrained else "scratch"
        return BuiltClassifier(module=module, weights=weights)
