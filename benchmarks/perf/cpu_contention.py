"""How classifier training degrades when another process shares the CPU (issue #15).

    python benchmarks/perf/cpu_contention.py [--seconds 20] [--out benchmarks/perf/results/cpu_contention.json]

For each setting (torch threads x OpenMP wait policy) it measures resnet18 training images/s at
32 px from tensors in memory, alone and with one competing process (a busy matmul loop with the
same settings), each in a fresh interpreter (OpenMP reads its environment once). Target: with
one competitor at most 2.5x slower than alone. Prints a table and writes JSON with the machine.
Measure on an otherwise idle machine: other load makes "alone" mean nothing.
"""

import argparse
import os
import subprocess
import sys
import time

from machine import machine_info, write_result

WORKER = r"""
import sys, time, torch, timm
seconds = float(sys.argv[1])
torch.manual_seed(0)
model = timm.create_model("resnet18", num_classes=1, in_chans=1)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x, y = torch.randn(64, 1, 32, 32), torch.rand(64, 1)
loss_fn = torch.nn.BCEWithLogitsLoss()
for _ in range(2):  # warm-up
    opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
n, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step(); n += 64
print(n / (time.perf_counter() - start))
"""

COMPETITOR = r"""
import torch
a = torch.randn(512, 512)
while True:
    a = (a @ a).tanh()
"""


def measure(threads: int, policy: str, competing: bool, seconds: float) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": policy}
    rival = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=env) if competing else None
    try:
        if rival:
            time.sleep(2.0)  # let it reach its loop
        out = subprocess.run([sys.executable, "-c", WORKER, str(seconds)], env=env, capture_output=True,
                             text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        if rival:
            rival.kill()
            rival.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", default="benchmarks/perf/results/cpu_contention.json")
    a = ap.parse_args()
    rows = []
    for threads in (1, os.cpu_count() or 1):
        for policy in ("ACTIVE", "PASSIVE"):
            alone = measure(threads, policy, False, a.seconds)
            shared = measure(threads, policy, True, a.seconds)
            rows.append({"threads": threads, "omp_wait_policy": policy, "alone_img_s": round(alone, 1),
                         "with_one_competitor_img_s": round(shared, 1), "slowdown": round(alone / shared, 2)})
            print(f"threads {threads}  {policy:7s}  alone {alone:7.1f} img/s   with a competitor {shared:7.1f} "
                  f"img/s   slowdown {alone / shared:4.2f}x  (target <= 2.5x)")
    write_result(a.out, {"benchmark": "cpu_contention", "model": "resnet18", "size": 32, "batch": 64,
                         "machine": machine_info("cpu"), "rows": rows})


if __name__ == "__main__":
    main()
