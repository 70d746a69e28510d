"""`--executor ray` on a real Ray cluster the test starts on loopback (and stops): fits, shards
and cells as tasks; the same metrics as a local run; finished cells never rerun; a task that
keeps failing becomes a failed cell."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cxrbench.cli import main
from cxrbench.store import RunStore

ray = pytest.importorskip("ray", reason="the Ray executor's test needs ray (pip install 'cxrbench[ray]')")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "perf"))
from perf_scripts import run_script  # noqa: E402

SPEC = """
spec_version: 1
name: on-ray
dataset: {name: phantom, options: {n_train: 300, n_val: 40, n_test: 60}}
size: 16
classifiers: [{name: tiny-cnn}]
chains: [[]]
generators:
  - {name: noise}
  - {name: ddpm, label: ddpm, options: {preset: tiny, train_steps: 3, sampling_steps: 4, gen_batch_size: 64}}
protocols: [{name: synthetic-only, schedule: quick}]
seeds: [0, 1]
evaluation: {bootstrap_resamples: 20}
quality: {enabled: false}
"""


# Every test that starts Ray is in this file: under pytest-xdist (`--dist loadfile`) one file runs
# on one worker, so no two Ray instances overlap (the fixture's `ray stop --force` ends every Ray
# process on the machine). This one comes first, before the module's cluster starts.
def test_the_ray_scaling_perf_script_runs(tmp_path):
    r = run_script("ray_scaling", tmp_path, "--workers", "1", "2", "--seeds", "1", "--n-train", "60")
    assert [row["workers"] for row in r["rows"]] == [1, 2]
    assert all(row["cells"] == 3 and row["cells_per_hour"] > 0 for row in r["rows"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head` on 127.0.0.1 with 2 CPUs; every worker uses 1 torch thread."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.is_file():
        ray_bin = Path(shutil.which("ray") or "ray")
    port = _free_port()
    # loopback only, so no token: the driver (this process) and the cluster both run without one
    # niceness 0: Ray's default 15 starves the workers beside another pytest-xdist worker (perf_scripts.py)
    quiet = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
    saved = {k: os.environ.get(k) for k in quiet}
    os.environ.update(quiet)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a short folder in /tmp, not tmp_path: Ray's socket paths under it must stay within the
    # 107 bytes of AF_UNIX (pytest-xdist's per-worker base folder made them 111, measured)
    tmp = Path(tempfile.mkdtemp(prefix="cxr-ray-"))
    start = [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", "--object-store-memory=300000000", f"--temp-dir={tmp / 'ray-tmp'}", "--disable-usage-stats"]
    proc = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _metrics(out: Path) -> dict:
    got = {}
    for rec in RunStore(out).records():
        assert rec["status"] == "ok", rec.get("error")
        got[rec["cell_id"]] = {t: round(m["macro"]["auroc"], 9) for t, m in rec["metrics"].items()}
    return got


def test_a_spec_on_ray_matches_the_local_run(cluster, tmp_path, capsys, monkeypatch, request):
    """Both at their default settings: the driver's thread count (2 here, as a laptop's default
    would be; the suite runs with 1) reaches every Ray task, so the numbers agree."""
    import torch

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    from cxrbench import generation

    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    torch.set_num_threads(2)

    # the driver's shard size travels with every task (the workers' own environment says 1,024)
    monkeypatch.setattr(generation, "SHARD_SIZE", 256)
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    assert main(["run", "--spec", str(spec), "--executor", "ray", "--address", cluster, "--out", str(ray_out),
                 "--cache-dir", str(tmp_path / "cache-ray"), "--no-progress"]) == 0
    log = capsys.readouterr().err
    # 2 real-only baselines + 2 generators x 2 seeds; one ddpm fit; 2 shards per missing replica
    assert "ray: 6 cell task(s), 2 fit task(s), 8 shard task(s)" in log
    # the workers' lines reach the driver's run.log, each naming its worker (and the driver's own)
    run_log = (ray_out / "run.log").read_text()
    worker_lines = [line for line in run_log.splitlines() if "[worker pid " in line]
    assert "ray: 6 cell task(s)" in run_log and worker_lines
    assert any("ddpm" in line for line in worker_lines)  # a fit task's lines
    assert not list((tmp_path / "cache-ray" / "synthetic" / "shards").glob("*.npy"))  # all assembled
    assert main(["run", "--spec", str(spec), "--out", str(local_out),
                 "--cache-dir", str(tmp_path / "cache-local"), "--no-progress"]) == 0
    torch.set_num_threads(threads)
    on_ray, local = _metrics(ray_out), _metrics(local_out)
    used = {json.loads(p.read_text())["hardware"]["torch_threads"]
            for o in (ray_out, local_out) for p in (o / "cells").glob("*.json")}
    assert used == {2}
    assert on_ray.keys() == local.keys() and len(on_ray) == 6
    assert on_ray == local  # the same cells, the same numbers
    manifests = 0
    for cid in on_ray:  # and the same synthetic images (seeds, labels), in the same order
        paths = [o / "cells" / cid / "synthetic-manifest.json" for o in (ray_out, local_out)]
        if paths[0].is_file():
            manifests += 1
            assert json.loads(paths[0].read_text()) == json.loads(paths[1].read_text())
    assert manifests == 4
    capsys.readouterr()
    # finished cells never rerun
    assert main(["run", "--spec", str(spec), "--executor", "ray", "--address", cluster, "--out", str(ray_out),
                 "--cache-dir", str(tmp_path / "cache-ray"), "--no-progress"]) == 0
    assert "ray: 0 cell task(s), 0 fit task(s), 0 shard task(s)" in capsys.readouterr().err


def test_a_task_that_keeps_failing_is_a_failed_cell(cluster, tmp_path, capsys):
    """The fit cannot be stored (a file where the cache's generators/ folder belongs): the fit
    task fails, is retried once, and the ddpm cell that depends on it is recorded as failed; the
    real-only baseline, which needs no fit, still finishes."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("seeds: [0, 1]", "seeds: [0]").replace("  - {name: noise}\n", ""))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "generators").write_text("not a folder")
    code = main(["run", "--spec", str(spec), "--executor", "ray", "--address", cluster, "--out", str(tmp_path / "run"),
                 "--cache-dir", str(cache), "--no-progress", "--max-retries", "1"])
    assert code == 1
    records = {r["cell"]["generator"]["label"] if r["cell"]["generator"] else "baseline": r
               for r in RunStore(tmp_path / "run").records()}
    assert records["baseline"]["status"] == "ok"
    failed = records["ddpm"]
    assert failed["status"] == "failed" and failed["error"]["executor"] == "ray"
    assert "generators" in failed["error"]["message"]
    assert "FAILED after retries" in capsys.readouterr().err
