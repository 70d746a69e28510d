"""The example packages of the other three kinds (examples/cxrbench-example-{postprocessor,
classifier,dataset}, the worked sections of CONTRIBUTING.md) install, register, pass
`cxrbench check` and their own contract-kit tests, and run through `cxrbench run`.

As in test_example_plugin.py, the packages are installed into a private folder that only the CLI
subprocesses see (PYTHONPATH): the environment running the suite is left as it was (CI fails
when `pip freeze` changes), and building from copies leaves no build/ folder in the repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: kind -> (registered name, distribution, import package)
EXAMPLES = {
    "postprocessor": ("gamma", "cxrbench-example-postprocessor", "cxrbench_example_postprocessor"),
    "classifier": ("small-cnn", "cxrbench-example-classifier", "cxrbench_example_classifier"),
    "dataset": ("png-folder", "cxrbench-example-dataset", "cxrbench_example_dataset"),
}
KINDS = list(EXAMPLES)


def folder(kind: str) -> Path:
    return REPO / "examples" / EXAMPLES[kind][1]


def cli(*args, env):
    full = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, "-m", "cxrbench.cli", *args], capture_output=True, text=True,
                          env=full, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The three examples installed (one pip call, no dependencies) into a private --target
    folder, put on the CLI subprocesses' PYTHONPATH; a private cache for their runs."""
    root = tmp_path_factory.mktemp("example-kinds")
    copies = []
    for kind in KINDS:
        copies.append(root / "src" / kind)
        shutil.copytree(folder(kind), copies[-1], ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                          "--target", str(target), *map(str, copies)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])),
            "CXRBENCH_CACHE": str(root / "cache")}


def write_png_folder(root: Path, *, patients: int, per_patient: int = 2, size: int = 16) -> Path:
    """A png-folder dataset under ``root`` (the layout of the example's README): toy radiographs,
    positive = a bright blob, ``patients`` patients per split and class; masks for the first
    image of each patient and a patients.csv, so every part of the example is read."""
    import numpy as np
    from PIL import Image

    from cxrbench.testing import make_toy_images

    base = root / "png-folder"
    rows = ["patient,sex,age"]
    for s, split in enumerate(("train", "test")):
        for label, cls in enumerate(("negative", "positive")):
            images = make_toy_images([float(label)] * patients * per_patient, size, seed=100 + 10 * s + label).numpy()
            for p in range(patients):
                patient = f"{split}-{cls}-{p}"
                rows.append(f"{patient},{'FM'[p % 2]},{40 + p}")
                for n in range(per_patient):
                    rel = Path(split) / cls / f"{patient}_{n}.png"
                    for sub, arr in [("", images[p * per_patient + n, 0]), ("masks", np.full((size, size), 255, np.uint8))]:
                        if sub and n:
                            continue
                        (base / sub / rel).parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(arr).save(base / sub / rel)
    (base / "patients.csv").write_text("\n".join(rows) + "\n")
    return root


def records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


# --------------------------------------------------------------------------- registration


def test_examples_listed_with_their_distributions(installed):
    listing = cli("plugins", env=installed)
    assert listing.returncode == 0, listing.stderr
    for kind, (name, dist, _) in EXAMPLES.items():
        line = next((l for l in listing.stdout.splitlines() if l.split()[:1] == [name]), None)
        assert line is not None, f"{name} not listed:\n{listing.stdout}"
        assert line.split()[1] == kind and dist in line and "0.1.0" in line, line


def test_the_suite_environment_does_not_see_the_examples():
    """Nothing was installed into the environment running the tests."""
    from importlib import metadata

    dists = {d for _, d, _ in EXAMPLES.values()}
    found = [str(getattr(d, "_path", d)) for d in metadata.distributions() if d.metadata["Name"] in dists]
    assert not found, found


def _vae_tests():
    """test_example_vae.py, whose helpers (the public-API checker, the example-test runner) serve here too."""
    spec = importlib.util.spec_from_file_location("_example_vae_tests", Path(__file__).with_name("test_example_vae.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_import_only_the_public_api():
    """The plugin rule of CONTRIBUTING.md (cxrbench.contracts / errors / hookspecs / kit only),
    with the checker of test_example_vae.py."""
    checker = _vae_tests()
    for kind in KINDS:
        src = folder(kind) / "src"
        assert (src / EXAMPLES[kind][2] / "plugin.py").is_file()
        assert checker.public_api_violations(src, "") == [], kind


# --------------------------------------------------------------------------- cxrbench check


CHECK_ARGS = {
    "postprocessor": ["--option", "gamma=0.8", "--size", "16"],
    "classifier": ["--option", "width=8", "--size", "16"],
    "dataset": ["--size", "16"],  # + --data-root
}
#: checks that must PASS (the rest may SKIP: `cxrbench check` gives no bad_options)
MUST_PASS = {
    "postprocessor": {"options_accepted", "returns_batch", "deterministic", "input_not_mutated", "empty_batch",
                      "batch_independent"},
    "classifier": {"options_accepted", "build", "forward_shape", "same_seed_same_result", "trains_above_chance",
                   "pretrained_offline"},
    "dataset": {"options_accepted", "label_names", "records", "unique_keys", "splits", "labels", "patient_disjoint",
                "records_stable", "read_image", "read_mask", "missing_root"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_cxrbench_check_passes(kind, installed, tmp_path):
    args = list(CHECK_ARGS[kind])
    if kind == "dataset":
        args += ["--data-root", str(write_png_folder(tmp_path, patients=3))]
    out = cli("check", EXAMPLES[kind][0], *args, env=installed)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    passed = {l.split()[1] for l in out.stdout.splitlines() if l.startswith("PASS ")}
    assert MUST_PASS[kind] <= passed, (sorted(MUST_PASS[kind] - passed), out.stdout)
    assert EXAMPLES[kind][1] in out.stdout  # the installed distribution was checked


# --------------------------------------------------------------------------- the examples' own tests


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_example_tests_pass_under_the_contract_kit(kind):
    """`pytest` in the example's folder, as its author runs it without installing (PYTHONPATH=src);
    every kit check runs (none skipped) and no bytecode is written into the tree."""
    summary, tail = _vae_tests().run_example_tests(folder(kind))
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, tail


# --------------------------------------------------------------------------- cxrbench run


def run_spec(tmp_path: Path, spec: str, env: dict, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    path, out = tmp_path / "spec.yaml", tmp_path / "run"
    path.write_text(spec)
    done = cli("run", "--spec", str(path), "--out", str(out), "--no-progress", *extra, env=env)
    return done, out


@pytest.mark.slow
def test_run_with_the_postprocessor_and_the_classifier(installed, tmp_path):
    """Phantom, the noise generator (nothing to train), `gamma` in the chain, `small-cnn` trained."""
    spec = """spec_version: 1
name: example-kinds
size: 16
dataset: {name: phantom, options: {n_train: 80, n_val: 40, n_test: 40}}
generators: [{name: noise}]
postprocess: [{name: gamma, options: {gamma: 0.8}}]
classifier: {name: small-cnn, options: {width: 8}}
protocols: [{name: synthetic-only, schedule: quick}]
evaluation: {bootstrap_resamples: 20}
quality: {enabled: false}
"""
    done, out = run_spec(tmp_path, spec, installed)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    recs = records(out)
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs), [r["status"] for r in recs]
    for r in recs:
        assert r["plugin_identity"]["classifier"]["name"] == "small-cnn"
        assert r["versions"]["plugins"]["classifier:small-cnn"]["distribution"] == "cxrbench-example-classifier"
    synthetic = next(r for r in recs if r["cell"]["protocol"].startswith("synthetic-only"))
    assert [p["name"] for p in synthetic["plugin_identity"]["postprocessors"]] == ["gamma"]
    assert synthetic["versions"]["plugins"]["postprocessor:gamma"]["distribution"] == "cxrbench-example-postprocessor"
    assert "gamma" in json.dumps(synthetic["generator"]["postprocessing"])
    assert "small-cnn" in done.stdout and "gamma" in done.stdout


@pytest.mark.slow
def test_run_on_the_dataset(installed, tmp_path):
    """real-only on a png-folder written in tmp_path: the harness decodes and tests on it."""
    spec = """spec_version: 1
name: example-dataset
size: 16
dataset: {name: png-folder, options: {val_fraction: 0.25}}
protocols: [{name: real-only, schedule: quick}]
evaluation: {bootstrap_resamples: 20}
quality: {enabled: false}
"""
    root = write_png_folder(tmp_path / "data", patients=10)
    done, out = run_spec(tmp_path, spec, installed, "--data-root", str(root))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (rec,) = records(out)
    assert rec["status"] == "ok"
    assert rec["versions"]["plugins"]["dataset:png-folder"]["distribution"] == "cxrbench-example-dataset"
    info = rec["dataset"]["info"]
    # 10 patients x 2 images per class and split; val carved from train by patient
    assert info["n"]["test"] == 40 and info["n"]["train"] + info["n"]["val"] == 40 and info["n"]["val"] > 0, info["n"]
    assert "png-folder:test" in rec["metrics"]


# --------------------------------------------------------------------------- the guide


def guide_excerpts() -> list[tuple[str, str]]:
    """(file, code) for every "From `examples/...py`: ```python ...```" excerpt of CONTRIBUTING.md."""
    import re

    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    return re.findall(r"From\s+`(examples/[^`]+\.py)`.*?```python\n(.*?)```", text, flags=re.S)


def test_guide_excerpts_are_the_examples_code():
    """Every line of CONTRIBUTING.md's excerpts (but `...`, which elides) is a line of the file it
    quotes, in the same order: a change to an example that the guide does not follow fails here."""
    excerpts = guide_excerpts()
    quoted = {Path(f).parts[1] for f, _ in excerpts}
    assert {EXAMPLES[k][1] for k in KINDS} <= quoted and len(excerpts) >= 6, sorted(quoted)
    for file, code in excerpts:
        lines = [l.strip() for l in (REPO / file).read_text(encoding="utf-8").splitlines()]
        at = 0
        for line in (l.strip() for l in code.splitlines()):
            if not line or line == "...":
                continue
            assert line in lines[at:], f"CONTRIBUTING.md quotes {file} with a line it lacks (in this order): {line!r}"
            at = lines.index(line, at) + 1


def test_guide_names_contracts_by_import_name():
    """The guide points at the installed package (`python -m pydoc cxrbench.contracts.X`), not at
    source files, and docs/architecture.md points at nothing outside the repository."""
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "harness/" not in text
    for base in ("Generator", "Postprocessor", "Classifier", "Dataset"):
        assert f"cxrbench.contracts.{base}" in text
    for kind in ("Postprocessor", "Classifier", "Dataset"):
        assert f"python -m pydoc cxrbench.contracts.{kind}" in " ".join(text.split()), kind
    assert "../" not in (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
