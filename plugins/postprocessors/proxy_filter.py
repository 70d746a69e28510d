"""`proxy-filter`: drop synthetic images whose label a proxy classifier contradicts.

As in Prakash et al.: a classifier trained on the *real* training split scores every synthetic
image; an image whose predicted label vector (probability >= ``threshold`` = positive) differs
from the condition it was generated for is dropped. The rejection rate per label value is
recorded, and the runner tops the set back up with new seeds (bounded, see
``harness/postprocessing.py``), so the protocol still trains on the requested number of images.

The proxy is a small CNN trained here for a fixed number of steps (step-defined, seeded) and
cached by (training-data fingerprint, options, size) under the run's cache, so every cell and
every top-up round reuses one proxy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from cxrbench.contracts import Postprocessor, Split, SyntheticBatch
from cxrbench.errors import ConfigError, PluginError
from cxrbench.kit import bar, data_fingerprint, load_tensors, save_tensors, step_generator, to_model_range, write_json


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


def _proxy_net(num_labels: int, width: int):
    from torch import nn

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, width), *block(width, 2 * width), *block(2 * width, 4 * width),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_labels))


class ProxyFilter(Postprocessor):
    """Keep the synthetic images a real-data proxy classifier agrees with."""

    name: ClassVar[str] = "proxy-filter"
    version: ClassVar[str] = "1"
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
        import torch
        import torch.nn.functional as F

        labels = train.labels.float()
        key = hashlib.sha256(json.dumps({"data": data_fingerprint(train), "options": asdict(self.options),
                                         "size": int(train.images.shape[-1]), "version": self.version},
                                        sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache_dir) / "proxy-filter" / f"proxy-{key}.safetensors"
        o = self.options
        torch.manual_seed(int(o.seed))
        self.net = _proxy_net(labels.shape[1], int(o.width))
        if path.is_file():
            self.net.load_state_dict(load_tensors(path))
            self.net.eval()
            return {"proxy": str(path), "cached": True}
        opt = torch.optim.AdamW(self.net.parameters(), lr=float(o.lr))
        known = ~labels.isnan()
        targets = torch.nan_to_num(labels, nan=0.0)
        self.net.train()
        pbar = bar(total=int(o.steps), desc="proxy-filter: training the proxy classifier", unit="step", enabled=progress)
        for step in range(int(o.steps)):
            g = step_generator(int(o.seed), step)
            idx = torch.randint(len(train), (int(o.batch_size),), generator=g)
            x = to_model_range(train.images[idx])
            x = torch.where(torch.rand(x.shape[0], 1, 1, 1, generator=g) < 0.5, x, x.flip(-1))  # hflip
            loss = F.binary_cross_entropy_with_logits(self.net(x), targets[idx], weight=known[idx].float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            pbar.update(1)
        pbar.close()
        self.net.eval()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, self.net.state_dict())
        write_json(path.with_suffix(".json"), {"options": asdict(o), "fitted_on": train.name, "n": len(train)})
        return {"proxy": str(path), "cached": False, "final_loss": float(loss.detach())}

    def probabilities(self, images):
        """Proxy probabilities (N, L) of uint8 images (N, 1, H, W)."""
        import torch

        if self.net is None:
            raise PluginError("proxy-filter: prepare(train) must run before filtering (the runner calls it)")
        with torch.no_grad():
            return torch.cat([torch.sigmoid(self.net(to_model_range(images[i : i + 256])))
                              for i in range(0, images.shape[0], 256)]) if len(images) else torch.zeros((0, 1))

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
