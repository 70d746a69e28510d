"""Cells per hour with 1, 2 and 4 local Ray workers on the same spec (issue #15, perf item e).

    python benchmarks/perf/ray_scaling.py [--workers 1 2 4] [--seeds 4]

One local Ray cluster with as many CPU slots as the largest worker count; a measurement with
``w`` workers gives each task ``slots / w`` CPUs (so at most ``w`` tasks run at once and every
measurement uses the same number of threads in all). Each measurement runs the same spec
(phantom, tiny-cnn, the real-only baseline and the `noise` and `real` generators under
synthetic-only, ``--seeds`` seeds) into a fresh run folder; the dataset's decoded cache is
shared and warmed first, so the figure is cell throughput. Prints a table and writes JSON.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info, write_result

SPEC = """
spec_version: 1
name: ray-scaling
dataset: {{name: phantom, options: {{n_train: {n_train}, n_val: 60, n_test: 100}}}}
size: 16
classifier: {{name: tiny-cnn}}
generators: [{{name: noise}}, {{name: real}}]
protocols: [{{name: synthetic-only, schedule: quick}}]
seeds: {seeds}
evaluation: {{bootstrap_resamples: 100}}
quality: {{enabled: false}}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--out", default="benchmarks/perf/results/ray_scaling.json")
    a = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from cxrbench.cli import main as cli

    work = Path(tempfile.mkdtemp(prefix="cxrbench-ray-scaling-"))
    spec = work / "spec.yaml"
    spec.write_text(SPEC.format(n_train=a.n_train, seeds=list(range(a.seeds))))
    slots = max(a.workers)
    common = ["--spec", str(spec), "--cache-dir", str(work / "cache"), "--no-progress"]
    assert cli(["run", *common, "--dry-run", "--out", str(work / "warm")]) == 0  # decodes the dataset once
    ray.init(num_cpus=slots, include_dashboard=False, configure_logging=False, log_to_driver=False)
    rows = []
    try:
        for w in a.workers:
            out = work / f"w{w}"
            start = time.perf_counter()
            code = cli(["run", *common, "--executor", "ray", "--task-cpus", str(slots / w), "--out", str(out)])
            wall = time.perf_counter() - start
            if code != 0:
                sys.exit(f"the run with {w} worker(s) failed ({code} failed cells, see {out}/cells)")
            cells = len(list((out / "cells").glob("*.json")))
            rows.append({"workers": w, "task_cpus": slots / w, "cells": cells, "wall_s": round(wall, 1),
                         "cells_per_hour": round(cells / wall * 3600, 1)})
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)  # runs and cache of the scaling runs: only the timings are kept
    print()
    for r in rows:
        print(f"{r['workers']} worker(s) ({r['task_cpus']:g} CPU each): {r['cells']} cells in {r['wall_s']:7.1f} s = "
              f"{r['cells_per_hour']:8.1f} cells/hour")
    write_result(a.out, {"benchmark": "ray_scaling", "spec": SPEC.format(n_train=a.n_train, seeds=list(range(a.seeds))),
                         "cluster_cpu_slots": slots, "rows": rows, "machine": machine_info("cpu")})


if __name__ == "__main__":
    main()
