"""The contract kit of generator plugins (like diffusers' PipelineTesterMixin).

A plugin author subclasses :class:`GeneratorContractTests` in a pytest module::

    from cxrbench.testing import GeneratorContractTests

    class TestMyGenerator(GeneratorContractTests):
        generator_name = "my-generator"          # looked up in the plugin registry
        # or: generator_class = MyGenerator      # no install needed
        generator_options = {"preset": "tiny"}   # a dict (checked like a spec's) or an Options object
        size = 32

The kit fits the generator once per configuration on a toy split (:func:`make_toy_split`:
label 1 = a bright blob, label 0 = none, plus sex / age metadata) and runs the checks listed in
:data:`CHECKS`, each a plain function also used by ``cxrbench check``.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

from cxrbench.contracts import Condition, Generator, Split
from cxrbench.testing.base import (
    ContractKit, ContractViolation, add_check_tests, build_options, describe, fixture,
    options_or_default, require, skip,
)
from cxrbench.testing.toydata import TOY_LABELS, label_probe, label_probe_auroc, make_toy_images, make_toy_split

__all__ = ["CHECKS", "GeneratorContractTests", "GeneratorSetup", "TOY_LABELS", "expect_images", "label_probe_auroc",
           "make_toy_images", "make_toy_split"]

# fitted generators (or the error fit() raised) shared by every check of one configuration
_FIT_CACHE: dict[tuple, tuple[Generator, dict] | BaseException] = {}


@dataclass
class GeneratorSetup:
    """One generator configuration under test."""

    cls: type
    options: Any = None
    size: int = 32
    device: str = "cpu"
    toy_n: int = 256
    toy_seed: int = 0
    #: the label probe passes when the LOWER end of its AUROC's 95% interval exceeds this
    #: (chance = 0.5), on this many generated images per label value (tests/core/test_label_probe.py
    #: measures both error rates)
    min_probe_auroc: float = 0.55
    probe_n_per_label: int = 128
    #: keys fit() must return (generators that need training)
    required_fit_stats: tuple[str, ...] = ("train_seconds",)

    def make(self) -> Generator:
        return self.cls(build_options(self.cls, self.options), size=self.size, device=self.device)

    def toy_split(self) -> Split:
        return make_toy_split(self.toy_n, self.size, self.toy_seed)

    def cache_key(self) -> tuple:
        return (self.cls, repr(self.options), self.size, self.device, self.toy_n, self.toy_seed)

    def fitted(self) -> tuple[Generator, dict]:
        """The generator fitted on the toy split (once per configuration and process)."""
        key = self.cache_key()
        if key not in _FIT_CACHE:
            gen = self.make()
            try:
                _FIT_CACHE[key] = (gen, gen.fit(self.toy_split(), progress=False))
            except Exception as exc:  # noqa: BLE001 - reported by every check that needs the fit
                _FIT_CACHE[key] = exc
        got = _FIT_CACHE[key]
        if isinstance(got, BaseException):
            raise RuntimeError(f"fit() on the toy split failed: {type(got).__name__}: {got}") from got
        return got


def cond(label: float, seed: int, **demographics: Any) -> Condition:
    return Condition(labels=(float(label),), seed=seed, demographics=demographics)


def expect_images(images: Any, n: int, size: int, what: str) -> None:
    import torch

    ok = (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
          and tuple(images.shape) == (n, 1, size, size))
    require(ok, f"{what} returned {describe(images)}; expected a tensor torch.uint8 {(n, 1, size, size)}")


def _same(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def _difference(a, b) -> str:
    """How two image tensors differ, for a message."""
    if getattr(a, "shape", None) != getattr(b, "shape", None):
        return f"{describe(a)} vs {describe(b)}"
    return f"max abs pixel difference {int((a.int() - b.int()).abs().max())}"


# --------------------------------------------------------------------------- the checks


def check_options_accepted(s: GeneratorSetup, tmp: Path) -> None:
    """check_options(options, size) accepts the configured options at the configured size."""
    s.cls.check_options(options_or_default(s.cls, build_options(s.cls, s.options)), s.size)


def check_fit_returns_stats(s: GeneratorSetup, tmp: Path) -> None:
    """fit() returns a JSON-serialisable dict (with train_seconds when it needs training)."""
    _, stats = s.fitted()
    require(isinstance(stats, dict), f"fit() returned {describe(stats)}; expected a dict of stats")
    if s.cls.capabilities.needs_training:
        missing = [k for k in s.required_fit_stats if k not in stats]
        require(not missing, f"fit() stats lack {missing}; got keys {sorted(stats)}")
    try:
        json.dumps(stats)
    except (TypeError, ValueError) as exc:
        raise ContractViolation(f"fit() stats are not JSON-serialisable ({exc}): {stats!r}"[:300]) from None


def check_one_image_per_condition(s: GeneratorSetup, tmp: Path) -> None:
    """generate() returns uint8 (N, 1, size, size), one image per condition, N = 0 included."""
    gen, _ = s.fitted()
    expect_images(gen.generate([cond(i % 2, seed=100 + i) for i in range(5)]), 5, s.size, "generate(5 conditions)")
    expect_images(gen.generate([]), 0, s.size, "generate([])")


def check_same_seed_same_image(s: GeneratorSetup, tmp: Path) -> None:
    """The same conditions (seeds included) give the same images."""
    gen, _ = s.fitted()
    a = gen.generate([cond(1, seed=7), cond(0, seed=8)])
    b = gen.generate([cond(1, seed=7), cond(0, seed=8)])
    require(_same(a, b), f"two generate() calls with the same conditions and seeds gave different images "
                         f"({_difference(a, b)}); draw noise from torch.Generator().manual_seed(condition.seed)")


def check_order_and_batching_independence(s: GeneratorSetup, tmp: Path) -> None:
    """Image i depends only on conditions[i]: not on the rest of the request or its order."""
    gen, _ = s.fitted()
    c1, c2, c3 = cond(0, seed=11), cond(1, seed=12), cond(1, seed=13)
    both, alone, reordered = gen.generate([c1, c2]), gen.generate([c2]), gen.generate([c3, c2, c1])
    require(_same(both[1], alone[0]), "the image for a condition changed when generated alone instead of "
                                      "with another condition in the request")
    require(_same(both[1], reordered[1]) and _same(both[0], reordered[2]),
            "the image for a condition changed when the request was reordered")


def check_different_seeds_differ(s: GeneratorSetup, tmp: Path) -> None:
    """Different seeds (same labels) give different images."""
    gen, _ = s.fitted()
    out = gen.generate([cond(1, seed=x) for x in (21, 22, 23)])
    require(not _same(out[0], out[1]) and not _same(out[1], out[2]),
            "seeds 21, 22, 23 with the same labels gave identical images; the seed must vary the sample")


def check_save_load_round_trip(s: GeneratorSetup, tmp: Path) -> None:
    """save() then load() into a fresh instance gives identical images."""
    gen, _ = s.fitted()
    gen.save(Path(tmp))
    fresh = s.make()
    fresh.load(Path(tmp))
    conds = [cond(i % 2, seed=300 + i) for i in range(4)]
    a, b = gen.generate(conds), fresh.generate(conds)
    require(_same(a, b), f"after save()/load() the images differ ({_difference(a, b)})")


def check_checkpoint_is_safetensors_and_json(s: GeneratorSetup, tmp: Path) -> None:
    """save() writes only .safetensors and .json files, and load() never unpickles."""
    import torch

    gen, _ = s.fitted()
    gen.save(Path(tmp))
    files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
    if s.cls.capabilities.needs_training:
        require(files, "save() wrote nothing; a generator that needs training must save its weights")
        require(any(p.suffix == ".safetensors" for p in files),
                f"save() wrote no .safetensors weights: {[p.name for p in files]}")
    for p in files:
        require(p.suffix in (".safetensors", ".json"),
                f"save() wrote {p.name!r}; only .safetensors and .json are allowed")
        require(_is_safetensors(p) if p.suffix == ".safetensors" else _is_json(p),
                f"{p.name} is not a valid {p.suffix[1:]} file (a pickle under that name?)")

    def refuse(*a, **k):
        raise ContractViolation("load() unpickled (torch.load / pickle.load); use safetensors + JSON")

    with mock.patch.object(torch, "load", refuse), mock.patch.object(pickle, "load", refuse), \
            mock.patch.object(pickle, "loads", refuse):
        s.make().load(Path(tmp))


def check_labels_honoured(s: GeneratorSetup, tmp: Path) -> None:
    """Labels are honoured: a probe trained on real toy images separates generated label 1 from 0,
    with the lower end of its AUROC's 95% interval above ``min_probe_auroc``."""
    if not s.cls.capabilities.labels:
        skip("generator does not declare label conditioning (capabilities.labels=False)")
    gen, _ = s.fitted()
    n = s.probe_n_per_label
    labels = [0.0] * n + [1.0] * n
    images = gen.generate([cond(y, seed=1000 + i) for i, y in enumerate(labels)])
    expect_images(images, 2 * n, s.size, f"generate({2 * n} conditions)")
    real = make_toy_split(512, s.size, seed=s.toy_seed + 99, name="probe", nan_fraction=0.0)
    probe = label_probe(real, images, labels)
    lo, hi = probe["ci"]
    require(not math.isnan(lo) and lo > s.min_probe_auroc,
            f"label probe AUROC {probe['auroc']:.3f} [95% CI {lo:.3f}, {hi:.3f}] on {2 * n} images: the interval's "
            f"lower end must exceed {s.min_probe_auroc} (0.5 = labels ignored)")


def check_demographics_accepted(s: GeneratorSetup, tmp: Path) -> None:
    """Demographics (known, unknown, odd keys) are accepted, and ignored unless declared."""
    gen, _ = s.fitted()
    plain = gen.generate([cond(1, seed=31)])
    demo = gen.generate([cond(1, seed=31, sex="F", age=60, race="white")])
    odd = gen.generate([cond(1, seed=31, sex="unknown", age=None, unknown_key=3)])
    require(demo.shape == plain.shape == odd.shape,
            f"shapes differ with demographics: {describe(plain)}, {describe(demo)}, {describe(odd)}")
    # report only the cause: a generator that is not deterministic changes the image whatever the
    # demographics, and blaming them would send its author the wrong way
    require(_same(plain, gen.generate([cond(1, seed=31)])),
            "generate() gave another image for the same condition and seed (no demographics involved): draw "
            "noise from torch.Generator().manual_seed(condition.seed), not the global RNG")
    if not s.cls.capabilities.demographics:
        require(_same(plain, demo) and _same(plain, odd),
                "demographics are not declared (capabilities.demographics=False) but they changed the image")


def check_demographics_used_when_declared(s: GeneratorSetup, tmp: Path) -> None:
    """A generator that declares demographics changes the image when they change."""
    if not s.cls.capabilities.demographics:
        skip("generator does not declare demographic conditioning")
    gen, _ = s.fitted()
    a = gen.generate([cond(1, seed=41, sex="F", age=25)])
    b = gen.generate([cond(1, seed=41, sex="M", age=85)])
    require(not _same(a, b), "declares demographics (capabilities.demographics=True) but sex F/25 and M/85 "
                             "gave the same image")


def check_needs_training_refuses_before_fit(s: GeneratorSetup, tmp: Path) -> None:
    """A generator that needs training raises an error naming fit/load when asked to generate first."""
    if not s.cls.capabilities.needs_training:
        skip("generator needs no training")
    try:
        s.make().generate([cond(1, seed=1)])
    except Exception as exc:  # noqa: BLE001 - any error type, but it must say what to do
        msg = str(exc).lower()
        require("fit" in msg or "load" in msg, f"the error before fit() does not mention fit or load: {exc!r}")
        return
    raise ContractViolation("generate() before fit()/load() returned images; it must raise an error naming fit or load")


CHECKS = [check_options_accepted, check_fit_returns_stats, check_one_image_per_condition,
          check_same_seed_same_image, check_order_and_batching_independence, check_different_seeds_differ,
          check_save_load_round_trip, check_checkpoint_is_safetensors_and_json, check_labels_honoured,
          check_demographics_accepted, check_demographics_used_when_declared,
          check_needs_training_refuses_before_fit]


# --------------------------------------------------------------------------- the pytest kit


class GeneratorContractTests(ContractKit, kind="generator"):
    """Subclass in pytest and set ``generator_name`` or ``generator_class`` (and
    ``generator_options``)."""

    #: image size the harness asks for
    size: ClassVar[int] = 32
    device: ClassVar[str] = "cpu"
    #: toy training set
    toy_n: ClassVar[int] = 256
    toy_seed: ClassVar[int] = 0
    #: probe threshold (chance = 0.5) and how many images per label value it scores
    min_probe_auroc: ClassVar[float] = 0.55
    probe_n_per_label: ClassVar[int] = 128
    #: keys fit() must return
    required_fit_stats: ClassVar[tuple[str, ...]] = ("train_seconds",)

    @classmethod
    def get_generator_class(cls) -> type:
        return cls.plugin_class()

    @classmethod
    def kit_setup(cls) -> GeneratorSetup:
        return GeneratorSetup(cls.plugin_class(), cls.plugin_options(), cls.size, cls.device, cls.toy_n,
                              cls.toy_seed, cls.min_probe_auroc, cls.probe_n_per_label, tuple(cls.required_fit_stats))

    @classmethod
    def make_options(cls) -> Any:
        return build_options(cls.plugin_class(), cls.plugin_options())

    @classmethod
    def make_generator(cls) -> Generator:
        return cls.kit_setup().make()

    @classmethod
    def toy_split(cls) -> Split:
        return cls.kit_setup().toy_split()

    @classmethod
    def fitted(cls) -> tuple[Generator, dict]:
        return cls.kit_setup().fitted()

    cond = staticmethod(cond)

    @fixture(scope="class")
    @classmethod
    def fitted_generator(cls, _torch_threads) -> Generator:
        """The generator fitted on the toy split (for extra tests of a subclass)."""
        return cls.fitted()[0]

    @fixture(scope="class")
    @classmethod
    def fit_stats(cls, _torch_threads) -> dict:
        return cls.fitted()[1]


add_check_tests(GeneratorContractTests, CHECKS)


def _is_safetensors(path: Path) -> bool:
    """The safetensors layout: an 8-byte little-endian header length, then that many bytes of a
    JSON object. (A first byte of 0x80 is no sign of a pickle here: it is the low byte of the
    header length.)"""
    import struct

    data = path.read_bytes()
    if len(data) < 8:
        return False
    (n,) = struct.unpack("<Q", data[:8])
    try:
        return 8 + n <= len(data) and isinstance(json.loads(data[8 : 8 + n]), dict)
    except ValueError:
        return False


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (ValueError, UnicodeDecodeError):
        return False
