"""Results out of a run folder: ``show --format``, ``export`` and ``rescore`` (issue #32).

Contract
--------
* :func:`add_results_commands` adds the ``export`` and ``rescore`` subcommands to the
  ``cxrbench`` parser; :data:`RESULTS_COMMANDS` maps them to their functions (cli.py dispatches).
  This module imports nothing heavy at import time, so ``cxrbench --help`` stays light.
* ``cxrbench show RUN --format table|json|csv|markdown``: ``table`` is run_table.print_table (unchanged);
  the others go through :func:`show_formatted`:

  - ``json``: one document ``{"run", "rows", "aggregates", "problems"}``: ``rows`` the export rows
    (export.py, one per cell and test set), ``aggregates`` the rows over seeds
    (aggregate.aggregate), ``problems`` one line per record file not trusted. NaN / inf -> null.
  - ``csv``: the export rows (the columns of docs/export-columns.md).
  - ``markdown``: the per-seed table and the over-seeds table as GitHub Markdown tables, then
    failed cells and untrusted files as list items.
* ``cxrbench export RUN... --format csv|parquet [--out FILE]``: export rows of every run
  (csv to standard output without --out). Exit 0; untrusted files are named on standard error.
* ``cxrbench rescore RUN [--bootstrap N] [--threshold youden|f1] [--dry-run]``: rescore.py;
  exit 1 when a finished cell could not be rescored (each said in one line), else 0.
"""

from __future__ import annotations

import sys

SHOW_FORMATS = ("table", "json", "csv", "markdown")


def add_results_commands(sub) -> None:
    """The ``export`` and ``rescore`` subcommands."""
    export = sub.add_parser(
        "export", help="one row per cell and test set (metrics flattened) of one or more run directories, as CSV or "
                       "Parquet; the columns are documented in docs/export-columns.md")
    export.add_argument("run_dirs", nargs="+", metavar="RUN", help="a run directory (the --out of a run)")
    export.add_argument("--format", choices=["csv", "parquet"], default="csv", help="csv (default) or parquet "
                                                                                    "(needs pyarrow)")
    export.add_argument("--out", metavar="FILE", help="output file (csv: default standard output)")

    rescore = sub.add_parser(
        "rescore", help="recompute the metrics of finished cells from their stored predictions (another bootstrap "
                        "count, a metric added later) without training anything; says what changed")
    rescore.add_argument("run_dir", metavar="RUN")
    rescore.add_argument("--bootstrap", type=int, metavar="N", help="bootstrap resamples (default: each test set's own)")
    rescore.add_argument("--threshold", choices=["youden", "f1"],
                         help="threshold rule; re-choosing needs tuning-set scores, which records do not store: "
                              "without them the recorded thresholds are kept (said in one line)")
    rescore.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")


def add_show_format(show) -> None:
    show.add_argument("--format", choices=SHOW_FORMATS, default="table",
                      help="table (default), json (per-seed and over-seeds rows), csv (the export rows), markdown")


def cmd_export(args) -> int:
    from cxrbench.export import export_rows, write_rows

    rows, problems = export_rows(args.run_dirs)
    for line in problems:
        print(f"NOT EXPORTED: {line}", file=sys.stderr)
    write_rows(rows, args.format, args.out)
    if args.out not in (None, "-"):
        print(f"{len(rows)} row(s) -> {args.out}")
    return 0


def cmd_rescore(args) -> int:
    from cxrbench.rescore import rescore_run

    report = rescore_run(args.run_dir, bootstrap=args.bootstrap, threshold=args.threshold, dry_run=args.dry_run)
    print("\n".join(report.lines))
    return 1 if report.errors else 0


RESULTS_COMMANDS = {"export": cmd_export, "rescore": cmd_rescore}


# --------------------------------------------------------------------------- show --format


def _clean(x):
    """JSON-safe: NaN / inf -> None, tuples -> lists."""
    import math

    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def show_document(run_dir) -> dict:
    """The ``show --format json`` document of a run folder."""
    from pathlib import Path

    from cxrbench.aggregate import aggregate
    from cxrbench.export import flatten_record
    from cxrbench.store import RunStore

    records, problems = RunStore(Path(run_dir)).checked_records()
    rows = [row for rec in records for row in flatten_record(rec, run_dir)]
    return _clean({"run": str(run_dir), "rows": rows, "aggregates": aggregate(records), "problems": problems})


def _num(v, digits=3, signed=False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _with_ci(v, low, high) -> str:
    return _num(v) + (f" [{low:.3f}, {high:.3f}]" if v is not None and low is not None and high is not None else "")


def markdown_text(run_dir) -> str:
    """The ``show --format markdown`` text of a run folder."""
    from tabulate import tabulate

    from cxrbench.subsets import size_text

    doc = show_document(run_dir)
    rows = doc["rows"]
    sized = any(r.get("real_data") is not None for r in rows)
    seg = bool(rows) and all(r["task"] == "segmentation" or r["status"] != "ok" for r in rows)
    table, failed = [], []
    for r in rows:
        base = [r["protocol"], r["generator"], r["model"], r["ratio"], *([size_text(r.get("real_data"))] if sized else []),
                r["seed"], r["status"]]
        if r["status"] != "ok":
            table.append(base + ["-", "FAILED (below)", "", ""])
            failed.append(f"- FAILED `{r['cell_id']}`: {(r.get('error') or '').splitlines()[0] if r.get('error') else ''}")
            continue
        if r["task"] == "segmentation":
            vs = (f"{_num(r.get('delta_dice_vs_real_only'), signed=True)} (p={r['p_vs_real_only']:.3g})"
                  if r.get("delta_dice_vs_real_only") is not None and r.get("p_vs_real_only") is not None else "")
            scores = [_with_ci(r.get("dice"), r.get("dice_ci_low"), r.get("dice_ci_high")), _num(r.get("hd95"), 2), vs]
        else:
            vs = (f"{_num(r.get('delta_auroc_vs_real_only'), signed=True)} (DeLong p={r['p_vs_real_only']:.3g})"
                  if r.get("delta_auroc_vs_real_only") is not None and r.get("p_vs_real_only") is not None else "")
            scores = [_with_ci(r.get("auroc"), r.get("auroc_ci_low"), r.get("auroc_ci_high")), _num(r.get("aupr")), vs]
        table.append(base + [r["test_set"], *scores])
    headers = ["protocol", "generator", "segmenter" if seg else "classifier", "r", *(["real data"] if sized else []),
               "seed", "status", "test set",
               *(["Dice [95% CI]", "HD95 (px)", "vs real-only (Dice)"] if seg else ["AUROC [95% CI]", "AUPR", "vs real-only"])]
    parts = [f"## {doc['run']}", "", tabulate(table, headers=headers, tablefmt="github")]
    agg = []
    for a in doc["aggregates"]:
        if len(a["seeds"]) < 2:
            continue
        auc, ap = a["metrics"].get("auroc"), a["metrics"].get("aupr")
        seeds = f"{len(a['seeds']) - len(a['failed_seeds'])}/{len(a['seeds'])}"
        cell = [a["protocol"], a["generator"], a["ratio"], *([size_text(a.get("real_data"))] if sized else []), seeds,
                a["test_set"] or "-"]
        if not auc:
            if len(a["failed_seeds"]) == len(a["seeds"]):
                agg.append(cell + ["all seeds failed", "", ""])
            continue
        ci = auc.get("ci")
        vs = (a.get("vs_real_only") or {}).get("delta_auroc")
        vs_text = ""
        if vs:
            vs_text = _num(vs["mean"], signed=True) + (f" [{vs['ci'][0]:+.3f}, {vs['ci'][1]:+.3f}]" if vs.get("ci") else "")
        agg.append(cell + [f"{auc['mean']:.3f} +/- {_num(auc.get('sd'))}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""),
                           _num(ap["mean"]) if ap else "n/a", vs_text])
    if agg:
        parts += ["", "Over seeds (mean +/- sd [95% CI pooling bootstrap and seed variation, Rubin's rules]):", "",
                  tabulate(agg, headers=["protocol", "generator", "r", *(["real data"] if sized else []), "seeds ok",
                                         "test set", "AUROC mean +/- sd [95% CI]", "AUPR", "dAUROC vs real-only [CI]"],
                           tablefmt="github")]
    extra = failed + [f"- NOT SHOWN: {p}" for p in doc["problems"]]
    if extra:
        parts += [""] + extra
    return "\n".join(parts) + "\n"


def show_formatted(args) -> int:
    """``cxrbench show RUN --format json|csv|markdown`` (the run folder is already checked)."""
    import json

    fmt = getattr(args, "format", "table")
    if fmt == "json":
        print(json.dumps(show_document(args.run_dir), indent=2, allow_nan=False, default=str))
    elif fmt == "csv":
        from cxrbench.export import write_rows

        write_rows(show_document(args.run_dir)["rows"], "csv", None)
    elif fmt == "markdown":
        sys.stdout.write(markdown_text(args.run_dir))
    else:
        raise ValueError(f"unknown show format {fmt!r}")
    return 0
