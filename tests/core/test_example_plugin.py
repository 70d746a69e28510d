"""The example third-party plugin package installs, is listed, and runs through the CLI."""

import json
import os
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
def installed_example():
    pip = [sys.executable, "-m", "pip"]
    out = subprocess.run(pip + ["install", "--no-deps", "--no-build-isolation", "--quiet", str(EXAMPLE)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    yield
    subprocess.run(pip + ["uninstall", "--yes", "--quiet", "cxrbench-example-generator"], capture_output=True)


def test_example_plugin_listed_and_runs(installed_example, tmp_path):
    listing = cli("plugins", "--kind", "generator")
    assert listing.returncode == 0, listing.stderr
    line = next(l for l in listing.stdout.splitlines() if l.startswith("class-mean"))
    assert "cxrbench-example-generator" in line and "0.1.0" in line

    # Disabling autoload hides it; the built-ins stay.
    hidden = cli("plugins", "--kind", "generator", env={"CXRBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "class-mean" not in hidden.stdout and "ddpm" in hidden.stdout

    out = tmp_path / "run"
    run = cli("run", "--generator", "class-mean", "--protocol", "synthetic-only", "--size", "16",
              "--bootstrap", "50", "--out", str(out), "--no-progress")
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    mine = [r for r in records if (r["cell"]["generator"] or {}).get("name") == "class-mean"]
    assert mine and mine[0]["status"] == "ok"
    assert mine[0]["versions"]["plugins"]["generator:class-mean"]["distribution"] == "cxrbench-example-generator"
    assert "class-mean" in run.stdout and "AUROC" in run.stdout
