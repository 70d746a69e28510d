"""Wall time of complete cells through the CLI (issue #15, perf item d; the README's main
command has a 5-minute goal on the 2-core CPU).

    python benchmarks/perf/cell_wall.py [--args "--generator real --generator noise --protocol synthetic-only"]

Runs ``cxrbench run ARGS`` in a fresh process with a fresh run folder and cache (nothing reused:
the dataset is decoded and every generator fitted as on a new machine), then reads the phase
timings (datasets, fit, generation, quality, training, evaluation) of each cell from its record.
Prints a table and writes JSON with the machine.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info, write_result

MAIN_COMMAND = "--generator real --generator noise --protocol synthetic-only"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--args", default=MAIN_COMMAND, help=f"arguments of `cxrbench run` (default: {MAIN_COMMAND!r})")
    ap.add_argument("--goal-s", type=float, default=300.0)
    ap.add_argument("--out", default="benchmarks/perf/results/cell_wall.json")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cxrbench-cell-wall-"))
    cmd = [sys.executable, "-m", "cxrbench.cli", "run", *shlex.split(a.args), "--out", str(work / "run"),
           "--cache-dir", str(work / "cache"), "--no-progress"]
    try:
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"cxrbench run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        records = [json.loads(p.read_text()) for p in sorted((work / "run" / "cells").glob("*.json"))]
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the run's cache and records: only the timings are kept
    cells = []
    for rec in records:
        t = rec.get("timings", {})
        cells.append({"cell": rec["cell"]["id"], "total_s": t.get("total_s"),
                      **{k: v for k, v in t.items() if k != "total_s"}})
        print(f"{rec['cell']['id']:55s} {t.get('total_s', 0):8.1f} s  "
              + "  ".join(f"{k[:-2]} {v:.1f}" for k, v in t.items() if k != "total_s"))
    verdict = "within" if wall <= a.goal_s else "ABOVE"
    print(f"cxrbench run {a.args}: {wall:.1f} s wall for {len(cells)} cells ({verdict} the {a.goal_s:.0f} s goal)")

    write_result(a.out, {"benchmark": "cell_wall", "command": f"cxrbench run {a.args}", "wall_s": round(wall, 1),
                         "goal_s": a.goal_s, "cells": cells, "machine": machine_info("cpu")})


if __name__ == "__main__":
    main()
