"""The generator kit's label probe decides robustly (issue #29.2): a label-ignoring generator
never passes and an honest but weak one never fails, measured over many seeds - not by a hair
around a point threshold (a label-ignoring generator scored 0.569-0.579 against 0.6 before)."""

import torch

from cxrbench.testing.generator_contract import GeneratorSetup
from cxrbench.testing.toydata import label_probe, make_toy_images, make_toy_split

N = GeneratorSetup.__dataclass_fields__["probe_n_per_label"].default
THRESHOLD = GeneratorSetup.__dataclass_fields__["min_probe_auroc"].default
REAL = make_toy_split(512, 32, seed=99, name="probe", nan_fraction=0.0)
LABELS = [0.0] * N + [1.0] * N


def _passes(images) -> bool:
    return label_probe(REAL, images, LABELS)["ci"][0] > THRESHOLD


def _ignores_labels(seed):
    """Draws toy images for labels of its own: the requested label is ignored."""
    g = torch.Generator().manual_seed(seed)
    return make_toy_images((torch.rand(2 * N, generator=g) < 0.5).float().tolist(), 32, seed)


def _weak_but_honest(seed, strength=0.5):
    """Honours the label in only half of its images (the rest: a random label): probe AUROC about
    0.74, weak but not wrong. Measured with 128 images per label: over 40 seeds the label-ignoring
    generator's point AUROC reached 0.572 (as the 0.569-0.579 that passed or failed by a hair)
    but its interval's lower end never passed 0.502; this one's never fell below 0.594; at
    strength 0.4 (AUROC 0.69) 1 seed of 40 fails, at 0.3 (0.64) 10 of 40: the kit asks for a
    label signal of about 0.7 AUROC or more."""
    g = torch.Generator().manual_seed(seed)
    honoured = torch.rand(2 * N, generator=g) < strength
    drawn = (torch.rand(2 * N, generator=g) < 0.5).float()
    labels = torch.where(honoured, torch.tensor(LABELS), drawn)
    return make_toy_images(labels.tolist(), 32, seed + 1000)


def test_a_label_ignoring_generator_never_passes_over_40_seeds():
    passed = [seed for seed in range(40) if _passes(_ignores_labels(seed))]
    assert passed == []


def test_a_weak_but_honest_generator_never_fails_over_40_seeds():
    failed = [seed for seed in range(40) if not _passes(_weak_but_honest(seed))]
    assert failed == []


def test_the_probe_reports_its_interval():
    out = label_probe(REAL, _weak_but_honest(0), LABELS)
    lo, hi = out["ci"]
    assert lo < out["auroc"] < hi and out["n"] == 2 * N
