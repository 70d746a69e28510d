"""The every-combination grid: datasets x classifiers x chains x generators x protocols x seeds,
sharing fits and baselines through the cache; a generator's own chain; strict axis rules."""

import json

import pytest

from cxrbench.cli import main
from cxrbench.config import load_spec, spec_from_data
from cxrbench.spec_validation import validate_plugins
from cxrbench.errors import ConfigError
from cxrbench.grid import grid_slices
from cxrbench.store import RunStore

PHANTOM_A = {"name": "phantom", "options": {"n_train": 60, "n_val": 30, "n_test": 40}}
PHANTOM_B = {"name": "phantom", "options": {"n_train": 80, "n_val": 30, "n_test": 40}}
GRID = {
    "name": "grid", "size": 16,
    "datasets": [PHANTOM_A, PHANTOM_B],
    "classifiers": [{"name": "tiny-cnn"}, {"name": "resnet18"}],
    "chains": [[], [{"name": "equalize"}]],
    "generators": [{"name": "noise"},
                   {"name": "real", "label": "real-cropped", "postprocess": [{"name": "crop-border", "options": {"bottom": 0.1}}]}],
    "protocols": [{"name": "synthetic-only", "schedule": "quick"}],
    "seeds": [0],
    "evaluation": {"bootstrap_resamples": 20},
    "quality": {"enabled": False},
}


def write_spec(tmp_path, data):
    import yaml

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_slices_are_every_combination_in_dataset_major_order():
    slices = grid_slices(spec_from_data(GRID))
    assert len(slices) == 2 * 2 * 2
    coords = [(s.dataset.options["n_train"], s.classifier.name, [p.name for p in s.postprocess]) for s in slices]
    assert coords[0] == (60, "tiny-cnn", []) and coords[1] == (60, "tiny-cnn", ["equalize"])
    assert coords[-1] == (80, "resnet18", ["equalize"])
    assert len(set(map(repr, coords))) == 8
    assert all(s.datasets is None and s.classifiers is None and s.chains is None for s in slices)


@pytest.mark.parametrize("axis, single", [("datasets", "dataset"), ("classifiers", "classifier"), ("chains", "postprocess")])
def test_an_axis_and_its_single_key_together_is_an_error(axis, single):
    data = {"name": "x", axis: GRID[axis], single: GRID[axis][0]}
    with pytest.raises(ConfigError, match=f"{axis}: give either '{single}' .* not both"):
        spec_from_data(data, "s.yaml")


def test_an_empty_axis_is_an_error():
    with pytest.raises(ConfigError, match="classifiers: empty"):
        spec_from_data({"name": "x", "classifiers": []}, "s.yaml")


def test_validate_names_the_axis_entry_with_the_problem():
    bad = {**GRID, "classifiers": [{"name": "tiny-cnn"}, {"name": "resnet1B"}]}
    with pytest.raises(ConfigError, match=r"s.yaml: classifiers\[1\].name: .*resnet1B"):
        validate_plugins(spec_from_data(bad, "s.yaml"), "s.yaml")
    bad = {**GRID, "chains": [[], [{"name": "equalize", "options": {"bins": 3}}]]}
    with pytest.raises(ConfigError, match=r"s.yaml: chains\[1\]\[0\].options"):
        validate_plugins(spec_from_data(bad, "s.yaml"), "s.yaml")
    bad = {**GRID, "generators": [{"name": "noise", "postprocess": [{"name": "no-such-step"}]}]}
    with pytest.raises(ConfigError, match=r"generators\[0\].postprocess\[0\].name"):
        validate_plugins(spec_from_data(bad, "s.yaml"), "s.yaml")


def test_validate_prints_the_grid_size(tmp_path, capsys):
    assert main(["validate", str(write_spec(tmp_path, GRID))]) == 0
    out = capsys.readouterr().out
    # per slice: a real-only baseline + 2 generators = 3 cells; 8 slices
    assert "classifier(s) resnet18, tiny-cnn, 2 chain(s)" in out and "8 slice(s), 24 cell(s)" in out


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    spec = write_spec(tmp, GRID)
    paths = ["--out", str(tmp / "run"), "--cache-dir", str(tmp / "cache"), "--no-progress"]
    assert main(["run", "--spec", str(spec), "--dry-run", *paths]) == 0
    return tmp, spec, paths


def test_dry_run_lists_every_slice_and_shares_baselines(grid_run, capsys):
    tmp, spec, paths = grid_run
    assert main(["run", "--spec", str(spec), "--dry-run", *paths]) == 0
    out = capsys.readouterr().out
    assert "phantom | resnet18 | equalize | synthetic-only.v2__noise" in out
    # 24 grid positions; the real-only baseline of a (dataset, classifier) does not depend on the chain
    assert "24 cell(s): 0 finished, 24 to run" in out


def test_grid_run_records_every_combination_once(grid_run, capsys):
    tmp, spec, paths = grid_run
    assert main(["run", "--spec", str(spec), *paths]) == 0
    records = RunStore(tmp / "run").records()
    assert all(r["status"] == "ok" for r in records)
    # 8 slices x 2 generator cells, plus one real-only baseline per (dataset, classifier) = 4
    assert len(records) == 16 + 4
    combos = {(r["spec"]["dataset"]["options"]["n_train"], r["spec"]["classifier"]["name"],
               tuple(p["name"] for p in r["spec"]["postprocess"]), (r["cell"]["generator"] or {}).get("label"))
              for r in records if r["cell"]["generator"]}
    assert len(combos) == 16
    # the generator's own chain runs first, then the slice's chain; both are recorded in order
    own = [r for r in records if (r["cell"]["generator"] or {}).get("label") == "real-cropped"
           and r["spec"]["postprocess"]]
    steps = [s["name"] for s in own[0]["generator"]["postprocessing"]["steps"]]
    assert steps == ["crop-border", "equalize"]
    assert json.loads((tmp / "run" / "spec.resolved.json").read_text())["chains"] == [[], [{"name": "equalize", "options": {}}]]
    capsys.readouterr()
    assert main(["run", "--spec", str(spec), *paths]) == 0  # finished cells are never recomputed
    assert "0 cell(s) ran, 20 reused, 0 failed" in capsys.readouterr().out


def test_a_flag_replaces_a_whole_axis(grid_run, capsys):
    tmp, spec, paths = grid_run
    assert main(["run", "--spec", str(spec), "--classifier", "tiny-cnn", "--dataset", "phantom", "--dry-run",
                 *paths]) == 0
    out = capsys.readouterr().out
    assert "resnet18" not in out and "6 cell(s)" in out


def test_the_example_grid_spec_validates():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "kermany-grid.yaml"
    spec = load_spec(path)
    validate_plugins(spec, str(path))
    assert len(grid_slices(spec)) > 1
