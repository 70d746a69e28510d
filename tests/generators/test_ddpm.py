"""ddpm: the shared generator contract plus its own options (samplers, guidance, resume)."""

import json

import pytest
import torch

from cxrbench.contracts import Condition
from cxrbench.errors import ConfigError, PluginError
from cxrbench.plugins.generators.ddpm import PRESETS, DDPMGenerator, DDPMOptions
from cxrbench.sheets import contact_sheet
from cxrbench.testing import GeneratorContractTests

FULL_STATS = ("train_seconds", "steps", "images_per_s", "final_loss", "peak_memory_mb")


class TestDDPMContract(GeneratorContractTests):
    generator_name = "ddpm"
    generator_options = {"preset": "tiny"}
    size = 32
    required_fit_stats = FULL_STATS


def _fitted():
    return TestDDPMContract.fitted()[0]


def _conds(n, start=0):
    return [Condition(labels=(float(i % 2),), seed=start + i) for i in range(n)]


def _quick(**kw):
    """A tiny generator trained for a handful of steps (mechanics only, not quality)."""
    kw.setdefault("train_steps", 6)
    return DDPMGenerator(DDPMOptions(preset="tiny", **kw), size=16)


def test_registry_resolves_class():
    from cxrbench.registry import get_plugins

    assert get_plugins().load("generator", "ddpm") is DDPMGenerator


def test_options_override_preset_and_errors():
    gen = DDPMGenerator(DDPMOptions(preset="tiny", sampling_steps=7, block_out_channels=[16, 32]))
    assert gen.cfg["sampling_steps"] == 7
    assert gen.cfg["block_out_channels"] == (16, 32)
    assert gen.cfg["lr"] == PRESETS["tiny"]["lr"]
    assert gen.native_size == PRESETS["tiny"]["resolution"]
    with pytest.raises(ConfigError, match="unknown preset"):
        DDPMGenerator(DDPMOptions(preset="huge"))
    with pytest.raises(ConfigError, match="sampler"):
        DDPMGenerator(DDPMOptions(preset="tiny", sampler="euler"))
    with pytest.raises(ConfigError, match="resolution"):
        DDPMGenerator(DDPMOptions(preset="tiny", resolution=20))


def test_default_preset_is_small():
    assert DDPMGenerator().cfg["preset"] == "small"
    assert DDPMGenerator().native_size == 32


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("sampler", ["dpmsolver++", "ddpm", "sde-dpmsolver++"])
def test_other_samplers_are_reproducible_and_batch_independent(sampler, tmp_path):
    _fitted().save(tmp_path)
    gen = DDPMGenerator(DDPMOptions(preset="tiny", sampler=sampler, sampling_steps=8), size=32)
    gen.load(tmp_path)
    assert gen.cfg["sampler"] == sampler and gen.cfg["sampling_steps"] == 8
    c = _conds(3, start=50)
    a = gen.generate(c)
    b = gen.generate([c[2], c[1]])
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[0])
    assert not torch.equal(a[1], a[2])


def test_guidance_scale_changes_images(tmp_path):
    _fitted().save(tmp_path)
    outs = {}
    for scale in (0.0, 1.0, 4.0):
        gen = DDPMGenerator(DDPMOptions(preset="tiny", cfg_scale=scale), size=32)
        gen.load(tmp_path)
        outs[scale] = gen.generate(_conds(2, start=70))
    assert not torch.equal(outs[0.0], outs[1.0])
    assert not torch.equal(outs[1.0], outs[4.0])
    # unconditional sampling ignores the label: only the seed matters
    gen = DDPMGenerator(DDPMOptions(preset="tiny", cfg_scale=0.0), size=32)
    gen.load(tmp_path)
    same_seed = [Condition(labels=(0.0,), seed=5), Condition(labels=(1.0,), seed=5)]
    out = gen.generate(same_seed)
    assert torch.equal(out[0], out[1])


def test_wrong_label_count_is_a_clear_error():
    with pytest.raises(PluginError, match="label"):
        _fitted().generate([Condition(labels=(1.0, 0.0), seed=1)])


def test_config_json_holds_encoder_and_config(tmp_path):
    _fitted().save(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["generator"] == "ddpm"
    assert data["encoder"]["label_names"] == ["blob"]
    assert data["encoder"]["sex"] is True and data["encoder"]["age_range"]
    assert data["config"]["preset"] == "tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "ema.safetensors", "model.safetensors"]


def test_resume_continues_exactly(toy_split, tmp_path):
    straight = _quick(train_steps=6)
    straight.fit(toy_split, progress=False)

    first = _quick(train_steps=4, checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=2)
    first.fit(toy_split, progress=False)
    state = json.loads((tmp_path / "ck" / "train_state.json").read_text())
    assert state["step"] == 4
    assert (tmp_path / "ck" / "optimizer.safetensors").exists()

    resumed = _quick(train_steps=6, checkpoint_dir=str(tmp_path / "ck"))
    stats = resumed.fit(toy_split, progress=False)
    assert stats["resumed_from_step"] == 4 and stats["steps"] == 6 and stats["steps_this_run"] == 2
    c = _conds(2)
    assert torch.equal(straight.generate(c), resumed.generate(c))
    # a finished run resumes to nothing
    again = _quick(train_steps=6, checkpoint_dir=str(tmp_path / "ck")).fit(toy_split, progress=False)
    assert again["steps_this_run"] == 0


def test_resume_refuses_other_data_or_config(toy_split, other_toy_split, tmp_path):
    _quick(train_steps=2, checkpoint_dir=str(tmp_path)).fit(toy_split, progress=False)
    with pytest.raises(ConfigError, match="other training data"):
        _quick(train_steps=3, checkpoint_dir=str(tmp_path)).fit(other_toy_split, progress=False)
    with pytest.raises(ConfigError, match="configuration"):
        _quick(train_steps=3, lr=1e-4, checkpoint_dir=str(tmp_path)).fit(toy_split, progress=False)


def test_time_budget_stops_training(toy_split):
    gen = _quick(train_steps=1000, max_train_minutes=1e-9)
    stats = gen.fit(toy_split, progress=False)
    assert stats["stopped_by_time_budget"] is True
    assert stats["steps"] < 1000
    # the contract a truncated fit reports to the runner (which keys and marks it apart)
    assert stats["truncated"] is True and stats["steps_requested"] == 1000
    full = _quick(train_steps=2).fit(toy_split, progress=False)
    assert full["truncated"] is False and full["steps"] == full["steps_requested"] == 2
    assert gen.generate(_conds(1)).shape == (1, 1, 16, 16)


def test_contact_sheet(tmp_path):
    from PIL import Image

    conditions = [Condition(labels=(float(v),), seed=j) for v in (0, 1) for j in range(4)]
    images = _fitted().generate(conditions)
    path = contact_sheet(images, conditions, ["blob"], tmp_path / "sheet.png", per_row=4)
    img = Image.open(path)
    assert img.mode == "L"
    assert img.height >= 2 * 32 and img.width >= 4 * 32


def test_parameter_counts_grow_with_preset():
    counts = {}
    for preset in ("tiny", "small"):
        gen = DDPMGenerator(DDPMOptions(preset=preset))
        gen._seeded_build(3)
        counts[preset] = gen.parameter_counts()["model"]
    assert counts["tiny"] < 1_000_000 < 2_000_000 < counts["small"] < 8_000_000


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_fit_generate_and_cpu_reload(toy_split, tmp_path):
    gen = DDPMGenerator(DDPMOptions(preset="tiny", train_steps=20), size=16, device="cuda")
    stats = gen.fit(toy_split, progress=False)
    assert stats["peak_memory_mb"] > 0 and stats["device"] == "cuda"
    c = _conds(3)
    a, b = gen.generate(c), gen.generate(c[1:])
    assert a.device.type == "cpu" and a.dtype == torch.uint8
    assert (a[1:].int() - b.int()).abs().max() <= 1
    gen.save(tmp_path)
    cpu = DDPMGenerator(DDPMOptions(preset="tiny"), size=16)
    cpu.load(tmp_path)
    assert cpu.generate(c).shape == (3, 1, 16, 16)


def _saturated_fraction(images):
    return float(((images == 0) | (images == 255)).float().mean())


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("sampler", ["dpmsolver++", "ddim", "ddpm", "sde-dpmsolver++"])
def test_samplers_do_not_saturate(sampler, tmp_path):
    """Regression: DPM-Solver++ on the cosine schedule once put 99.9% of pixels at 0 or 255.

    Its data prediction at t=T divides by alpha_T ~ 0; x0 must be thresholded. The toy set's
    images have almost no pure black/white pixels, so a sampler that saturates is a bug.
    """
    _fitted().save(tmp_path)
    gen = DDPMGenerator(DDPMOptions(preset="tiny", sampler=sampler, sampling_steps=10), size=32)
    gen.load(tmp_path)
    frac = _saturated_fraction(gen.generate(_conds(8, start=300)))
    assert frac < 0.25, f"{sampler}: {frac:.1%} of pixels saturated at 0/255"

