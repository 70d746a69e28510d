import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cxrbench.config import load_spec, spec_from_data
from cxrbench.spec_validation import validate_plugins
from cxrbench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "body, expected",
    [
        ("name: x\ngenerators:\n  - name: noise\n    optoins: {}\n",
         r"generators\[0\]\.optoins: unknown key \(did you mean 'options'\?\); allowed: name, options, sweep, label"),
        ("name: x\nsize: big\n", r"size: expected int, got str 'big'"),
        ("size: 32\n", r"name: missing required key"),
        ("name: x\nprotocols: [{name: synthetic-onyl}]\n", r"unknown protocol 'synthetic-onyl' \(did you mean 'synthetic-only'"),
        ("name: x\nprotocols: [{name: supplemented, ratios: [20]}]\n", r"ratio 20.0 is outside 0.1..10"),
        ("name: x\nprotocols: [{name: real-only, schedule: slow}]\n", r"schedule: 'slow' is not allowed"),
        ("name: x\nseeds: [1.5]\n", r"seeds\[0\]: expected int"),
        ("name: x\nspec_version: 9\n", r"spec_version: 9 is not supported"),
        ("name: [x\n", r"not valid YAML at line"),
    ],
)
def test_bad_specs_are_one_line_errors_naming_file_and_key(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=expected) as err:
        load_spec(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_unknown_plugin_name_and_options(tmp_path):
    spec = spec_from_data({"name": "x", "generators": [{"name": "nosie"}]}, "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: generators\[0\].name: unknown generator 'nosie'; did you mean 'noise'"):
        validate_plugins(spec, "s.yaml")
    spec = spec_from_data({"name": "x", "generators": [{"name": "noise", "options": {"smoothnes": 1}}]}, "s.yaml")
    with pytest.raises(ConfigError, match=r"generators\[0\].options.smoothnes: unknown key \(did you mean 'smoothness'"):
        validate_plugins(spec, "s.yaml")
    spec = spec_from_data({"name": "x", "generators": [{"name": "noise", "sweep": {"smoothness": [1, "a"]}}]}, "s.yaml")
    with pytest.raises(ConfigError, match=r"sweep.smoothness.smoothness: expected float"):
        validate_plugins(spec, "s.yaml")


def test_shipped_benchmarks_are_valid():
    for path in sorted((REPO / "benchmarks").glob("*.yaml")):
        spec = load_spec(path)
        validate_plugins(spec, str(path))


def test_cli_validate_misspelt_key_exits_nonzero_without_traceback(tmp_path):
    path = write(tmp_path, "spec_version: 1\nname: x\nclasifier: {name: tiny-cnn}\n")
    out = subprocess.run([sys.executable, "-m", "cxrbench.cli", "validate", str(path)], capture_output=True, text=True)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert str(path) in lines[0] and "clasifier" in lines[0] and "Traceback" not in out.stderr


# Specs that `validate` used to accept although every run then failed (issue #9).
@pytest.mark.parametrize("extra, message", [
    ({"size": 8}, r"classifier: classifier 'tiny-cnn': needs images of at least 16 px, the spec asks for 8"),
    ({"size": 15}, r"needs images of at least 16 px, the spec asks for 15"),
    ({"generators": [{"name": "ddpm", "options": {"cfg_scale": -1}}]}, r"generators\[0\]: ddpm: cfg_scale must be >= 0"),
    ({"generators": [{"name": "ddpm", "sweep": {"cfg_scale": [4.0, -1.0]}}]},
     r"generators\[0\]\.sweep\.cfg_scale=-1\.0: ddpm: cfg_scale must be >= 0"),
    ({"generators": [{"name": "gan", "options": {"diffaug": "rotate"}}]}, r"gan: unknown diffaug policy"),
    ({"generators": [{"name": "ddpm", "options": {"train_steps": 0}}]}, r"ddpm: train_steps must be an integer >= 1"),
    ({"generators": [{"name": "ddpm", "options": {"max_train_minutes": 0}}]}, r"max_train_minutes must be > 0"),
    ({"external": [{"name": "nih-cxr14"}]}, r"label 'pneumonia' of the training dataset maps to nothing in nih-cxr14"),
    ({"external": [{"name": "phantom", "test": "everything"}]}, r"external\[0\]\.test: 'everything' is not allowed"),
    ({"dataset": {"name": "phantom", "test": "all"}}, r"apply to external datasets only"),
    ({"dataset": {"name": "phantom", "optional": True}}, r"'optional' apply to external datasets only"),
    ({"external": [{"name": "phantom", "optional": "maybe"}]}, r"external\[0\]\.optional"),
])
def test_validate_refuses_what_every_run_would_fail(extra, message):
    from cxrbench.spec_validation import validate_plugins

    data = {"name": "x", "protocols": [{"name": "synthetic-only"}], **extra}
    with pytest.raises(ConfigError, match=message):
        validate_plugins(spec_from_data(data, "x.yaml"), "x.yaml")


def test_generator_flag_picks_spec_rows_by_label_then_name(tmp_path):
    from cxrbench.cli import build_parser, resolve_run_spec

    spec = tmp_path / "rows.yaml"
    spec.write_text(textwrap.dedent("""\
        name: rows
        generators:
          - {name: noise, label: smooth, options: {smoothness: 4.0}}
          - {name: noise, label: white, options: {smoothness: 0.0}}
          - {name: real}
        protocols: [{name: synthetic-only, schedule: quick}]
        """))

    def rows(*names):
        flags = [f for n in names for f in ("--generator", n)]
        got, _ = resolve_run_spec(build_parser().parse_args(["run", "--spec", str(spec), *flags]))
        return [(g.name, g.label, g.options) for g in got.generators]

    assert rows("white") == [("noise", "white", {"smoothness": 0.0})]  # the row, its options kept
    assert rows("noise") == [("noise", "smooth", {"smoothness": 4.0}), ("noise", "white", {"smoothness": 0.0})]
    assert rows("real", "gan") == [("real", None, {}), ("gan", None, {})]  # not in the spec: defaults
