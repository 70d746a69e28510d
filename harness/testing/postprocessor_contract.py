"""The contract kit of post-processor plugins (one step of the ordered chain).

    from cxrbench.testing import PostprocessorContractTests

    class TestMyStep(PostprocessorContractTests):
        postprocessor_name = "my-step"           # or: postprocessor_class = MyStep
        postprocessor_options = {"strength": 0.5}
        size = 32
        may_drop = False            # True for a filter (it may drop images, never reorder them)
        batch_independent = True    # False when an image's result depends on the rest of the batch

The checks (:data:`CHECKS`) run the step on toy batches (:func:`toy_batch`: blob / no-blob
toy radiographs plus one constant image, each with its own condition).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cxrbench.contracts import Condition, Postprocessor, SyntheticBatch
from cxrbench.testing.base import (
    ContractKit, ContractViolation, add_check_tests, build_options, describe, options_or_default, require,
    require_bad_options_rejected, skip,
)
from cxrbench.testing.toydata import make_toy_images

__all__ = ["CHECKS", "PostprocessorContractTests", "PostprocessorSetup", "check_batch_output", "toy_batch"]


@dataclass
class PostprocessorSetup:
    """One post-processor configuration under test."""

    cls: type
    options: Any = None
    size: int = 32
    device: str = "cpu"
    #: a filter may drop images (in order); other steps must return one image per input image
    may_drop: bool = False
    #: each image's result depends only on that image (and its condition)
    batch_independent: bool = True
    #: images in the toy batch
    n: int = 6
    #: (options, size) pairs that must be refused with a ConfigError
    bad_options: tuple = ()

    def make(self) -> Postprocessor:
        step = self.cls(build_options(self.cls, self.options), device=self.device)
        if getattr(self.cls, "needs_real_train", False):
            # a learned step (proxy-filter) first sees a real training split: the kit's toy split
            import tempfile

            from cxrbench.testing.toydata import make_toy_split

            with tempfile.TemporaryDirectory() as tmp:
                step.prepare(make_toy_split(128, self.size, seed=5), cache_dir=Path(tmp), progress=False)
        return step


def toy_batch(n: int, size: int, *, num_labels: int = 1, seed: int = 0, constant: bool = True) -> SyntheticBatch:
    """``n`` toy images (labels alternate 0 / 1; the last one constant grey when ``constant``),
    each with a condition of its own (distinct seeds, some demographics)."""
    import torch

    labels = [float(i % 2) for i in range(n)]
    images = make_toy_images(labels, size, seed) if n else torch.zeros((0, 1, size, size), dtype=torch.uint8)
    if constant and n >= 2:
        images[-1] = 128
    conds = [Condition(labels=tuple([y] * num_labels), seed=1000 * (seed + 1) + i,
                       demographics={"sex": "F" if i % 3 else "M", "age": 30 + i}) for i, y in enumerate(labels)]
    return SyntheticBatch(images, conds)


def _copy(batch: SyntheticBatch) -> SyntheticBatch:
    return SyntheticBatch(batch.images.clone(), list(batch.conditions))


def _kept(before: list[Condition], after: list[Condition]) -> list[int] | None:
    """Indices into ``before`` of the conditions in ``after``, when ``after`` is ``before`` with
    some items left out (same order, same values); None otherwise."""
    out, j = [], 0
    for c in after:
        while j < len(before) and before[j] != c:
            j += 1
        if j == len(before):
            return None
        out.append(j)
        j += 1
    return out


def check_batch_output(before: SyntheticBatch, after: Any, size: int, *, may_drop: bool,
                       who: str = "the step") -> list[int]:
    """The output contract of one call: a SyntheticBatch of uint8 (N', 1, size, size) images
    whose conditions are the input's, in order (N' = N, or N' <= N for a filter). Returns the
    indices of the kept input images."""
    import torch

    n = len(before.conditions)
    require(isinstance(after, SyntheticBatch), f"{who} returned {describe(after)}; expected a SyntheticBatch")
    images = after.images
    m = len(after.conditions)
    ok = isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4 \
        and tuple(images.shape[1:]) == (1, size, size)
    require(ok, f"{who} returned images {describe(images)}; expected a tensor torch.uint8 (N, 1, {size}, {size})")
    require(int(images.shape[0]) == m, f"{who} returned {int(images.shape[0])} images for {m} conditions")
    if not may_drop:
        require(m == n, f"{who} returned {m} images for {n} input images; a step that is not a filter keeps "
                        "every image (declare may_drop for a filter)")
    require(m <= n, f"{who} returned {m} images for {n} input images; a step may only keep or drop images")
    kept = _kept(list(before.conditions), list(after.conditions))
    if kept is None or not (may_drop or kept == list(range(n))):
        p = next((i for i, c in enumerate(after.conditions) if i >= n or c != before.conditions[i]), 0)
        raise ContractViolation(
            f"{who} changed the conditions (a step never reorders or relabels images): input seeds "
            f"{[c.seed for c in before.conditions]}, output seeds {[getattr(c, 'seed', c) for c in after.conditions]}; "
            f"output {p} is {_brief(after.conditions[p])}, input {p} was "
            f"{_brief(before.conditions[p]) if p < n else 'none'}")
    return kept


def _brief(c: Any) -> str:
    return f"seed {c.seed} labels {tuple(c.labels)}" if isinstance(c, Condition) else describe(c)


# --------------------------------------------------------------------------- the checks


def check_options_accepted(s: PostprocessorSetup, tmp: Path) -> None:
    """check_options(options, size) accepts the configured options at the configured size."""
    s.cls.check_options(options_or_default(s.cls, build_options(s.cls, s.options)), s.size)


def check_bad_options_rejected(s: PostprocessorSetup, tmp: Path) -> None:
    """Every (options, size) in bad_options is refused with a one-line ConfigError."""
    require_bad_options_rejected(s.cls, s.bad_options)


def check_returns_batch(s: PostprocessorSetup, tmp: Path) -> None:
    """Returns a SyntheticBatch: uint8 (N, 1, H, W) at the input size, conditions kept in order
    (a filter: a subsequence of them)."""
    before = toy_batch(s.n, s.size)
    check_batch_output(before, s.make()(_copy(before)), s.size, may_drop=s.may_drop)


def check_deterministic(s: PostprocessorSetup, tmp: Path) -> None:
    """The same batch gives the same output, on the same instance and on a fresh one."""
    import torch

    before = toy_batch(s.n, s.size)
    step = s.make()
    a, b, c = step(_copy(before)), step(_copy(before)), s.make()(_copy(before))
    check_batch_output(before, a, s.size, may_drop=s.may_drop)
    for other, what in ((b, "a second call"), (c, "a fresh instance")):
        check_batch_output(before, other, s.size, may_drop=s.may_drop, who=what)
        require(a.conditions == other.conditions, f"{what} kept other images than the first call: seeds "
                f"{[x.seed for x in a.conditions]} vs {[x.seed for x in other.conditions]}")
        if not torch.equal(a.images, other.images):
            diff = int((a.images.int() - other.images.int()).abs().max())
            raise ContractViolation(f"{what} on the same batch gave other images (max abs pixel difference {diff})")


def check_input_not_mutated(s: PostprocessorSetup, tmp: Path) -> None:
    """The input batch (its images tensor and its conditions list) is left unchanged."""
    import torch

    batch = toy_batch(s.n, s.size)
    images, conds = batch.images.clone(), list(batch.conditions)
    s.make()(batch)
    require(torch.equal(batch.images, images), "the step modified its input images in place "
            f"({int((batch.images != images).sum())} pixels changed); clone before writing")
    require(batch.conditions == conds, f"the step modified its input conditions list: {len(conds)} -> "
                                       f"{len(batch.conditions)} items")


def check_empty_batch(s: PostprocessorSetup, tmp: Path) -> None:
    """An empty batch gives an empty batch of uint8 (0, 1, H, W)."""
    check_batch_output(toy_batch(0, s.size), s.make()(toy_batch(0, s.size)), s.size, may_drop=s.may_drop,
                       who="the step on an empty batch")


def check_batch_independent(s: PostprocessorSetup, tmp: Path) -> None:
    """Each image's result (and, for a filter, whether it is kept) is the same alone, in the
    batch and in a reversed batch."""
    import torch

    if not s.batch_independent:
        skip("declared batch-dependent (batch_independent = False)")
    before = toy_batch(s.n, s.size)
    step = s.make()
    out = step(_copy(before))
    kept = check_batch_output(before, out, s.size, may_drop=s.may_drop)
    for i in range(s.n):
        alone_in = SyntheticBatch(before.images[i: i + 1].clone(), [before.conditions[i]])
        alone = step(alone_in)
        alone_kept = check_batch_output(alone_in, alone, s.size, may_drop=s.may_drop,
                                        who=f"the step on image {i} alone")
        require(bool(alone_kept) == (i in kept), f"image {i} was {'kept' if alone_kept else 'dropped'} alone but "
                f"{'kept' if i in kept else 'dropped'} in the batch; filter each image on its own")
        if alone_kept:
            j = kept.index(i)
            diff = int((alone.images[0].int() - out.images[j].int()).abs().max())
            require(diff == 0, f"image {i} came out different alone than in a batch of {s.n} (max abs difference "
                               f"{diff}); set batch_independent = False if that is intended")
    rev_in = SyntheticBatch(before.images.flip(0).clone(), list(reversed(before.conditions)))
    rev = step(rev_in)
    check_batch_output(rev_in, rev, s.size, may_drop=s.may_drop, who="the step on the reversed batch")
    require(torch.equal(rev.images.flip(0), out.images), "the reversed batch did not give the reversed output")


CHECKS = [check_options_accepted, check_bad_options_rejected, check_returns_batch, check_deterministic,
          check_input_not_mutated, check_empty_batch, check_batch_independent]


# --------------------------------------------------------------------------- the pytest kit


class PostprocessorContractTests(ContractKit, kind="postprocessor"):
    """Subclass in pytest and set ``postprocessor_name`` or ``postprocessor_class`` (and
    ``postprocessor_options``)."""

    size: ClassVar[int] = 32
    device: ClassVar[str] = "cpu"
    may_drop: ClassVar[bool] = False
    batch_independent: ClassVar[bool] = True
    #: (options, size) pairs that check_options (or the Options) must refuse with a ConfigError
    bad_options: ClassVar[tuple] = ()

    @classmethod
    def kit_setup(cls) -> PostprocessorSetup:
        return PostprocessorSetup(cls.plugin_class(), cls.plugin_options(), cls.size, cls.device, cls.may_drop,
                                  cls.batch_independent, bad_options=tuple(cls.bad_options))


add_check_tests(PostprocessorContractTests, CHECKS)
