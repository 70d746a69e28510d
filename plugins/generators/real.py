"""`real`: the ceiling. Returns real *training* images that match each requested condition.

Training a classifier "synthetic-only" on this generator reproduces real-only training (with
resampling), so it bounds what any generator can reach. It also makes the harness testable
before any learned generator exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cxrbench.contracts import Condition, Generator, GeneratorCapabilities, Split


@dataclass
class RealOptions:
    #: also match demographics (sex) when the training split has them
    match_demographics: bool = True


class RealGenerator(Generator):
    """Reference ceiling: a real training image with the same label vector, chosen by seed."""

    name = "real"
    version = "1"
    # mask=True: each image it returns comes with its own real mask (conditioning_masks), so its
    # pairs are the real pairs: the segmentation task's ceiling
    capabilities = GeneratorCapabilities(labels=True, demographics=True, needs_training=False, mask=True)
    Options = RealOptions

    def fit(self, train: Split, *, progress: bool = True) -> dict:
        self._index(train)
        return {"train_images": len(train)}

    def _index(self, train: Split) -> None:
        import torch

        self._train = train
        labels = torch.nan_to_num(train.labels, nan=0.0)
        self._groups: dict[tuple, list[int]] = {}
        for i, row in enumerate(labels.tolist()):
            self._groups.setdefault(tuple(row), []).append(i)
        self._sex = train.metadata.get("sex")
        self._masks = train.masks

    def save(self, directory: Path) -> None:
        """The 'checkpoint' of the ceiling is the training split itself (safetensors + JSON)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        t = self._train
        tensors = {"images": t.images.contiguous(), "labels": t.labels.contiguous()}
        if t.masks is not None:
            tensors["masks"] = t.masks.contiguous()
        save_file(tensors, str(directory / "train.safetensors"))
        meta = {"keys": t.keys, "patient_ids": t.patient_ids, "label_names": list(t.label_names),
                "sex": t.metadata.get("sex")}
        (directory / "config.json").write_text(json.dumps(meta))

    def load(self, directory: Path) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        tensors = load_file(str(directory / "train.safetensors"))
        meta = json.loads((directory / "config.json").read_text())
        metadata = {"sex": meta["sex"]} if meta.get("sex") is not None else {}
        self._index(Split("train", tensors["images"], tensors["labels"], tuple(meta["label_names"]),
                          meta["patient_ids"], meta["keys"], metadata, masks=tensors.get("masks")))

    def generate(self, conditions: Sequence[Condition]):
        import torch
        import torch.nn.functional as F

        if not hasattr(self, "_train"):
            raise RuntimeError("real generator: call fit(train) before generate()")
        images = self._train.images[torch.as_tensor(self._picks(conditions), dtype=torch.long)]
        if images.shape[-1] != self.size or images.shape[-2] != self.size:
            images = F.interpolate(images.float(), size=(self.size, self.size), mode="area")
            images = images.round().clamp(0, 255).to(torch.uint8)
        return images.contiguous()

    def conditioning_masks(self, conditions: Sequence[Condition], size: int | None = None):
        """The real mask of each image :meth:`generate` returns for ``conditions`` (the same
        seeded picks): uint8 (N, 1, size, size); None when the training split has no masks."""
        import torch
        import torch.nn.functional as F

        if getattr(self, "_masks", None) is None:
            return None
        size = size or self.size
        masks = self._masks[torch.as_tensor(self._picks(conditions), dtype=torch.long)]
        if masks.shape[-1] != size:
            masks = F.interpolate(masks.float(), size=(size, size), mode="nearest")
        return (masks > 0).to(torch.uint8)

    def _picks(self, conditions: Sequence[Condition]) -> list[int]:
        import numpy as np

        if not hasattr(self, "_train"):
            raise RuntimeError("real generator: call fit(train) before generate()")
        picks = []
        for cond in conditions:
            key = tuple(float(v) for v in cond.labels)
            candidates = self._groups.get(key)
            if not candidates:
                raise ValueError(
                    f"real generator: no training image has labels {key}; "
                    f"available label vectors: {sorted(self._groups)[:5]}"
                )
            sex = cond.demographics.get("sex") if cond.demographics else None
            if self.options.match_demographics and sex is not None and self._sex is not None:
                same = [i for i in candidates if self._sex[i] == sex]
                candidates = same or candidates
            rng = np.random.default_rng(cond.seed)
            picks.append(candidates[int(rng.integers(len(candidates)))])
        return picks
