"""Plugin authors' mistakes get one line naming the plugin and the problem."""

import json

import torch

from cxrbench.cli import print_table
from cxrbench.config import spec_from_data
from cxrbench.contracts import Generator, GeneratorCapabilities
from cxrbench.runner import Runner
from cxrbench.testing import plugins_with_generator

SPEC = {
    "name": "mistakes", "size": 16, "classifier": {"name": "tiny-cnn"},
    "dataset": {"name": "phantom", "options": {"n_train": 80, "n_val": 40, "n_test": 40}},
    "protocols": [{"name": "synthetic-only", "schedule": "quick"}],
    "evaluation": {"bootstrap_resamples": 20},
}


class IndexBug(Generator):
    name = "index-bug"
    capabilities = GeneratorCapabilities(needs_training=False)

    def fit(self, train, *, progress=True):
        return {"shape": ()[1]}  # IndexError: tuple index out of range

    def generate(self, conditions):  # pragma: no cover - never reached
        raise AssertionError


class IgnoresSeeds(Generator):
    """One flat image per label: every seed gives the same image."""

    name = "ignores-seeds"
    capabilities = GeneratorCapabilities(needs_training=False)

    def fit(self, train, *, progress=True):
        return {}

    def generate(self, conditions):
        vals = torch.tensor([80 + 90 * c.labels[0] for c in conditions], dtype=torch.uint8)
        return vals.view(-1, 1, 1, 1).expand(-1, 1, self.size, self.size).clone()


class GlobalRng(IgnoresSeeds):
    """Draws from the global RNG: the same seed gives a different image every call."""

    name = "global-rng"

    def generate(self, conditions):
        return torch.randint(0, 256, (len(conditions), 1, self.size, self.size), dtype=torch.uint8)


def _run(tmp_path, cls):
    spec = spec_from_data({**SPEC, "generators": [{"name": cls.name}]}, "s")
    out = tmp_path / cls.name
    summary = Runner(spec, out=out, cache_dir=tmp_path / "cache", device="cpu", progress=False,
                     plugins=plugins_with_generator(cls.name, cls)).run()
    recs = [json.loads(p.read_text()) for p in (out / "cells").glob("synthetic-only*.json")]
    return summary, out, recs[0]


def test_exception_in_fit_names_plugin_method_and_record(tmp_path, capsys):
    summary, out, rec = _run(tmp_path, IndexBug)
    assert len(summary.failed) == 1
    msg = rec["error"]["message"]
    assert msg == "generator 'index-bug' failed in fit(): IndexError: tuple index out of range"
    assert rec["error"]["type"] == "PluginFailure" and rec["error"]["cause"] == "IndexError"
    assert "()[1]" in rec["error"]["traceback"]  # the plugin's own line is in the record
    log = capsys.readouterr().err
    assert f"FAILED: PluginFailure: {msg} (traceback in {out / 'cells'}" in log


def test_generators_that_break_the_seed_contract_fail_the_cell(tmp_path, capsys):
    for cls, problem in [(IgnoresSeeds, "different seeds gave the same image"),
                         (GlobalRng, "the same seed gave different images")]:
        summary, out, rec = _run(tmp_path, cls)
        assert len(summary.failed) == 1 and rec["status"] == "failed"
        assert rec["error"]["message"].startswith(f"generator {cls.name!r} failed the run-time seed check: {problem}")


def test_a_spec_may_opt_out_of_the_seed_check_and_the_cell_says_so(tmp_path, capsys):
    for cls, problem in [(IgnoresSeeds, "different seeds gave the same image"),
                         (GlobalRng, "the same seed gave different images")]:
        spec = spec_from_data({**SPEC, "generators": [{"name": cls.name, "seed_check": "warn"}]}, "s")
        out = tmp_path / f"warn-{cls.name}"
        summary = Runner(spec, out=out, cache_dir=tmp_path / "cache", device="cpu", progress=False,
                         plugins=plugins_with_generator(cls.name, cls)).run()
        rec = json.loads(next((out / "cells").glob("synthetic-only*.json")).read_text())
        assert not summary.failed and rec["cell"]["generator"]["seed_check"] == "warn"
        check = rec["generator"]["seed_check"]
        assert check["ok"] is False and check["problems"] == [problem] and check["opted_out"]
        print_table(out)
        assert f"SEED CHECK FAILED: {problem}" in capsys.readouterr().out


def test_a_well_behaved_generator_passes_the_seed_check(tmp_path):
    spec = spec_from_data({**SPEC, "generators": [{"name": "noise"}]}, "s")
    Runner(spec, out=tmp_path / "ok", cache_dir=tmp_path / "c", device="cpu", progress=False).run()
    rec = json.loads(next((tmp_path / "ok" / "cells").glob("synthetic-only*.json")).read_text())
    assert rec["generator"]["seed_check"]["ok"] is True


def test_table_shows_classifier_chain_and_marks_earlier_cells(tmp_path, capsys):
    from cxrbench.cli import main

    import yaml

    out, spec = tmp_path / "run", tmp_path / "spec.yaml"
    # the small phantom of this module, quality metrics off: the table is under test, not the cells
    spec.write_text(yaml.safe_dump({**SPEC, "spec_version": 1, "quality": {"enabled": False}}))
    base = ["run", "--spec", str(spec), "--out", str(out), "--no-progress", "--cache-dir", str(tmp_path / "c")]
    assert main(base + ["--generator", "noise", "--postprocess", "equalize"]) == 0
    capsys.readouterr()
    assert main(base + ["--generator", "noise", "--classifier", "resnet18"]) == 0
    table = capsys.readouterr().out
    lines = [ln for ln in table.splitlines() if "synthetic-only" in ln]
    first = [ln for ln in lines if "equalize" in ln]
    assert first and all("tiny-cnn" in ln and "ok*" in ln for ln in first)
    assert any("resnet18" in ln and "ok " in ln + " " and "ok*" not in ln for ln in lines)
    assert "* from an earlier invocation" in table
