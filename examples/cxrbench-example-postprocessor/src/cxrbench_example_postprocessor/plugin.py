"""`gamma`: a gamma curve applied to every synthetic image, and its registration.

The registration hook only names the class (a lazy "module:Class" string); the step imports
torch inside ``__call__``, so importing this module (``cxrbench plugins``, ``cxrbench
validate``) stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cxrbench.contracts import Postprocessor, SyntheticBatch
from cxrbench.errors import ConfigError
from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_postprocessors(registry):
    registry.add("gamma", "cxrbench_example_postprocessor.plugin:Gamma",
                 summary="example plugin: out = 255 * (in / 255) ** gamma")


@dataclass
class GammaOptions:
    #: exponent of the curve: 1.0 leaves images unchanged, > 1 darkens, < 1 brightens
    gamma: float = 1.0


class Gamma(Postprocessor):
    """Maps every pixel through ``255 * (in / 255) ** gamma``: pixels only, never drops, never
    reorders; each image depends on itself alone (a 256-entry lookup table)."""

    name: ClassVar[str] = "gamma"
    version: ClassVar[str] = "1"  # bump when the output for the same options changes
    Options: ClassVar[type] = GammaOptions

    @classmethod
    def check_options(cls, options: GammaOptions, size: int) -> None:
        # cheap and file-free: `cxrbench validate` and every run call it before anything trains
        gamma = float(options.gamma)
        if not gamma > 0 or gamma == float("inf"):  # `not > 0` also refuses NaN
            raise ConfigError(f"gamma: gamma={options.gamma!r} must be a finite number > 0")

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import torch

        levels = torch.arange(256, dtype=torch.float64) / 255.0
        table = (levels.pow(float(self.options.gamma)) * 255.0).round().to(torch.uint8)
        # indexing builds a new tensor: the caller's batch is never edited in place
        images = table.to(batch.images.device)[batch.images.long()]
        self.stats = {"images": int(images.shape[0]), "gamma": float(self.options.gamma)}
        return SyntheticBatch(images, list(batch.conditions))
