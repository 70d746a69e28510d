"""gan: the shared generator contract plus its own parts (DiffAugment, R1, resume)."""

import json

import pytest
import torch

from cxrbench.contracts import Condition
from cxrbench.errors import ConfigError
from cxrbench.plugins.generators.gan import PRESETS, GANGenerator, GANOptions, diff_augment
from cxrbench.testing import GeneratorContractTests

FULL_STATS = ("train_seconds", "steps", "images_per_s", "final_loss", "peak_memory_mb")


class TestGANContract(GeneratorContractTests):
    generator_name = "gan"
    generator_options = {"preset": "tiny"}
    size = 32
    required_fit_stats = FULL_STATS + ("final_d_loss", "final_g_loss")


def _fitted():
    return TestGANContract.fitted()[0]


def _conds(n, start=0):
    return [Condition(labels=(float(i % 2),), seed=start + i) for i in range(n)]


def _quick(**kw):
    kw.setdefault("train_steps", 6)
    return GANGenerator(GANOptions(preset="tiny", **kw), size=16)


def test_registry_resolves_class():
    from cxrbench.registry import get_plugins

    assert get_plugins().load("generator", "gan") is GANGenerator


def test_options_override_preset_and_errors():
    gen = GANGenerator(GANOptions(preset="tiny", z_dim=8, betas=[0.5, 0.999]))
    assert gen.cfg["z_dim"] == 8 and gen.cfg["betas"] == (0.5, 0.999)
    assert gen.cfg["lr_g"] == PRESETS["tiny"]["lr_g"]
    with pytest.raises(ConfigError, match="diffaug"):
        GANGenerator(GANOptions(preset="tiny", diffaug="translation,rotate"))
    with pytest.raises(ConfigError, match="unknown preset"):
        GANGenerator(GANOptions(preset="giant"))
    with pytest.raises(ConfigError, match="d_steps must be an integer >= 1"):
        GANGenerator(GANOptions(preset="tiny", d_steps=0))


def test_diff_augment_is_seeded_differentiable_and_shape_preserving():
    x = (torch.rand(4, 1, 16, 16) * 2 - 1).requires_grad_(True)
    policy = ("translation", "cutout", "color")
    a = diff_augment(x, policy, torch.Generator().manual_seed(0))
    b = diff_augment(x, policy, torch.Generator().manual_seed(0))
    c = diff_augment(x, policy, torch.Generator().manual_seed(1))
    assert a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # cutout zeroes about a quarter of each image; translation keeps the content otherwise
    only_cut = diff_augment(torch.ones(8, 1, 16, 16), ("cutout",), torch.Generator().manual_seed(2))
    zeros = (only_cut == 0).float().mean().item()
    assert 0.05 < zeros <= 0.25
    assert torch.equal(diff_augment(x, (), torch.Generator()), x)


def test_training_step_reports_losses_with_and_without_r1(toy_split):
    gen = _quick(train_steps=2, r1_every=2)  # step 0 applies R1, step 1 does not
    stats = gen.fit(toy_split, progress=False)
    for key in ("final_d_loss", "final_g_loss", "final_d_real", "final_d_fake"):
        assert key in stats and stats[key] == stats[key]  # present and not NaN
    assert stats["parameters"]["generator"] > 0 and stats["parameters"]["discriminator"] > 0


def test_generator_output_is_batch_independent_in_training_mode(toy_split):
    """Conditional GroupNorm: no batch statistics, so even train-mode outputs are per-image."""
    gen = _quick(train_steps=1)
    gen.fit(toy_split, progress=False)
    gen.G.train()
    z = torch.randn(4, gen.cfg["z_dim"])
    c = torch.tensor([[1.0, 1, 0, 1, 0.5]] * 4)[:, : gen.encoder.dim]
    with torch.no_grad():
        full = gen.G(z, c)
        one = gen.G(z[2:3], c[2:3])
    assert torch.allclose(full[2:3], one, atol=1e-5)


def test_save_writes_generator_only_checkpoint_dir_keeps_discriminator(toy_split, tmp_path):
    gen = _quick(train_steps=2, checkpoint_dir=str(tmp_path / "ck"))
    gen.fit(toy_split, progress=False)
    gen.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "config.json", "ema.safetensors", "model.safetensors"]
    ck = sorted(p.name for p in (tmp_path / "ck").iterdir())
    for name in ("discriminator.safetensors", "optimizer_d.safetensors", "optimizer_g.safetensors",
                 "train_state.json", "config.json", "ema.safetensors", "model.safetensors"):
        assert name in ck
    # a training checkpoint directory is also a loadable generator
    fresh = GANGenerator(GANOptions(preset="tiny"), size=16)
    fresh.load(tmp_path / "ck")
    assert torch.equal(fresh.generate(_conds(2)), gen.generate(_conds(2)))


def test_resume_continues_exactly(toy_split, tmp_path):
    straight = _quick(train_steps=6)
    straight.fit(toy_split, progress=False)
    _quick(train_steps=3, checkpoint_dir=str(tmp_path)).fit(toy_split, progress=False)
    resumed = _quick(train_steps=6, checkpoint_dir=str(tmp_path))
    stats = resumed.fit(toy_split, progress=False)
    assert stats["resumed_from_step"] == 3 and stats["steps"] == 6
    assert torch.equal(straight.generate(_conds(3)), resumed.generate(_conds(3)))
    state = json.loads((tmp_path / "train_state.json").read_text())
    assert state["step"] == 6


def test_gen_batch_size_changes_images_at_most_by_rounding(tmp_path):
    """Bit-identity is promised for a fixed gen_batch_size (every chunk is padded to it);
    another batch size may pick other kernels: at most a rounding difference."""
    _fitted().save(tmp_path)
    other = GANGenerator(GANOptions(preset="tiny", gen_batch_size=3), size=32)
    other.load(tmp_path)
    assert other.cfg["gen_batch_size"] == 3
    c = _conds(7, start=500)
    diff = (other.generate(c).int() - _fitted().generate(c).int()).abs()
    assert diff.max().item() <= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_fit_generate_and_cpu_reload(toy_split, tmp_path):
    gen = GANGenerator(GANOptions(preset="tiny", train_steps=20), size=16, device="cuda")
    stats = gen.fit(toy_split, progress=False)
    assert stats["peak_memory_mb"] > 0 and stats["device"] == "cuda"
    c = _conds(3)
    a, b = gen.generate(c), gen.generate(c[1:])
    assert a.device.type == "cpu" and a.dtype == torch.uint8
    assert (a[1:].int() - b.int()).abs().max() <= 1
    gen.save(tmp_path)
    cpu = GANGenerator(GANOptions(preset="tiny"), size=16)
    cpu.load(tmp_path)
    assert cpu.generate(c).shape == (3, 1, 16, 16)


def test_minibatch_std_matches_its_definition():
    from cxrbench.plugins.generators.gan import _minibatch_std

    h = torch.randn(8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = _minibatch_std(h, group=4)
    assert out.shape == (8, 1, 2, 2)
    # groups are images {i, i+2, i+4, i+6} for i in 0..1 (reshape (group, b/group, ...))
    for i in range(2):
        members = h[i::2]
        expected = members.std(dim=0, unbiased=False).mean()
        for j in range(i, 8, 2):
            assert torch.allclose(out[j], expected.expand(1, 2, 2), atol=1e-5)
    # identical images in a group: (near) zero, i.e. the signal D uses against mode collapse
    same = h[:1].repeat(4, 1, 1, 1)
    assert float(_minibatch_std(same).max()) < 1e-3
    # an odd batch falls back to the largest group size that divides it
    assert _minibatch_std(torch.randn(6, 3, 2, 2), group=4).shape == (6, 1, 2, 2)


@pytest.mark.parametrize("d_steps", [1, 3])
def test_d_steps_discriminator_updates_per_generator_update(toy_split, d_steps):
    gen = _quick(train_steps=2, d_steps=d_steps)
    gen.fit(toy_split, progress=False)
    step_of = lambda opt: int(next(iter(opt.state.values()))["step"])  # noqa: E731
    assert step_of(gen.opt_g) == 2 and step_of(gen.opt_d) == 2 * d_steps
