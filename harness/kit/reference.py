"""The reference classifier: a small CNN trained on a dataset's *real* training split.

One network, three uses, so they never disagree about what "real" looks like:

- the `proxy-filter` post-processor drops synthetic images whose label it contradicts;
- label fidelity: how often it agrees with the condition a synthetic image was made for;
- domain features: its pooled penultimate layer is the chest-X-ray feature space of the
  Frechet distance, precision / recall and memorization metrics when no pretrained X-ray
  network (torchxrayvision) is on disk.

Training is step-defined and seeded (the same data and options give the same weights on any
machine, busy or not), and the weights are cached by (data fingerprint, options, size, version)
so every cell, top-up round and metric of a run reuses one network. Its ``identity`` names it in
every number computed from its features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cxrbench.integrity import check_file, checksum_path, quarantine, write_checksum
from cxrbench.kit.checkpoints import load_tensors, save_tensors, write_json
from cxrbench.kit.images import data_fingerprint, step_generator, to_model_range
from cxrbench.kit.runtime import bar

#: bump when the architecture or the training loop changes: old caches are then not reused
VERSION = "1"


@dataclass
class ReferenceOptions:
    #: optimisation steps, batch size, learning rate, width (features = 4 x width), seed
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 32
    seed: int = 0


def reference_net(num_labels: int, width: int):
    """Three conv blocks, global pooling, a linear head (``net[:-1]`` gives the features)."""
    from torch import nn

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, width), *block(width, 2 * width), *block(2 * width, 4 * width),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_labels))


class ReferenceClassifier:
    """Train (or load from ``cache_dir``) with :meth:`fit`; then :meth:`probabilities` and
    :meth:`features` of uint8 (N, 1, H, W) images."""

    def __init__(self, options: ReferenceOptions | None = None, *, cache_name: str = "reference"):
        self.options = options or ReferenceOptions()
        self.cache_name = cache_name  # the cache folder (proxy-filter keeps its historical one)
        self.net = None
        self.identity: str | None = None

    def key(self, train) -> str:
        return hashlib.sha256(json.dumps({"data": data_fingerprint(train), "options": asdict(self.options),
                                          "size": int(train.images.shape[-1]), "version": VERSION},
                                         sort_keys=True).encode()).hexdigest()[:16]

    def fit(self, train, *, cache_dir: Path, progress: bool | None = None, desc: str = "reference classifier") -> dict[str, Any]:
        """Train on ``train`` (a Split: uint8 images, float labels, NaN = unknown) or load it."""
        import torch
        import torch.nn.functional as F

        o, labels = self.options, train.labels.float()
        key = self.key(train)
        path = Path(cache_dir) / self.cache_name / f"{self.cache_name}-{key}.safetensors"
        self.identity = f"reference-cnn-v{VERSION}:{train.name}:{int(train.images.shape[-1])}px:{key}"
        with torch.random.fork_rng(devices=[]):  # seeded init without moving the caller's RNG
            torch.manual_seed(int(o.seed))
            self.net = reference_net(labels.shape[1], int(o.width))
        if path.is_file():
            try:
                problem = check_file(path)  # weights altered on disk would load silently otherwise
                if problem:
                    raise ValueError(problem)
                self.net.load_state_dict(load_tensors(path))
                self.net.eval()
                return {"path": str(path), "cached": True, "identity": self.identity}
            except Exception as exc:  # noqa: BLE001 - a damaged cache entry is retrained, never trusted
                quarantine(path, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                           also=(checksum_path(path),))
                with torch.random.fork_rng(devices=[]):  # a partial load may have touched weights
                    torch.manual_seed(int(o.seed))
                    self.net = reference_net(labels.shape[1], int(o.width))
        opt = torch.optim.AdamW(self.net.parameters(), lr=float(o.lr))
        known = ~labels.isnan()
        targets = torch.nan_to_num(labels, nan=0.0)
        self.net.train()
        pbar = bar(total=int(o.steps), desc=f"{desc}: training on the real train split", unit="step", enabled=progress)
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
        write_checksum(path)
        write_json(path.with_suffix(".json"), {"options": asdict(o), "fitted_on": train.name, "n": len(train),
                                               "identity": self.identity})
        return {"path": str(path), "cached": False, "final_loss": float(loss.detach()), "identity": self.identity}

    def _batched(self, images, fn, width: int):
        import torch

        if self.net is None:
            raise RuntimeError("reference classifier: fit(train) must run first")
        if not len(images):
            return torch.zeros((0, width))
        with torch.no_grad():
            return torch.cat([fn(to_model_range(images[i: i + 256])) for i in range(0, images.shape[0], 256)])

    def probabilities(self, images):
        """Sigmoid probabilities (N, L)."""
        import torch

        return self._batched(images, lambda x: torch.sigmoid(self.net(x)), self.net[-1].out_features)

    def features(self, images):
        """Pooled penultimate features (N, 4 x width), float32."""
        return self._batched(images, lambda x: self.net[:-1](x), self.net[-1].in_features)
