"""Toy data for the contract kits: small synthetic 'radiographs' whose one label is visible.

Label 1 = a bright blob in the left lung field, label 0 = none; a classifier or a label probe
separates them easily, so a kit can tell "learned the label" from "did not" in seconds.
"""

from __future__ import annotations

from cxrbench.contracts import Split

TOY_LABELS = ("blob",)


def make_toy_images(labels, size: int, seed: int):
    """Synthetic 'radiographs': a dark, noisy chest-like field; label 1 adds a bright blob."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    # two darker 'lungs' on a brighter 'mediastinum' and border
    lungs = torch.exp(-(((xx.abs() - 0.45) / 0.28) ** 2 + (yy / 0.6) ** 2) ** 2)
    base = 150.0 - 90.0 * lungs  # (size, size)
    shift = (torch.rand(n, 1, 1, generator=g) - 0.5) * 30.0  # exposure differences
    noise = torch.randn(n, size, size, generator=g) * 12.0
    # blob: in the left lung field, jittered position, radius ~ size / 7
    cx = -0.45 + (torch.rand(n, 1, 1, generator=g) - 0.5) * 0.3
    cy = 0.0 + (torch.rand(n, 1, 1, generator=g) - 0.5) * 0.4
    r = 0.28
    blob = torch.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)) * 2.0)
    lab = torch.as_tensor(labels, dtype=torch.float32).view(n, 1, 1)
    img = base + shift + noise + 110.0 * blob * lab
    return img.round().clamp(0, 255).to(torch.uint8).unsqueeze(1)


def make_toy_split(n: int = 256, size: int = 32, seed: int = 0, *, name: str = "train", nan_fraction: float = 0.03) -> Split:
    """A small synthetic :class:`Split`: one label ``blob`` (about half positive; a few NaN =
    unknown, their images drawn at random), sex (``F`` / ``M`` / unknown) and age (20-90 /
    unknown) metadata independent of the label."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    truth = (torch.rand(n, generator=g) < 0.5).float()
    images = make_toy_images(truth.tolist(), size, seed)
    labels = truth.clone().view(n, 1)
    labels[torch.rand(n, generator=g) < nan_fraction] = float("nan")
    sex_draw = torch.rand(n, generator=g).tolist()
    ages = (20 + 70 * torch.rand(n, generator=g)).round().tolist()
    age_missing = (torch.rand(n, generator=g) < 0.1).tolist()
    metadata = {
        "sex": ["F" if s < 0.47 else ("M" if s < 0.94 else None) for s in sex_draw],
        "age": [None if m else int(a) for a, m in zip(ages, age_missing)],
    }
    return Split(
        name=name,
        images=images,
        labels=labels,
        label_names=TOY_LABELS,
        patient_ids=[f"toy-{seed}-{i:05d}" for i in range(n)],
        keys=[f"toy/{seed}/{i:05d}.png" for i in range(n)],
        metadata=metadata,
    )


def make_toy_disks(n: int = 64, size: int = 32, seed: int = 0):
    """A toy segmentation task: ``(images, masks)``, uint8 (n, 1, size, size) each. Every image is
    a noisy grey field with one bright disk (radius size/8 to size/5, anywhere fully inside the
    image); its mask is 1 on the disk, 0 elsewhere. Image and mask i depend on (seed, i, size)
    only through the seeded draws, so the same arguments give the same pairs."""
    import torch

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    r = size * (0.125 + 0.075 * torch.rand(n, 1, 1, generator=g))
    cx = r + (size - 1 - 2 * r) * torch.rand(n, 1, 1, generator=g)
    cy = r + (size - 1 - 2 * r) * torch.rand(n, 1, 1, generator=g)
    disk = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).float()
    level = 70.0 + 30.0 * torch.rand(n, 1, 1, generator=g)  # exposure differences
    images = level + 25.0 * torch.randn(n, size, size, generator=g) + 90.0 * disk
    return (images.round().clamp(0, 255).to(torch.uint8).unsqueeze(1), disk.to(torch.uint8).unsqueeze(1))


def label_probe(real: Split, generated, generated_labels, confidence: float = 0.95) -> dict:
    """A logistic-regression probe (8x8 downsampled pixels) trained on the real images, scored on
    generated images against the labels they were generated for: its AUROC with a DeLong
    interval, so a decision can ask for a margin over chance that sampling noise cannot fake."""
    import math

    import numpy as np
    import torch.nn.functional as F
    from scipy import stats
    from sklearn.linear_model import LogisticRegression

    from cxrbench.evaluation.delong import delong_roc_variance

    def feats(images):
        x = F.adaptive_avg_pool2d(images.float() / 255.0, 8)
        return x.flatten(1).numpy()

    y = real.labels[:, 0].numpy()
    keep = ~np.isnan(y)
    probe = LogisticRegression(max_iter=2000, C=1.0).fit(feats(real.images)[keep], y[keep])
    scores = probe.predict_proba(feats(generated))[:, 1]
    auc, var = delong_roc_variance(np.asarray(generated_labels), scores)
    half = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(max(var, 0.0))
    return {"auroc": auc, "ci": (auc - half, auc + half), "n": int(len(scores))}


def label_probe_auroc(real: Split, generated, generated_labels) -> float:
    """The probe's AUROC alone (see :func:`label_probe`)."""
    return label_probe(real, generated, generated_labels)["auroc"]
