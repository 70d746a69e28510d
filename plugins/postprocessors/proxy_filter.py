"""`proxy-filter`: drop synthetic images whose label a proxy classifier contradicts.

As in Prakash et al.: a classifier trained on the *real* training split scores every synthetic
image; an image whose predicted label vector (probability >= ``threshold`` = positive) differs
from the condition it was generated for is dropped. The rejection rate per label value is
recorded, and the runner tops the set back up with new seeds (bounded, see
``harness/postprocessing.py``), so the protocol still trains on the requested number of images.

The proxy is the kit's reference classifier (:mod:`cxrbench.kit.reference`): a small CNN trained
here for a fixed number of steps (step-defined, seeded) and cached by (training-data fingerprint,
training options, size) under the run's cache. With the default options it is the very network
the harness's label-fidelity and domain-feature metrics use, so a run trains it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cxrbench.contracts import Postprocessor, Split, SyntheticBatch
from cxrbench.errors import ConfigError, PluginError
from cxrbench.kit.reference import ReferenceClassifier, ReferenceOptions


@dataclass
class ProxyFilterOptions:
    #: a predicted probability >= threshold counts as a positive label
    threshold: float = 0.5
    #: proxy training: optimisation steps, batch size, learning rate, width, seed
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 32
    seed: int = 0


class ProxyFilter(Postprocessor):
    """Keep the synthetic images a real-data proxy classifier agrees with."""

    name: ClassVar[str] = "proxy-filter"
    version: ClassVar[str] = "2"
    Options: ClassVar[type] = ProxyFilterOptions
    needs_real_train: ClassVar[bool] = True

    @classmethod
    def check_options(cls, options, size: int) -> None:
        if not 0.0 < float(options.threshold) < 1.0:
            raise ConfigError(f"proxy-filter: threshold must be in (0, 1), got {options.threshold!r}")
        for key in ("steps", "batch_size", "width"):
            if not isinstance(getattr(options, key), int) or getattr(options, key) < 1:
                raise ConfigError(f"proxy-filter: {key} must be an integer >= 1, got {getattr(options, key)!r}")
        if size < 8:
            raise ConfigError(f"proxy-filter: needs images of at least 8 px, got {size}")

    def __init__(self, options: Any = None, *, device: str = "cpu"):
        super().__init__(options, device=device)
        self.net = None

    # ---- the proxy
    def prepare(self, train: Split, *, cache_dir: Path, progress: bool | None = None) -> dict[str, Any]:
        o = self.options
        self.net = ReferenceClassifier(ReferenceOptions(steps=o.steps, batch_size=o.batch_size, lr=o.lr,
                                                        width=o.width, seed=o.seed))
        info = self.net.fit(train, cache_dir=cache_dir, progress=progress, desc="proxy-filter")
        return {"proxy": info["path"], **info}

    def probabilities(self, images):
        """Proxy probabilities (N, L) of uint8 images (N, 1, H, W)."""
        if self.net is None:
            raise PluginError("proxy-filter: prepare(train) must run before filtering (the runner calls it)")
        return self.net.probabilities(images)

    # ---- the filter
    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        import torch

        n = len(batch.conditions)
        if n == 0:
            self.stats = {"in": 0, "kept": 0, "rejected": 0, "rejection_rate": {}}
            return batch
        wanted = torch.tensor([[float(v) for v in c.labels] for c in batch.conditions])
        predicted = (self.probabilities(batch.images) >= float(self.options.threshold)).float()
        agree = (predicted == wanted).all(dim=1)
        keep = agree.nonzero().flatten().tolist()
        rates = {}
        for j in range(wanted.shape[1]):
            for value in (0.0, 1.0):
                rows = wanted[:, j] == value
                if rows.any():
                    rates[f"label{j}={value:g}"] = float((~agree[rows]).float().mean())
        self.stats = {"in": n, "kept": len(keep), "rejected": n - len(keep), "rejection_rate": rates}
        return SyntheticBatch(batch.images[keep], [batch.conditions[i] for i in keep])
