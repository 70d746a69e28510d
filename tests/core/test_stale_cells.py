"""The contributor's loop (issue #29 point 1): edit a plugin's code, re-run, and the number
changes; `--dry-run` says exactly what `run` will do; `--keep-stale` keeps old numbers marked."""

import importlib
import json
import sys
import textwrap

import pytest

from cxrbench.config import spec_from_data
from cxrbench.plan import plan
from cxrbench.runner import Runner
from cxrbench.testing import plugins_with_generator

SOURCE = textwrap.dedent('''
    """An out-of-tree generator, as a contributor writes it."""
    import torch

    from cxrbench.contracts import Generator, GeneratorCapabilities


    class MeanNoise(Generator):
        name = "mean-noise"
        version = "1"
        capabilities = GeneratorCapabilities(needs_training=False)

        def fit(self, train, *, progress=True):
            return {}

        def generate(self, conditions):
            out = torch.empty((len(conditions), 1, self.size, self.size), dtype=torch.uint8)
            for i, c in enumerate(conditions):
                g = torch.Generator().manual_seed(c.seed)
                base = BRIGHTNESS * c.labels[0]
                out[i] = (torch.rand((1, self.size, self.size), generator=g) * 100 + base).clamp(0, 255).to(torch.uint8)
            return out


    BRIGHTNESS = 0
''')

SPEC = {"name": "stale", "dataset": {"name": "phantom", "options": {"n_train": 80, "n_val": 30, "n_test": 60}},
        "size": 16, "classifier": {"name": "tiny-cnn"}, "generators": [{"name": "mean-noise"}],
        "protocols": [{"name": "synthetic-only.v2", "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 20}, "quality": {"enabled": False}}


def _runner(module, out, **kw):
    return Runner(spec_from_data(SPEC, "s"), out=out, device="cpu", progress=False,
                  plugins=plugins_with_generator("mean-noise", module.MeanNoise), **kw)


def _auroc(out):
    (rec,) = [json.loads(p.read_text()) for p in (out / "cells").glob("synthetic-only*.json")]
    return next(iter(rec["metrics"].values()))["macro"]["auroc"], rec


def _statuses(runner):
    return {c["cell"]: c["status"] for c in plan(runner)["cells"]}


@pytest.fixture
def contributor(tmp_path, monkeypatch):
    pkg = tmp_path / "src" / "mean_noise_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "generator.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    module = importlib.import_module("mean_noise_pkg.generator")
    yield pkg, module
    for name in [m for m in sys.modules if m.startswith("mean_noise_pkg")]:
        sys.modules.pop(name)


def _edit(pkg, old, new):
    import importlib

    path = pkg / "generator.py"
    path.write_text(path.read_text().replace(old, new))
    return importlib.reload(sys.modules["mean_noise_pkg.generator"])


def test_editing_a_plugin_reruns_its_cells_and_dry_run_agrees(contributor, tmp_path):
    pkg, module = contributor
    out = tmp_path / "run"
    first = _runner(module, out).run()
    before, rec = _auroc(out)
    assert len(first.ok) == 2 and rec["plugin_identity"]["generator"]["name"] == "mean-noise"
    assert set(_statuses(_runner(module, out)).values()) == {"finished"}

    # the contributor makes the images carry the label, without bumping any version
    module = _edit(pkg, "BRIGHTNESS = 0", "BRIGHTNESS = 120")
    statuses = _statuses(_runner(module, out))
    gen_cell = next(c for c in statuses if c.startswith("synthetic-only"))
    assert statuses[gen_cell] == "to run (stale: generator 'mean-noise': source code changed)"
    assert statuses[next(c for c in statuses if c.startswith("real-only"))] == "finished"  # not its plugin
    second = _runner(module, out).run()
    after, rec2 = _auroc(out)
    assert len(second.ok) == 1 and len(second.skipped) == 1  # exactly what the dry run said
    assert after != before  # the new code's number, not the old one
    assert rec2["plugin_identity"]["generator"]["source"] != rec["plugin_identity"]["generator"]["source"]
    assert set(_statuses(_runner(module, out)).values()) == {"finished"}


def test_a_version_bump_alone_also_reruns(contributor, tmp_path):
    pkg, module = contributor
    out = tmp_path / "run"
    _runner(module, out).run()
    module = _edit(pkg, 'version = "1"', 'version = "2"')
    (reason,) = {s for s in _statuses(_runner(module, out)).values() if s != "finished"}
    assert "version changed" in reason and "source code changed" in reason


def test_keep_stale_keeps_the_old_number_marked(contributor, tmp_path, capsys):
    pkg, module = contributor
    out = tmp_path / "run"
    _runner(module, out).run()
    before, _ = _auroc(out)
    module = _edit(pkg, "BRIGHTNESS = 0", "BRIGHTNESS = 120")
    kept = _runner(module, out, keep_stale=True)
    assert any(s.startswith("finished (STALE, kept by --keep-stale") for s in _statuses(kept).values())
    summary = kept.run()
    assert summary.ok == [] and _auroc(out)[0] == before
    assert "STALE, kept by --keep-stale: generator 'mean-noise': source code changed" in capsys.readouterr().err
