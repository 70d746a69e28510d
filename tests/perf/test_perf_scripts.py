"""The perf scripts of benchmarks/perf/ run end to end in CI-safe sizes on CPU and write the
JSON they promise (the figures themselves are measured on purpose, not in the suite)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[2] / "benchmarks" / "perf"


def run_script(name: str, tmp_path: Path, *args: str, timeout: int = 600) -> dict:
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CXRBENCH_PROGRESS": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(PERF / f"{name}.py"), *args, "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cpu_count"] >= 1 and "torch" in result["machine"]
    return result


def test_sampling_speed(tmp_path):
    r = run_script("sampling_speed", tmp_path, "--generators", "ddpm", "ldm", "--sizes", "16", "--samplers", "ddim:3",
                   "dpmsolver++:2", "--cfg", "0", "4", "--n", "2", "--preset", "tiny")
    assert len(r["rows"]) == 2 * 2 * 2 and all(row["images_per_s"] > 0 for row in r["rows"])


def test_training_input(tmp_path):
    r = run_script("training_input", tmp_path, "--dataset", "phantom", "--size", "16", "--steps", "3", "--batch", "16",
                   "--classifier", "tiny-cnn", "--cache-dir", str(tmp_path / "cache"))
    assert r["from_cache_img_s"] > 0 and r["in_memory_img_s"] > 0 and r["ratio"] > 0


def test_cell_wall(tmp_path):
    r = run_script("cell_wall", tmp_path, "--args", "--generator noise --protocol synthetic-only --size 16 "
                   "--dataset phantom --bootstrap 20")
    assert len(r["cells"]) == 2 and r["wall_s"] > 0
    assert all(c["total_s"] > 0 for c in r["cells"])


@pytest.mark.xdist_group("ray")  # never beside the Ray executor test (tests/conftest.py)
def test_ray_scaling(tmp_path):
    pytest.importorskip("ray")
    r = run_script("ray_scaling", tmp_path, "--workers", "1", "2", "--seeds", "1", "--n-train", "60")
    assert [row["workers"] for row in r["rows"]] == [1, 2]
    assert all(row["cells"] == 3 and row["cells_per_hour"] > 0 for row in r["rows"])
