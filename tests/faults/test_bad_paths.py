"""Paths and odd input (issue #28 point 6): --out or --cache-dir naming a file, a run refused in
pre-flight, a 1x1 image, external test sets and `validate` under --data-root: each a one-line
outcome, exit 2 before anything runs, never a traceback."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bad_dataset_files import BAD, KERMANY_FILES, _kermany  # noqa: E402

pytestmark = pytest.mark.faults


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("cxrbench: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("flag", ["--out", "--cache-dir"])
@pytest.mark.parametrize("where", ["the file", "inside the file"])
def test_a_path_flag_naming_a_file_is_refused_before_anything_runs(flag, where, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("not a folder")
    target = f if where == "the file" else f / "sub"
    other = "--cache-dir" if flag == "--out" else "--out"
    assert main(["run", "--generator", "noise", "--size", "16", flag, str(target), other, str(tmp_path / "x")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert flag in line and "give a folder" in line
    assert not (tmp_path / "x").exists()  # nothing written


def test_a_run_refused_in_preflight_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    out = tmp_path / "run"
    assert main(["run", "--dataset", "kermany", "--size", "16", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "needs a data root" in _one_error_line(capsys.readouterr().err)
    assert not (out / "spec.resolved.json").exists() and not (out / "cells").exists()


@pytest.mark.parametrize("mode", ["fail", "skip"])
def test_a_1x1_image_is_refused_or_skipped_never_upscaled(mode, tmp_path, capsys):
    root = _kermany(tmp_path / "data")
    Image.fromarray(np.full((1, 1), 128, np.uint8)).save(root / "chest_xray" / BAD, format="JPEG")
    argv = ["run", "--dataset", "kermany", "--data-root", str(root), "--size", "16", "--bootstrap", "20",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--no-progress"]
    if mode == "skip":
        spec = tmp_path / "skip.yaml"
        spec.write_text("spec_version: 1\nname: skip\ndataset: {name: kermany}\nsize: 16\n"
                        "preprocessing: {on_unreadable: skip}\nevaluation: {bootstrap_resamples: 20}\n")
        argv = ["run", "--spec", str(spec), *argv[3:]]
    rc = main(argv)
    err = capsys.readouterr().err
    if mode == "fail":
        line = _one_error_line(err)
        assert rc == 2 and "person9_bacteria_28.jpeg" in line and "1x1 px is below the minimum of 8 px" in line
    else:
        assert rc == 0 and "skipped 1 unreadable image(s)" in err


def test_external_test_sets_and_validate_honour_data_root(tmp_path, monkeypatch, capsys):
    from cxrbench.config import spec_from_data
    from cxrbench.runner import Runner

    monkeypatch.delenv("CXRBENCH_DATA_ROOT", raising=False)
    root = _kermany(tmp_path / "data" / "kermany")
    data = {"name": "ext", "dataset": {"name": "phantom"}, "size": 16,
            # the fixture's few test images: the label map's minimum counts say so
            "external": [{"name": "kermany", "labels": {"pneumonia": "pneumonia"}, "min_positives": 1,
                          "min_negatives": 1}]}
    spec = spec_from_data(data, "ext.yaml")
    runner = Runner(spec, out=tmp_path / "run", data_root=str(tmp_path / "data"))
    assert runner._dataset_root(spec.external[0]) == tmp_path / "data"
    assert runner.dataset_plugin(spec.external[0]).root == root
    path = tmp_path / "ext.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"spec_version": 1, **data}))
    assert main(["validate", str(path), "--data-root", str(tmp_path / "data")]) == 0
    n = sum(len(names) for names in KERMANY_FILES.values())
    assert f"kermany: {n} images listed under {root}" in capsys.readouterr().out
    assert main(["validate", str(path), "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "kermany" in _one_error_line(capsys.readouterr().err)
