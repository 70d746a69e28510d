"""Runs one perf script of benchmarks/perf/ at a CI-safe size and returns the JSON it wrote."""

import json
import os
import subprocess
import sys
from pathlib import Path

PERF = Path(__file__).resolve().parents[2] / "benchmarks" / "perf"


def run_script(name: str, tmp_path: Path, *args: str, timeout: int = 600) -> dict:
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CXRBENCH_PROGRESS": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled",
           # Ray runs its workers at niceness 15; beside another pytest-xdist worker on a 2-core
           # runner they then get almost no CPU (measured: the Ray scaling run ran past its 600 s)
           "RAY_worker_niceness": "0"}
    proc = subprocess.run([sys.executable, str(PERF / f"{name}.py"), *args, "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cpu_count"] >= 1 and "torch" in result["machine"]
    return result
