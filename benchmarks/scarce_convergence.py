"""Is real-only converged under the budget at every real-data size? (issue #27)

    python benchmarks/scarce_convergence.py runs/kscarce [--quick budget-quick --long budget-standard]
        [--json benchmarks/results/scarce_convergence.json]

Reads the real-only records of a run folder made with a real-data axis under two budget
schedules, the second the first trained twice as long (budget-standard = budget-quick x 2 steps,
everything else equal), and prints per size: AUROC over seeds under each, the difference, and
whether the longer budget's mean lies inside the shorter one's 95% interval (Rubin's rules over
the seeds both have). "converged" at a size means doubling the training changes nothing the
interval can see; a size where it is not means the budget, not the data, limits real-only there,
and every learning-curve comparison at that size is suspect.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def convergence(records: list[dict], quick: str, long: str) -> list[dict]:
    from cxrbench.aggregate import aggregate
    from cxrbench.subsets import size_text

    real_only = [r for r in records if r.get("status") == "ok" and (r.get("cell") or {}).get("protocol") == "real-only.v1"
                 and "real_data" in r.get("cell", {})]
    rows = []
    sizes = sorted({r["cell"]["real_data"] for r in real_only}, key=lambda s: min(1.0, s) if isinstance(s, float) else s)
    for size in sizes:
        per = {}
        for schedule in (quick, long):
            recs = [r for r in real_only if r["cell"]["real_data"] == size and r["cell"]["schedule"] == schedule]
            seeds = {r["cell"]["seed"] for r in recs}
            per[schedule] = (recs, seeds)
        common = per[quick][1] & per[long][1]
        if not common:
            continue
        pooled = {}
        for schedule in (quick, long):
            recs = [r for r in per[schedule][0] if r["cell"]["seed"] in common]
            agg = [a for a in aggregate(recs) if a["metrics"].get("auroc")]
            pooled[schedule] = agg[0]["metrics"]["auroc"]
        q, lg = pooled[quick], pooled[long]
        n = next(r["real_data"]["n_train"] for r in per[quick][0])
        inside = bool(q["ci"] is not None and q["ci"][0] <= lg["mean"] <= q["ci"][1])
        rows.append({"size": size, "size_text": size_text(size), "n_train": n, "seeds": sorted(common),
                     quick: {"mean": q["mean"], "sd": q["sd"], "ci": q["ci"]},
                     long: {"mean": lg["mean"], "sd": lg["sd"], "ci": lg["ci"]},
                     "difference": lg["mean"] - q["mean"], "long_mean_inside_quick_ci": inside})
    return rows


def main(argv: list[str] | None = None) -> int:
    from tabulate import tabulate

    from cxrbench.store import RunStore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder (the --out of `cxrbench run`)")
    p.add_argument("--quick", default="budget-quick")
    p.add_argument("--long", default="budget-standard")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if not (Path(args.run) / "cells").is_dir():
        print(f"{args.run}: not a run folder (no cells/ inside)", file=sys.stderr)
        return 2
    rows = convergence(RunStore(Path(args.run)).records(), args.quick, args.long)
    if not rows:
        print(f"{args.run}: no size has real-only records under both {args.quick} and {args.long}", file=sys.stderr)
        return 1

    def fmt(d):
        ci = f" [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}]" if d["ci"] else ""
        return f"{d['mean']:.3f}{ci}"

    print(tabulate([[r["size_text"], r["n_train"], len(r["seeds"]), fmt(r[args.quick]), fmt(r[args.long]),
                     f"{r['difference']:+.3f}", "yes" if r["long_mean_inside_quick_ci"] else "NO"] for r in rows],
                   headers=["real data", "n real", "seeds", f"{args.quick} AUROC [95% CI]",
                            f"{args.long} (2x steps)", "difference", "converged"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"run": Path(args.run).name, "quick": args.quick, "long": args.long,
                                               "rows": rows}, indent=1, sort_keys=True) + "\n")
    return 0 if all(r["long_mean_inside_quick_ci"] for r in rows) else 3


if __name__ == "__main__":
    sys.exit(main())
