"""The contract kit of classifier plugins (an architecture the harness trains).

    from cxrbench.testing import ClassifierContractTests

    class TestMyClassifier(ClassifierContractTests):
        classifier_name = "my-net"              # or: classifier_class = MyNet
        classifier_options = {"width": 8}
        sizes = (32,)                           # the sizes your users run at
        bad_options = [({"width": -1}, 32)]     # (options, size) that check_options must refuse

The forward checks also run at the smallest size ``check_options`` accepts (``min_size``, or
searched in :data:`CANDIDATE_SIZES`): accepting a size the network cannot take is a bug that
would otherwise surface hours into a run. The training check trains a few steps on the toy split
(blob = label 1) and scores a held-out toy split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

from cxrbench.contracts import BuiltClassifier, Classifier
from cxrbench.errors import ConfigError, CxrbenchError
from cxrbench.testing.base import (
    ContractKit, ContractViolation, add_check_tests, build_options, describe, one_line,
    options_or_default, require, require_bad_options_rejected,
)
from cxrbench.testing.toydata import make_toy_split

__all__ = ["CANDIDATE_SIZES", "CHECKS", "ClassifierContractTests", "ClassifierSetup", "check_logits", "train_toy"]

#: sizes tried, smallest first, to find the smallest one check_options accepts
CANDIDATE_SIZES = (1, 2, 4, 8, 12, 16, 24, 28, 32, 48, 64, 96, 128, 224, 256)


@dataclass
class ClassifierSetup:
    """One classifier configuration under test."""

    cls: type
    options: Any = None
    sizes: tuple[int, ...] = (32,)
    #: the smallest supported size (None: the smallest of CANDIDATE_SIZES check_options accepts)
    min_size: int | None = None
    #: (options, size) pairs that must be refused with a ConfigError
    bad_options: tuple = ()
    train_size: int | None = None
    train_steps: int = 20
    train_batch: int = 16
    train_lr: float = 1e-3
    min_train_auroc: float = 0.6
    toy_n: int = 128
    seed: int = 0

    def make(self) -> Classifier:
        return self.cls(build_options(self.cls, self.options))

    def held_options(self) -> Any:
        return options_or_default(self.cls, build_options(self.cls, self.options))

    def smallest_size(self) -> int:
        if self.min_size is not None:
            return int(self.min_size)
        opts = self.held_options()
        for size in CANDIDATE_SIZES:
            try:
                self.cls.check_options(opts, size)
                return size
            except ConfigError:
                continue
        raise ConfigError(f"check_options refused every size in {CANDIDATE_SIZES}")

    def build(self, num_labels: int, size: int, *, seed: int | None = None) -> BuiltClassifier:
        from cxrbench.device import seed_everything

        seed_everything(self.seed if seed is None else seed)
        return self.make().build(num_labels, size, False)


def check_logits(out: Any, n: int, num_labels: int, where: str) -> None:
    """``out`` must be finite floating logits of shape (n, num_labels)."""
    import torch

    ok = isinstance(out, torch.Tensor) and out.is_floating_point() and tuple(out.shape) == (n, num_labels)
    require(ok, f"{where} returned {describe(out)}; expected float logits of shape {(n, num_labels)}")
    require(bool(torch.isfinite(out).all()), f"{where} returned non-finite logits: {out.flatten()[:6].tolist()}")


def forward(module: Any, size: int, n: int = 2, seed: int = 0):
    import torch

    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    module.eval()
    with torch.no_grad():
        return module(x)


def train_toy(module: Any, size: int, *, steps: int, batch: int, lr: float, seed: int, n: int = 128):
    """Train ``module`` for ``steps`` Adam steps on a toy split (masked BCE, as the harness)."""
    import torch
    import torch.nn.functional as F

    split = make_toy_split(n, size, seed)
    x, y = split.images.float() / 127.5 - 1.0, split.labels
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    for _ in range(steps):
        idx = torch.randint(0, len(split), (batch,), generator=g)
        logits, target = module(x[idx]), y[idx]
        keep = ~torch.isnan(target)
        loss = F.binary_cross_entropy_with_logits(logits[keep], target[keep])
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()
    return module


# --------------------------------------------------------------------------- the checks


def check_options_accepted(s: ClassifierSetup, tmp: Path) -> None:
    """check_options(options, size) accepts the configured options at every configured size."""
    for size in s.sizes:
        s.cls.check_options(s.held_options(), size)


def check_bad_options_rejected(s: ClassifierSetup, tmp: Path) -> None:
    """Every (options, size) in bad_options is refused with a one-line ConfigError."""
    require_bad_options_rejected(s.cls, s.bad_options)


def check_build(s: ClassifierSetup, tmp: Path) -> None:
    """build() returns a BuiltClassifier: a torch module and weights "scratch" when not pretrained."""
    import torch

    built = s.build(1, s.sizes[0])
    require(isinstance(built, BuiltClassifier), f"build() returned {describe(built)}; expected a BuiltClassifier")
    require(isinstance(built.module, torch.nn.Module),
            f"build().module is {describe(built.module)}; expected a torch.nn.Module")
    require(isinstance(built.weights, str) and built.weights.startswith("scratch"),
            f"build(pretrained=False).weights is {built.weights!r}; expected 'scratch'")


def check_forward_shape(s: ClassifierSetup, tmp: Path) -> None:
    """Forward on float (2, 1, s, s) in [-1, 1] gives finite float logits (2, num_labels), at the
    smallest size check_options accepts (1 label) and at every configured size (3 labels)."""
    smallest = s.smallest_size()
    cases = [(smallest, 1)] + [(size, 3) for size in s.sizes]
    for size, labels in cases:
        module = s.build(labels, size).module
        try:
            out = forward(module, size)
        except Exception as exc:  # noqa: BLE001 - the message says which size failed
            note = (f"; check_options accepts {size} px, so it must raise a ConfigError below the smallest size the "
                    "network takes") if size == smallest else ""
            raise ContractViolation(
                f"forward at {size} px with {labels} label(s) failed: {one_line(exc)}{note}") from exc
        check_logits(out, 2, labels, f"forward at {size} px with {labels} label(s)")


def check_same_seed_same_result(s: ClassifierSetup, tmp: Path) -> None:
    """The same seed gives the same initial weights, and the same logits after a training step."""
    import torch

    size = s.train_size or s.sizes[0]
    results = []
    for _ in range(2):
        built = s.build(1, size, seed=s.seed)
        init = {k: v.detach().clone() for k, v in built.module.state_dict().items()}
        train_toy(built.module, size, steps=1, batch=4, lr=s.train_lr, seed=s.seed, n=16)
        results.append((init, forward(built.module, size, n=4)))
    (w1, out1), (w2, out2) = results
    differ = [k for k in w1 if not torch.equal(w1[k], w2[k])]
    require(not differ, f"two builds after seeding torch with {s.seed} have different initial weights "
                        f"({len(differ)} tensors, e.g. {differ[:3]}); draw initial weights from torch's global RNG")
    require(torch.equal(out1, out2), f"the same seed and data gave different logits after training: "
                                     f"{out1.flatten().tolist()} vs {out2.flatten().tolist()}")


def check_trains_above_chance(s: ClassifierSetup, tmp: Path) -> None:
    """A few training steps on the toy split give AUROC above chance on a held-out toy split."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    size = s.train_size or s.sizes[0]
    built = s.build(1, size, seed=s.seed)
    train_toy(built.module, size, steps=s.train_steps, batch=s.train_batch, lr=s.train_lr, seed=s.seed, n=s.toy_n)
    held = make_toy_split(64, size, s.seed + 50, nan_fraction=0.0)
    with torch.no_grad():
        scores = built.module(held.images.float() / 127.5 - 1.0)
    check_logits(scores, 64, 1, "forward after training")
    auroc = float(roc_auc_score(held.labels[:, 0].numpy(), scores[:, 0].numpy()))
    require(not np.isnan(auroc) and auroc > s.min_train_auroc,
            f"after {s.train_steps} steps (batch {s.train_batch}, Adam lr {s.train_lr}) at {size} px the toy AUROC "
            f"is {auroc:.3f}, expected > {s.min_train_auroc}")


def check_pretrained_offline(s: ClassifierSetup, tmp: Path) -> None:
    """build(pretrained=True) never opens a network connection; it returns a BuiltClassifier
    saying where its weights came from (or raises a clear cxrbench error)."""
    import socket

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1] if len(args) > 1 else args[:1])[:80])
        raise OSError("network access during build(pretrained=True) (blocked by the contract kit)")

    with mock.patch.object(socket.socket, "connect", refuse), mock.patch.object(socket, "create_connection", refuse):
        try:
            built = s.make().build(1, s.sizes[0], True)
        except CxrbenchError:
            built = None
        except Exception as exc:  # noqa: BLE001
            require(not attempts, f"build(pretrained=True) tried to download ({attempts[0]}): {one_line(exc)}")
            raise ContractViolation(f"build(pretrained=True) raised {one_line(exc)}; expected a BuiltClassifier or a "
                                 "CxrbenchError saying which local weights are missing") from exc
    require(not attempts, f"build(pretrained=True) tried to open a network connection to {attempts[:1]}; "
                          "pretrained weights come only from local files or an existing hub cache")
    if built is not None:
        require(isinstance(built, BuiltClassifier) and isinstance(built.weights, str) and built.weights,
                f"build(pretrained=True) returned {describe(built)}; expected a BuiltClassifier with weights set")


CHECKS = [check_options_accepted, check_bad_options_rejected, check_build, check_forward_shape,
          check_same_seed_same_result, check_trains_above_chance, check_pretrained_offline]


# --------------------------------------------------------------------------- the pytest kit


class ClassifierContractTests(ContractKit, kind="classifier"):
    """Subclass in pytest and set ``classifier_name`` or ``classifier_class`` (and
    ``classifier_options``)."""

    #: the sizes to check (the first one is also the training check's size unless train_size)
    sizes: ClassVar[tuple[int, ...]] = (32,)
    min_size: ClassVar[int | None] = None
    bad_options: ClassVar[tuple] = ()
    train_size: ClassVar[int | None] = None
    train_steps: ClassVar[int] = 20
    train_batch: ClassVar[int] = 16
    train_lr: ClassVar[float] = 1e-3
    min_train_auroc: ClassVar[float] = 0.6

    @classmethod
    def kit_setup(cls) -> ClassifierSetup:
        return ClassifierSetup(cls.plugin_class(), cls.plugin_options(), tuple(cls.sizes), cls.min_size, tuple(cls.bad_options),
                               cls.train_size, cls.train_steps, cls.train_batch, cls.train_lr, cls.min_train_auroc)


add_check_tests(ClassifierContractTests, CHECKS)
