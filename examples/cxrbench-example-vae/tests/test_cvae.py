"""The `cvae` example passes cxrbench's generator contract kit, plus checks of its own.

Run from this folder with the package importable (``pip install -e .`` or ``PYTHONPATH=src``)::

    python -m pytest tests
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from cxrbench.contracts import Condition
from cxrbench.errors import ConfigError
from cxrbench.testing import GeneratorContractTests, make_toy_split

from cxrbench_example_vae import plugin
from cxrbench_example_vae.generator import CVAEGenerator, CVAEOptions


class TestCVAEContract(GeneratorContractTests):
    """Every check the kit makes: shapes, seeds, batching, save / load, labels, capabilities."""

    generator_class = CVAEGenerator  # tested without installing; generator_name = "cvae" once installed
    generator_options = {"preset": "tiny"}
    size = 32


def test_registration_hook_adds_a_lazy_reference():
    added = []

    class Registry:
        def add(self, name, target, **kwargs):
            added.append((name, target))

    plugin.cxrbench_register_generators(Registry())
    assert added == [("cvae", "cxrbench_example_vae.generator:CVAEGenerator")]


def test_importing_the_plugin_does_not_import_torch():
    """`cxrbench plugins` and `cxrbench validate` import these modules; torch must stay out."""
    code = ("import sys, cxrbench_example_vae.plugin, cxrbench_example_vae.generator; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_effective_options_resolve_the_preset():
    gen = CVAEGenerator(CVAEOptions(preset="tiny", z_dim=8), size=16)
    eff = gen.effective_options()
    assert eff["preset"] == "tiny" and eff["z_dim"] == 8 and eff["resolution"] == 16
    assert eff["train_steps"] == 300 and eff["temperature"] == 1.0


@pytest.mark.parametrize("bad", [dict(z_dim=0), dict(recon_sigma=0.0), dict(kl_weight=-1.0),
                                 dict(ema_decay=1.0), dict(resolution=12), dict(train_steps=0)])
def test_check_options_refuses_configs_that_cannot_train(bad):
    with pytest.raises(ConfigError, match="cvae"):
        CVAEGenerator.check_options(CVAEOptions(preset="tiny", **bad), 32)


def test_resumed_fit_equals_an_uninterrupted_one(tmp_path):
    """The kit's resumable checkpoints: 10 steps, then resume to 20 == 20 steps in one go (the
    batch and the reparameterisation noise of each step come from the step's generator)."""
    import torch

    torch.set_num_threads(1)
    split = make_toy_split(64, 16, seed=3)
    opts = dict(preset="tiny", train_steps=20, checkpoint_every=5)
    straight = CVAEGenerator(CVAEOptions(**opts), size=16)
    straight.fit(split, progress=False)

    ck = str(tmp_path / "ck")
    first = CVAEGenerator(CVAEOptions(**{**opts, "train_steps": 10}, checkpoint_dir=ck), size=16)
    assert first.fit(split, progress=False)["steps"] == 10
    resumed = CVAEGenerator(CVAEOptions(**opts, checkpoint_dir=ck), size=16)
    stats = resumed.fit(split, progress=False)
    assert stats["resumed_from_step"] == 10 and stats["steps_this_run"] == 10

    conds = [Condition(labels=(float(i % 2),), seed=500 + i) for i in range(4)]
    assert torch.equal(straight.generate(conds), resumed.generate(conds))


def test_temperature_is_sampling_only():
    """Only a sampling option: a temperature sweep reuses one fit (kept out of the fit key)."""
    assert "temperature" in CVAEGenerator.sampling_keys()
    assert "z_dim" not in CVAEGenerator.sampling_keys()
