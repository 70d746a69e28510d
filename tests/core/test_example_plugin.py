"""The example third-party plugin package installs, is listed, and runs through the CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cxrbench-example-generator"


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cxrbench.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example installed into a private folder that only the CLI subprocesses see (through
    PYTHONPATH): the environment running the suite is left exactly as it was, and building from
    a copy leaves no build/ folder in the repository."""
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = root / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                          "--target", str(target), str(root / "src")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


def test_example_plugin_listed_and_runs(installed_example, tmp_path):
    env = installed_example
    listing = cli("plugins", "--kind", "generator", env=env)
    assert listing.returncode == 0, listing.stderr
    line = next(l for l in listing.stdout.splitlines() if l.startswith("class-mean"))
    assert "cxrbench-example-generator" in line and "0.1.0" in line

    # Disabling autoload hides it; the built-ins stay.
    hidden = cli("plugins", "--kind", "generator", env={**env, "CXRBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "class-mean" not in hidden.stdout and "ddpm" in hidden.stdout

    out = tmp_path / "run"
    run = cli("run", "--generator", "class-mean", "--protocol", "synthetic-only", "--size", "16",
              "--bootstrap", "50", "--out", str(out), "--no-progress", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    mine = [r for r in records if (r["cell"]["generator"] or {}).get("name") == "class-mean"]
    assert mine and mine[0]["status"] == "ok"
    assert mine[0]["versions"]["plugins"]["generator:class-mean"]["distribution"] == "cxrbench-example-generator"
    assert "class-mean" in run.stdout and "AUROC" in run.stdout


def test_the_suite_environment_does_not_see_the_example():
    """Nothing was installed into the environment running the tests."""
    from importlib import metadata

    found = [str(getattr(d, "_path", d)) for d in metadata.distributions()
             if d.metadata["Name"] == "cxrbench-example-generator"]
    # (the contract-kit tests import the example from its source folder; that is not an install)
    assert not [f for f in found if not f.startswith(str(EXAMPLE))], found


def test_example_tests_pass_under_the_contract_kit():
    """The example's own tests/ (class-mean under the generator kit) pass, run as its author runs
    them without installing: PYTHONPATH=src, in a subprocess; no bytecode is written into the tree."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLE / "src"), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=EXAMPLE,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout, out.stdout[-2000:]
