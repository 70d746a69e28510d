"""A reusable contract test kit for generator plugins (like diffusers' PipelineTesterMixin).

A plugin author subclasses :class:`GeneratorContractTests` in a pytest module::

    from cxrbench.testing import GeneratorContractTests

    class TestMyGenerator(GeneratorContractTests):
        generator_name = "my-generator"          # looked up in the plugin registry
        # or: generator_class = MyGenerator
        generator_options = {"preset": "tiny"}   # a dict (-> Options(**dict)) or an Options object
        size = 32

The kit builds a toy dataset (:func:`make_toy_split`: label 1 = a bright blob, label 0 = none,
plus sex / age metadata), fits the generator once per test class (cached for the session) and
checks the contract every generator promises:

- one uint8 (N, 1, size, size) image per condition (N = 0 included);
- the same condition (seed included) gives the same image, whatever else is in the request
  (order and batching independence); different seeds give different images;
- ``save`` / ``load`` round trip gives identical images; checkpoints are safetensors + JSON,
  loading never unpickles;
- labels are honoured (if ``capabilities.labels``): a logistic-regression probe trained on
  *real* toy images separates generated label-1 from label-0 images (AUROC > ``min_probe_auroc``);
- declared capabilities match behaviour: demographics are accepted (and ignored when not
  declared), ``needs_training`` generators refuse to generate before fit/load.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cxrbench.contracts import Condition, Generator, Split

TOY_LABELS = ("blob",)

# fitted generators shared by every test of a class (and by subclasses with the same setup)
_FIT_CACHE: dict[tuple, tuple[Generator, dict]] = {}


# --------------------------------------------------------------------------- toy data


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


def label_probe_auroc(real: Split, generated, generated_labels) -> float:
    """AUROC of a logistic-regression probe (8x8 downsampled pixels) trained on the real
    images, scored on generated images against the labels they were generated for."""
    import numpy as np
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    def feats(images):
        x = F.adaptive_avg_pool2d(images.float() / 255.0, 8)
        return x.flatten(1).numpy()

    y = real.labels[:, 0].numpy()
    keep = ~np.isnan(y)
    probe = LogisticRegression(max_iter=2000, C=1.0).fit(feats(real.images)[keep], y[keep])
    scores = probe.predict_proba(feats(generated))[:, 1]
    return float(roc_auc_score(np.asarray(generated_labels), scores))


# --------------------------------------------------------------------------- the kit


class GeneratorContractTests:
    """Subclass in pytest and set ``generator_name`` or ``generator_class``."""

    #: the registered name (looked up through cxrbench.registry.get_plugins())
    generator_name: ClassVar[str | None] = None
    #: or the class itself (takes precedence)
    generator_class: ClassVar[type | None] = None
    #: options: a dict passed as ``Options(**dict)``, an Options instance, or None
    generator_options: ClassVar[Any] = None
    #: image size the harness asks for
    size: ClassVar[int] = 32
    device: ClassVar[str] = "cpu"
    #: toy training set
    toy_n: ClassVar[int] = 256
    toy_seed: ClassVar[int] = 0
    #: probe threshold (chance = 0.5) and how many images per label value it scores
    min_probe_auroc: ClassVar[float] = 0.6
    probe_n_per_label: ClassVar[int] = 32
    #: keys fit() must return
    required_fit_stats: ClassVar[tuple[str, ...]] = ("train_seconds",)
    #: torch intra-op threads while the class runs (None = leave as is). One thread keeps tiny
    #: models fast on shared CI runners: with several threads, a busy machine makes every small
    #: op wait for a descheduled thread (measured: 0.16 s -> 5.6 s per GAN step on 2 busy cores).
    torch_threads: ClassVar[int | None] = 1

    # ---- construction helpers
    @classmethod
    def get_generator_class(cls) -> type:
        if cls.generator_class is not None:
            return cls.generator_class
        if not cls.generator_name:
            raise TypeError(f"{cls.__name__}: set generator_name or generator_class")
        from cxrbench.registry import get_plugins

        return get_plugins().load("generator", cls.generator_name)

    @classmethod
    def make_options(cls) -> Any:
        gen_cls = cls.get_generator_class()
        opts = cls.generator_options
        if opts is None:
            return None
        if isinstance(opts, dict):
            return gen_cls.Options(**opts)
        return dataclasses.replace(opts) if dataclasses.is_dataclass(opts) else opts

    @classmethod
    def make_generator(cls) -> Generator:
        return cls.get_generator_class()(cls.make_options(), size=cls.size, device=cls.device)

    @classmethod
    def toy_split(cls) -> Split:
        return make_toy_split(cls.toy_n, cls.size, cls.toy_seed)

    @classmethod
    def _cache_key(cls) -> tuple:
        return (cls.get_generator_class(), repr(cls.make_options()), cls.size, cls.device, cls.toy_n, cls.toy_seed)

    @classmethod
    def fitted(cls) -> tuple[Generator, dict]:
        key = cls._cache_key()
        if key not in _FIT_CACHE:
            gen = cls.make_generator()
            stats = gen.fit(cls.toy_split(), progress=False)
            _FIT_CACHE[key] = (gen, stats)
        return _FIT_CACHE[key]

    @staticmethod
    def cond(label: float, seed: int, **demographics) -> Condition:
        return Condition(labels=(float(label),), seed=seed, demographics=demographics)

    # ---- fixtures
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _torch_threads(cls):
        if cls.torch_threads is None:
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(int(cls.torch_threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted_generator(cls, _torch_threads) -> Generator:
        return cls.fitted()[0]

    @pytest.fixture(scope="class")
    @classmethod
    def fit_stats(cls, _torch_threads) -> dict:
        return cls.fitted()[1]

    # ---- the contract
    def test_fit_returns_stats(self, fit_stats):
        import json

        assert isinstance(fit_stats, dict)
        required = self.required_fit_stats if self.get_generator_class().capabilities.needs_training else ()
        for key in required:
            assert key in fit_stats, f"fit() stats lack {key!r}: {sorted(fit_stats)}"
        json.dumps(fit_stats)  # recordable as is

    def test_one_image_per_condition(self, fitted_generator):
        import torch

        conds = [self.cond(i % 2, seed=100 + i) for i in range(5)]
        out = fitted_generator.generate(conds)
        assert isinstance(out, torch.Tensor)
        assert out.dtype == torch.uint8
        assert tuple(out.shape) == (5, 1, self.size, self.size)
        empty = fitted_generator.generate([])
        assert tuple(empty.shape) == (0, 1, self.size, self.size) and empty.dtype == torch.uint8

    def test_same_seed_same_image(self, fitted_generator):
        import torch

        a = fitted_generator.generate([self.cond(1, seed=7), self.cond(0, seed=8)])
        b = fitted_generator.generate([self.cond(1, seed=7), self.cond(0, seed=8)])
        assert torch.equal(a, b)

    def test_order_and_batching_independence(self, fitted_generator):
        import torch

        c1, c2, c3 = self.cond(0, seed=11), self.cond(1, seed=12), self.cond(1, seed=13)
        both = fitted_generator.generate([c1, c2])
        alone = fitted_generator.generate([c2])
        reordered = fitted_generator.generate([c3, c2, c1])
        assert torch.equal(both[1], alone[0]), "image for c2 changed with the rest of the request"
        assert torch.equal(both[1], reordered[1]) and torch.equal(both[0], reordered[2])

    def test_different_seeds_differ(self, fitted_generator):
        import torch

        out = fitted_generator.generate([self.cond(1, seed=s) for s in (21, 22, 23)])
        assert not torch.equal(out[0], out[1])
        assert not torch.equal(out[1], out[2])

    def test_save_load_round_trip(self, fitted_generator, tmp_path):
        import torch

        fitted_generator.save(tmp_path)
        fresh = self.make_generator()
        fresh.load(tmp_path)
        conds = [self.cond(i % 2, seed=300 + i) for i in range(4)]
        assert torch.equal(fitted_generator.generate(conds), fresh.generate(conds))

    def test_checkpoint_is_safetensors_and_json(self, fitted_generator, tmp_path, monkeypatch):
        from safetensors import safe_open

        fitted_generator.save(tmp_path)
        files = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
        assert files, "save() wrote nothing"
        caps = fitted_generator.capabilities
        if caps.needs_training:
            assert any(p.suffix == ".safetensors" for p in files), "no .safetensors weights"
        for p in files:
            assert p.suffix in (".safetensors", ".json"), f"unexpected checkpoint file {p.name}"
            head = p.read_bytes()[:4]
            assert not head.startswith(b"\x80"), f"{p.name} looks like a pickle"
            assert not head.startswith(b"PK"), f"{p.name} looks like a torch zip archive"
            if p.suffix == ".safetensors":
                with safe_open(str(p), framework="pt") as f:
                    list(f.keys())
            else:
                import json

                json.loads(p.read_text(encoding="utf-8"))

        def refuse(*a, **k):
            raise AssertionError("load() must not unpickle")

        import torch

        monkeypatch.setattr(torch, "load", refuse)
        monkeypatch.setattr(pickle, "load", refuse)
        monkeypatch.setattr(pickle, "loads", refuse)
        fresh = self.make_generator()
        fresh.load(tmp_path)

    def test_labels_honoured(self, fitted_generator):
        import torch

        if not fitted_generator.capabilities.labels:
            pytest.skip("generator does not declare label conditioning")
        n = self.probe_n_per_label
        labels = [0.0] * n + [1.0] * n
        conds = [self.cond(y, seed=1000 + i) for i, y in enumerate(labels)]
        images = fitted_generator.generate(conds)
        real = make_toy_split(512, self.size, seed=self.toy_seed + 99, name="probe", nan_fraction=0.0)
        auroc = label_probe_auroc(real, images, labels)
        assert not math.isnan(auroc)
        assert auroc > self.min_probe_auroc, f"label probe AUROC {auroc:.3f} <= {self.min_probe_auroc}"
        assert images.dtype == torch.uint8

    def test_demographics_accepted(self, fitted_generator):
        import torch

        plain = fitted_generator.generate([self.cond(1, seed=31)])
        demo = fitted_generator.generate([self.cond(1, seed=31, sex="F", age=60, race="white")])
        odd = fitted_generator.generate([self.cond(1, seed=31, sex="unknown", age=None, unknown_key=3)])
        assert demo.shape == plain.shape == odd.shape
        if not fitted_generator.capabilities.demographics:
            assert torch.equal(plain, demo), "demographics not declared but they changed the image"
            assert torch.equal(plain, odd)

    def test_demographics_used_when_declared(self, fitted_generator):
        import torch

        if not fitted_generator.capabilities.demographics:
            pytest.skip("generator does not declare demographic conditioning")
        a = fitted_generator.generate([self.cond(1, seed=41, sex="F", age=25)])
        b = fitted_generator.generate([self.cond(1, seed=41, sex="M", age=85)])
        assert not torch.equal(a, b), "declared demographics but they do not change the image"

    def test_needs_training_refuses_before_fit(self):
        gen = self.make_generator()
        if not gen.capabilities.needs_training:
            pytest.skip("generator needs no training")
        with pytest.raises(Exception) as info:
            gen.generate([self.cond(1, seed=1)])
        msg = str(info.value).lower()
        assert "fit" in msg or "load" in msg, f"unclear error before fit: {info.value!r}"
