"""The summary tables of leaderboard/README.md, printed from a built leaderboard.csv.

    python benchmarks/leaderboard_summary.py leaderboard/kermany-small/leaderboard.csv

Prints two Markdown tables: every row with its AUROC over seeds, AUPR, dAUROC vs real-only,
utility between the noise floor and the real ceiling, domain FD, cost per delivered image and fit device-hours; then the image
quality of the synthetic-only.v2 rows that have a quality report. Numbers come from the CSV
(unrounded there), so the README never carries a number typed by hand.
"""

from __future__ import annotations

import csv
import sys

def _fixed(value: str, digits: int = 3, signed: bool = False) -> str:
    if not value:
        return "-"
    return f"{float(value):+.{digits}f}" if signed else f"{float(value):.{digits}f}"


def _sig(value: str) -> str:
    return f"{float(value):.3g}" if value else "-"


def main_table(rows: list[dict]) -> str:
    lines = ["| Generator | Protocol | r | Seeds ok | AUROC mean +/- sd [95% CI] | AUPR | dAUROC vs real-only | "
             "Utility (floor 0, ceiling 1) | domain FD | s/image | fit device-h |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["generator"]
        if r.get("reference") in ("ceiling", "floor"):  # the builder's Reference column
            name = f"{name} ({r['reference']})"
        if r["chain"] not in ("", "-") and r["chain"] not in name:
            name = f"{name} ({r['chain']})"
        auroc = (f"{float(r['auroc_mean']):.3f} +/- {float(r['auroc_sd'] or 0):.3f} "
                 f"[{float(r['auroc_ci_low']):.3f}, {float(r['auroc_ci_high']):.3f}]") if r["auroc_mean"] else "-"
        ratio = _fixed(r["ratio"], 0) if r["protocol"].startswith("supplemented") else ""
        lines.append(f"| {name} | {r['protocol']} | {ratio} | {r['seeds']} | {auroc} | {_fixed(r['aupr'])} | "
                     f"{_fixed(r['delta_auroc'], signed=True)} | {_fixed(r['utility_ratio'], 2)} | "
                     f"{_sig(r['domain_fd'])} | {_sig(r['seconds_per_image'])} | {_sig(r['fit_device_hours'])} |")
    return "\n".join(lines)


def quality_table(rows: list[dict]) -> str:
    lines = ["| Generator | domain FD | precision / recall | density / coverage | MS-SSIM synthetic / real | "
             "label agreement | near copies |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["protocol"] != "synthetic-only.v2" or not r["domain_fd"]:
            continue
        agreement = _fixed(r["label_agreement"])
        if r["chain"] not in ("", "-"):  # the proxy filter uses the same reference network
            agreement = f"({agreement}: circular, see below)"
        copies = f"{float(r['near_copies']) * 100:.1f}%" if r["near_copies"] else "-"
        lines.append(f"| {r['generator']} | {_sig(r['domain_fd'])} | {_fixed(r['precision'])} / {_fixed(r['recall'])} | "
                     f"{_fixed(r['density'])} / {_fixed(r['coverage'])} | {_fixed(r['ms_ssim'])} / "
                     f"{_fixed(r['ms_ssim_real'])} | {agreement} | {copies} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python benchmarks/leaderboard_summary.py LEADERBOARD_CSV", file=sys.stderr)
        return 2
    with open(argv[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    print(main_table(rows) + "\n\n" + quality_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
