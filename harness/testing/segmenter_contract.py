"""The contract kit of segmenter plugins (an architecture the harness trains on image-mask pairs).

    from cxrbench.testing import SegmenterContractTests

    class TestMySegmenter(SegmenterContractTests):
        segmenter_name = "my-unet"              # or: segmenter_class = MyUnet
        segmenter_options = {"width": 8}
        sizes = (32, 48, 64)                    # the sizes your users run at
        bad_options = [({"width": -1}, 32)]     # (options, size) that check_options must refuse

The shape checks also run at the smallest size ``check_options`` accepts (``min_size``, or
searched in :data:`CANDIDATE_SIZES`) and at an odd size: logits must come back at the input's
size whatever the network's stride. The learning check trains on a toy task (bright disks at
random positions on noise, :func:`cxrbench.testing.make_toy_disks`, the mask = the disk) and
scores Dice on held-out images, so a segmenter whose output does not follow its input fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

from cxrbench.contracts import BuiltSegmenter, Segmenter
from cxrbench.errors import ConfigError, CxrbenchError
from cxrbench.testing.base import (
    ContractKit, ContractViolation, add_check_tests, build_options, describe, one_line, options_or_default, require,
    require_bad_options_rejected,
)
from cxrbench.testing.toydata import make_toy_disks

__all__ = ["CANDIDATE_SIZES", "CHECKS", "SegmenterContractTests", "SegmenterSetup", "check_mask_logits", "forward",
           "train_toy_disks"]

#: sizes tried, smallest first, to find the smallest one check_options accepts
CANDIDATE_SIZES = (1, 2, 4, 8, 12, 16, 24, 28, 32, 48, 64, 96, 128, 224, 256)
#: mask classes the shape checks build for (channel c = the logit of mask class c)
SHAPE_CLASSES = (1, 2)


@dataclass
class SegmenterSetup:
    """One segmenter configuration under test."""

    cls: type
    options: Any = None
    sizes: tuple[int, ...] = (32, 48, 64)
    #: the smallest supported size (None: the smallest of CANDIDATE_SIZES check_options accepts)
    min_size: int | None = None
    #: (options, size) pairs that must be refused with a ConfigError
    bad_options: tuple = ()
    #: size of the learning check (None: sizes[0])
    train_size: int | None = None
    #: at most this many Adam steps in the learning check (it passes at the first evaluation,
    #: every ``eval_every`` steps, whose held-out Dice exceeds ``min_dice``)
    train_steps: int = 150
    train_batch: int = 8
    train_lr: float = 3e-3
    eval_every: int = 25
    min_dice: float = 0.8
    toy_n: int = 64
    held_n: int = 32
    seed: int = 0

    def make(self) -> Segmenter:
        return self.cls(build_options(self.cls, self.options))

    def held_options(self) -> Any:
        return options_or_default(self.cls, build_options(self.cls, self.options))

    def accepts(self, size: int) -> bool:
        try:
            self.cls.check_options(self.held_options(), size)
            return True
        except ConfigError:
            return False

    def smallest_size(self) -> int:
        if self.min_size is not None:
            return int(self.min_size)
        for size in CANDIDATE_SIZES:
            if self.accepts(size):
                return size
        raise ConfigError(f"check_options refused every size in {CANDIDATE_SIZES}")

    def build(self, num_classes: int, size: int, *, seed: int | None = None) -> BuiltSegmenter:
        from cxrbench.device import seed_everything

        seed_everything(self.seed if seed is None else seed)
        return self.make().build(num_classes, size, False)


def check_mask_logits(out: Any, n: int, num_classes: int, size: int, where: str) -> None:
    """``out`` must be finite floating logits of shape (n, num_classes, size, size)."""
    import torch

    want = (n, num_classes, size, size)
    ok = isinstance(out, torch.Tensor) and out.is_floating_point() and tuple(out.shape) == want
    require(ok, f"{where} returned {describe(out)}; expected float logits of shape {want} (the input's size)")
    if not bool(torch.isfinite(out).all()):
        raise ContractViolation(f"{where} returned non-finite logits: {out.detach().flatten()[:6].tolist()}")


def forward(module: Any, size: int, n: int = 2, seed: int = 0):
    """Eval-mode logits of ``n`` random float images (n, 1, size, size) in [-1, 1]."""
    import torch

    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    module.eval()
    with torch.no_grad():
        return module(x)


def _to_input(images_uint8):
    return images_uint8.float() / 127.5 - 1.0  # as the harness (and the classifier's input)


def toy_dice(module: Any, images, masks) -> float:
    """Mean Dice of ``logit > 0`` (sigmoid >= 0.5, as the harness predicts) against ``masks``."""
    import torch

    from cxrbench.kit.masks import dice

    module.eval()
    with torch.no_grad():
        logits = module(_to_input(images))
    check_mask_logits(logits, int(images.shape[0]), 1, int(images.shape[-1]), "forward after training")
    return float(dice((logits > 0).to(torch.uint8), masks).mean())


def train_toy_disks(module: Any, size: int, *, steps: int, batch: int, lr: float, seed: int, n: int = 64,
                    eval_every: int | None = None, held=None,
                    stop_above: float | None = None) -> list[tuple[int, float]]:
    """Train ``module`` (one logit map) with Adam and per-pixel BCE on ``n`` toy disk pairs for
    ``steps`` steps. With ``held`` = (images, masks), score held-out Dice every ``eval_every``
    steps and after the last; stop early once it exceeds ``stop_above``. Returns
    [(step, dice), ...] (empty without ``held``)."""
    import torch
    import torch.nn.functional as F

    images, masks = make_toy_disks(n, size, seed)
    x, y = _to_input(images), masks.float()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    scores: list[tuple[int, float]] = []
    for step in range(1, steps + 1):
        module.train()
        idx = torch.randint(0, n, (batch,), generator=g)
        loss = F.binary_cross_entropy_with_logits(module(x[idx]).float(), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if held is not None and ((eval_every and step % eval_every == 0) or step == steps):
            scores.append((step, toy_dice(module, *held)))
            if stop_above is not None and scores[-1][1] > stop_above:
                break
    module.eval()
    return scores


# --------------------------------------------------------------------------- the checks


def check_options_accepted(s: SegmenterSetup, tmp: Path) -> None:
    """check_options(options, size) accepts the configured options at every configured size."""
    for size in s.sizes:
        s.cls.check_options(s.held_options(), size)


def check_bad_options_rejected(s: SegmenterSetup, tmp: Path) -> None:
    """Every (options, size) in bad_options is refused with a one-line ConfigError."""
    require_bad_options_rejected(s.cls, s.bad_options)


def check_build(s: SegmenterSetup, tmp: Path) -> None:
    """build() returns a BuiltSegmenter: a torch module and weights "scratch" when not pretrained."""
    import torch

    built = s.build(1, s.sizes[0])
    require(isinstance(built, BuiltSegmenter), f"build() returned {describe(built)}; expected a BuiltSegmenter")
    require(isinstance(built.module, torch.nn.Module),
            f"build().module is {describe(built.module)}; expected a torch.nn.Module")
    require(isinstance(built.weights, str) and built.weights.startswith("scratch"),
            f"build(pretrained=False).weights is {built.weights!r}; expected 'scratch'")


def shape_cases(s: SegmenterSetup) -> list[tuple[int, int]]:
    """(size, num_classes) the shape check runs: the smallest accepted size (1 class), every
    configured size with 1 and 2 classes, and an odd size (2 classes) when accepted."""
    cases = [(s.smallest_size(), 1)] + [(size, c) for size in s.sizes for c in SHAPE_CLASSES]
    odd = s.sizes[0] + 1 if s.sizes[0] % 2 == 0 else s.sizes[0] + 2
    if s.accepts(odd):
        cases.append((odd, 2))
    return list(dict.fromkeys(cases))


def check_output_shape(s: SegmenterSetup, tmp: Path) -> None:
    """In eval mode, float (2, 1, s, s) input in [-1, 1] gives finite float logits
    (2, num_classes, s, s) at the input's size: at the smallest size check_options accepts, at
    every configured size with 1 and 2 classes, and at an odd size."""
    for size, classes in shape_cases(s):
        module = s.build(classes, size).module
        where = f"forward at {size} px with {classes} class(es)"
        try:
            out = forward(module, size)
        except Exception as exc:  # noqa: BLE001 - the message says which size failed
            note = ("; check_options accepts it, so the network must take it (pad and crop inside) or "
                    "check_options must raise a ConfigError")
            raise ContractViolation(f"{where} failed: {one_line(exc)}{note}") from exc
        check_mask_logits(out, 2, classes, size, where)


def check_output_depends_on_input(s: SegmenterSetup, tmp: Path) -> None:
    """Two different input batches give different logits (an untrained network too)."""
    import torch

    size = s.train_size or s.sizes[0]
    module = s.build(1, size).module
    a, b = forward(module, size, seed=1), forward(module, size, seed=2)
    check_mask_logits(a, 2, 1, size, f"forward at {size} px")
    if torch.equal(a, b):
        raise ContractViolation(f"forward at {size} px gave the same logits for two different images (e.g. "
                                f"{a.detach().flatten()[:4].tolist()}); the output must depend on the input")


def check_gradients_reach_parameters(s: SegmenterSetup, tmp: Path) -> None:
    """A BCE loss on a training-mode forward gives every trainable parameter a finite gradient,
    not all zero."""
    import torch
    import torch.nn.functional as F

    size = s.train_size or s.sizes[0]
    module = s.build(2, size).module
    images, masks = make_toy_disks(4, size, s.seed)
    module.train()
    logits = module(_to_input(images))
    check_mask_logits(logits, 4, 2, size, f"a training-mode forward at {size} px")
    F.binary_cross_entropy_with_logits(logits.float(), torch.cat([masks, 1 - masks], dim=1).float()).backward()
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    require(params, "the module has no trainable parameters")
    none = [n for n, p in params if p.grad is None]
    require(not none, f"{len(none)} of {len(params)} trainable parameters got no gradient (e.g. {none[:3]}); every "
                      "parameter must be used by forward (or set requires_grad=False)")
    bad = [n for n, p in params if not bool(torch.isfinite(p.grad).all())]
    require(not bad, f"non-finite gradients in {bad[:3]}")
    require(any(bool(p.grad.abs().sum() > 0) for _, p in params), "every gradient is zero: the loss does not reach "
                                                                   "the parameters")


def check_same_seed_same_result(s: SegmenterSetup, tmp: Path) -> None:
    """The same seed gives the same initial weights, and the same logits after a training step."""
    import torch

    size = s.train_size or s.sizes[0]
    results = []
    for _ in range(2):
        built = s.build(1, size, seed=s.seed)
        init = {k: v.detach().clone() for k, v in built.module.state_dict().items()}
        train_toy_disks(built.module, size, steps=1, batch=4, lr=s.train_lr, seed=s.seed, n=8)
        results.append((init, forward(built.module, size)))
    (w1, out1), (w2, out2) = results
    differ = [k for k in w1 if not torch.equal(w1[k], w2[k])]
    require(not differ, f"two builds after seeding torch with {s.seed} have different initial weights "
                        f"({len(differ)} tensors, e.g. {differ[:3]}); draw initial weights from torch's global RNG")
    if not torch.equal(out1, out2):
        gap = float((out1.detach() - out2.detach()).abs().max())
        raise ContractViolation(f"the same seed and data gave different logits after a training step (max difference "
                                f"{gap:.3g})")


def check_learns_toy_masks(s: SegmenterSetup, tmp: Path) -> None:
    """Trained with Adam and per-pixel BCE (batch train_batch, lr train_lr, at most train_steps
    steps) on toy_n images of a bright disk at a random position on noise (mask = the disk), the
    mean Dice of logit > 0 on held_n held-out images exceeds min_dice (0.8) at one of the
    evaluations made every eval_every steps: a segmenter that ignores its input fails."""
    size = s.train_size or s.sizes[0]
    built = s.build(1, size, seed=s.seed)
    held = make_toy_disks(s.held_n, size, s.seed + 1000)
    scores = train_toy_disks(built.module, size, steps=s.train_steps, batch=s.train_batch, lr=s.train_lr,
                             seed=s.seed, n=s.toy_n, eval_every=s.eval_every, held=held, stop_above=s.min_dice)
    step, last = scores[-1]
    best_step, best = max(scores, key=lambda t: t[1])
    require(last > s.min_dice,
            f"after {step} Adam steps (batch {s.train_batch}, lr {s.train_lr}, BCE) on {s.toy_n} toy disk images at "
            f"{size} px the held-out Dice is {last:.3f} (best {best:.3f} at step {best_step}), expected > "
            f"{s.min_dice}: the predicted masks do not follow the image")


def check_pretrained_offline(s: SegmenterSetup, tmp: Path) -> None:
    """build(pretrained=True) never opens a network connection; it returns a BuiltSegmenter saying
    which local weights it loaded, or raises a one-line cxrbench error naming what is missing."""
    import socket

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1] if len(args) > 1 else args[:1])[:80])
        raise OSError("network access during build(pretrained=True) (blocked by the contract kit)")

    with mock.patch.object(socket.socket, "connect", refuse), mock.patch.object(socket, "create_connection", refuse):
        try:
            built = s.make().build(1, s.sizes[0], True)
        except CxrbenchError as exc:
            require(not attempts, f"build(pretrained=True) tried to open a network connection to {attempts[:1]}")
            require("\n" not in str(exc).strip(), f"the error of build(pretrained=True) is not one line: {exc!s}")
            return
        except Exception as exc:  # noqa: BLE001
            require(not attempts, f"build(pretrained=True) tried to download ({attempts[0] if attempts else ''}): "
                                  f"{one_line(exc)}")
            raise ContractViolation(f"build(pretrained=True) raised {one_line(exc)}; expected a BuiltSegmenter or a "
                                    "one-line CxrbenchError saying which local weights are missing") from exc
    require(not attempts, f"build(pretrained=True) tried to open a network connection to {attempts[:1]}; "
                          "pretrained weights come only from local files or an existing cache")
    require(isinstance(built, BuiltSegmenter) and isinstance(built.weights, str) and built.weights
            and not built.weights.startswith("scratch"),
            f"build(pretrained=True) returned {describe(built)}; expected a BuiltSegmenter whose weights name what was "
            "loaded (without local weights, raise a one-line ConfigError naming what is missing)")


CHECKS = [check_options_accepted, check_bad_options_rejected, check_build, check_output_shape,
          check_output_depends_on_input, check_gradients_reach_parameters, check_same_seed_same_result,
          check_learns_toy_masks, check_pretrained_offline]


# --------------------------------------------------------------------------- the pytest kit


class SegmenterContractTests(ContractKit, kind="segmenter"):
    """Subclass in pytest and set ``segmenter_name`` or ``segmenter_class`` (and
    ``segmenter_options``)."""

    #: the sizes to check (the first one is also the learning check's size unless train_size)
    sizes: ClassVar[tuple[int, ...]] = (32, 48, 64)
    min_size: ClassVar[int | None] = None
    bad_options: ClassVar[tuple] = ()
    train_size: ClassVar[int | None] = None
    train_steps: ClassVar[int] = 150
    train_batch: ClassVar[int] = 8
    train_lr: ClassVar[float] = 3e-3
    eval_every: ClassVar[int] = 25
    min_dice: ClassVar[float] = 0.8

    @classmethod
    def kit_setup(cls) -> SegmenterSetup:
        return SegmenterSetup(cls.plugin_class(), cls.plugin_options(), tuple(cls.sizes), cls.min_size,
                              tuple(cls.bad_options), cls.train_size, cls.train_steps, cls.train_batch, cls.train_lr,
                              cls.eval_every, cls.min_dice)


add_check_tests(SegmenterContractTests, CHECKS)
