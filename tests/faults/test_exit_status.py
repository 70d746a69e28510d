"""Exit statuses scripts can trust (issue #28 point 5): 0 every cell ok, 1 some cell failed
(count printed), 2 usage or configuration error (nothing run), 130 interrupted."""

import pytest

from cxrbench import registry
from cxrbench.cli import EXIT_STATUS_HELP, build_parser, main
from cxrbench.contracts import Generator, GeneratorCapabilities
from cxrbench.testing import plugins_with_generator

pytestmark = pytest.mark.faults


class FailsInFit(Generator):
    """Passes pre-flight (its generate works) but its fit raises: a failed cell, not a usage error."""

    name = "fails-in-fit"
    capabilities = GeneratorCapabilities(needs_training=False)

    def fit(self, train, *, progress=True):
        raise RuntimeError("simulated failure in fit")

    def generate(self, conditions):
        import torch

        return torch.zeros((len(conditions), 1, self.size, self.size), dtype=torch.uint8)


def _args(tmp_path, *extra):
    return ["run", "--size", "16", "--no-progress", "--bootstrap", "20", "--out", str(tmp_path / "run"),
            "--cache-dir", str(tmp_path / "cache"), *extra]


def test_every_cell_ok_exits_0(tmp_path, capsys):
    assert main(_args(tmp_path, "--protocol", "real-only", "--schedule", "quick")) == 0


def test_a_failed_cell_exits_1_and_prints_the_count(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "_CACHED", plugins_with_generator("fails-in-fit", FailsInFit))
    code = main(_args(tmp_path, "--generator", "fails-in-fit", "--generator", "noise", "--schedule", "quick"))
    err = capsys.readouterr().err
    assert code == 1
    assert "cxrbench: 1 cell(s) failed" in err and "simulated failure in fit" in err


@pytest.mark.parametrize("argv", [
    ["run", "--generator", "no-such-generator"],          # unknown plugin
    ["run", "--schedule", "weekly"],                        # not a schedule
    ["run", "--real-data", "0.1"],                          # an epoch-defined schedule on the real-data axis
    ["run", "--ratio", "1", "--protocol", "real-only"],     # a ratio nothing takes
    ["validate", "/no/such/spec.yaml"],
])
def test_a_configuration_error_exits_2_with_one_line_and_runs_nothing(argv, tmp_path, capsys):
    assert main([*argv, *(["--out", str(tmp_path / "run")] if argv[0] == "run" else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cxrbench: error:"), err
    assert not (tmp_path / "run").exists()


def test_a_usage_error_exits_2():
    with pytest.raises(SystemExit) as exc:
        main(["run", "--seed", "zero"])
    assert exc.value.code == 2


def test_an_interrupted_run_exits_130_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from cxrbench.runner import Runner

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "run", interrupted)
    assert main(_args(tmp_path)) == 130
    assert "re-run the same command to resume" in capsys.readouterr().err


def test_the_statuses_are_in_the_help():
    assert "130  interrupted" in EXIT_STATUS_HELP
    assert EXIT_STATUS_HELP in build_parser().format_help()


def test_a_repeated_classifier_flag_forms_the_axis_not_the_last_one(tmp_path):
    from cxrbench.cli import resolve_run_spec

    args = build_parser().parse_args(["run", "--classifier", "tiny-cnn", "--classifier", "resnet18",
                                      "--dataset", "phantom"])
    spec, _ = resolve_run_spec(args)
    assert [c.name for c in spec.classifiers] == ["tiny-cnn", "resnet18"]
    one, _ = resolve_run_spec(build_parser().parse_args(["run", "--classifier", "resnet18"]))
    assert one.classifiers is None and one.classifier.name == "resnet18"


def test_show_prints_a_failure_message_in_full(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "_CACHED", plugins_with_generator("fails-in-fit", FailsInFit))
    main(_args(tmp_path, "--generator", "fails-in-fit", "--schedule", "quick"))
    capsys.readouterr()
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("FAILED synthetic-only")]
    assert line.endswith("generator 'fails-in-fit' failed in fit(): RuntimeError: simulated failure in fit")


def test_show_and_the_leaderboard_give_a_one_seed_cell_the_same_interval(tmp_path, capsys):
    """issue #29.5: one definition (the cell's bootstrap percentile interval), in both."""
    import json

    from cxrbench.aggregate import aggregate
    from cxrbench.leaderboard import build_leaderboard

    assert main(_args(tmp_path, "--protocol", "real-only", "--schedule", "quick")) == 0
    (path,) = (tmp_path / "run" / "cells").glob("*.json")
    record = json.loads(path.read_text())
    (macro,) = [m["macro"] for m in record["metrics"].values()]
    (row,) = aggregate([record])
    assert row["metrics"]["auroc"]["ci"] == macro["auroc_ci"]
    capsys.readouterr()
    build_leaderboard([tmp_path / "run"], tmp_path / "board")
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    assert f"[{macro['auroc_ci'][0]:.3f}, {macro['auroc_ci'][1]:.3f}]" in text


def test_a_row_named_by_its_options_hash_shows_those_options(tmp_path, capsys):
    """issue #29.3: `mean-noise-4c628a`-style names are explained beside the options."""
    import yaml

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"spec_version": 1, "name": "hash", "dataset": {"name": "phantom"}, "size": 16,
                                    "generators": [{"name": "noise", "options": {"smoothness": 5.0}}],
                                    "protocols": [{"name": "synthetic-only", "schedule": "quick"}],
                                    "evaluation": {"bootstrap_resamples": 20}, "quality": {"enabled": False}}))
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert any("noise-" in line and "(smoothness=5.0)" in line for line in out.splitlines())
