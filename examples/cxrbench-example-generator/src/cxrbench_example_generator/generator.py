"""`class-mean`: per label vector, the mean real training image plus seeded smooth noise."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from cxrbench.contracts import Generator, GeneratorCapabilities


@dataclass
class ClassMeanOptions:
    #: how much of the per-pixel standard deviation the noise carries
    noise_scale: float = 0.5


class ClassMeanGenerator(Generator):
    """Per-label mean image plus seeded noise: honours labels, reproducible, safetensors checkpoint."""

    # ClassVar: what the harness reads off the class before it builds one
    name: ClassVar[str] = "class-mean"
    version: ClassVar[str] = "1"
    capabilities: ClassVar[GeneratorCapabilities] = GeneratorCapabilities(labels=True, needs_training=True)
    Options: ClassVar[type] = ClassMeanOptions

    def fit(self, train, *, progress=True):
        import time

        import torch
        import torch.nn.functional as F

        start = time.perf_counter()
        images = train.images.float()
        if images.shape[-1] != self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="area")
        labels = torch.nan_to_num(train.labels, nan=0.0)
        self.keys = sorted({tuple(row) for row in labels.tolist()})
        means, stds = [], []
        for key in self.keys:
            rows = (labels == torch.tensor(key)).all(dim=1)
            means.append(images[rows].mean(0))
            stds.append(images[rows].std(0))
        self.means, self.stds = torch.stack(means), torch.stack(stds)
        return {"label_vectors": len(self.keys), "train_seconds": time.perf_counter() - start}

    def generate(self, conditions):
        import torch
        import torch.nn.functional as F

        if not hasattr(self, "means"):
            raise RuntimeError("class-mean: call fit() or load() before generate()")
        out = []
        for cond in conditions:
            k = self.keys.index(tuple(float(v) for v in cond.labels))
            g = torch.Generator().manual_seed(int(cond.seed))
            noise = torch.randn((1, 1, self.size // 4, self.size // 4), generator=g)
            noise = F.interpolate(noise, size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
            img = self.means[k] + self.options.noise_scale * self.stds[k] * noise
            out.append(img.round().clamp(0, 255).to(torch.uint8))
        if not out:
            return torch.zeros((0, 1, self.size, self.size), dtype=torch.uint8)
        return torch.stack(out)

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"means": self.means.contiguous(), "stds": self.stds.contiguous()}, str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps({"keys": self.keys, "options": asdict(self.options)}))

    def load(self, directory: Path) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        tensors = load_file(str(directory / "model.safetensors"))
        self.means, self.stds = tensors["means"], tensors["stds"]
        self.keys = [tuple(k) for k in json.loads((directory / "config.json").read_text())["keys"]]
