"""Subgroups across a leaderboard: for whom does each model work, and does synthetic data close a gap?

Each cell run with ``evaluation: {subgroups: [...]}`` records, per test set, label and field, a
subgroup report (evaluation/subgroups.py: n, prevalence, AUROC, FNR and FPR at the tuned
threshold, worst-to-best gaps, "too few" below the minimum counts). This module pools those
reports over seeds (Rubin's rules on each seed's bootstrap interval) into one table per test
set, label, field and metric: a row per protocol / generator / ratio, a column per group, and the
worst-to-best gap; a value withheld in any seed's report stays "too few" (a mean over the seeds
that happened to have enough cases would be a number the minimum forbids).
"""

from __future__ import annotations

from collections.abc import Callable

from cxrbench.aggregate import UNIT
from cxrbench.external_validity import fmt_interval, config_of, pool_seeds, row_of

METRICS = {"auroc": "AUROC", "fnr": "false-negative rate (underdiagnosis)", "fpr": "false-positive rate"}
TOO_FEW = "too few"


def subgroup_tables(records: list[dict], cards_of: Callable[[list[dict]], list[str]] | None = None) -> list[dict]:
    """[{config, test_set, label, field, metric, groups: {name: {n, n_pos, n_neg, prevalence}},
    rows: [{protocol, generator, ratio, seeds, values: {group: pooled | TOO_FEW | None}, gap, cards}]}]
    for every (test set, label, field, metric) where some group has a value in some row; ``cards``:
    ``cards_of(records of the row)``, the generator cards of its fits (empty without ``cards_of``)."""
    tables: dict[tuple, dict] = {}
    for rec in records:
        if rec.get("status") != "ok" or not rec.get("subgroups"):
            continue
        for tname, entry in sorted(rec["subgroups"].items()):
            for label, fields in sorted((entry.get("labels") or {}).items()):
                for field, report in fields.items():
                    for metric in METRICS:
                        key = (config_of(rec), tname, label, field, metric)
                        t = tables.setdefault(key, {"config": key[0], "test_set": tname, "label": label,
                                                    "field": field, "metric": metric, "groups": {}, "by_row": {},
                                                    "row_records": {}})
                        t["by_row"].setdefault(row_of(rec), []).append((rec["cell"]["seed"], report))
                        t["row_records"].setdefault(row_of(rec), []).append(rec)  # for the row's cards
                        for g, e in report["groups"].items():
                            t["groups"].setdefault(g, {k: e.get(k) for k in ("n", "n_pos", "n_neg", "prevalence")})
    out = []
    for key in sorted(tables, key=lambda k: tuple(str(x) for x in (*k[0], *k[1:]))):
        t = tables.pop(key)
        records_of = t.pop("row_records")
        t["rows"] = [_pooled_row(row_key, sorted(reports, key=lambda x: x[0]), t["metric"])
                     | {"cards": cards_of(records_of[row_key]) if cards_of else []}
                     for row_key, reports in sorted(t.pop("by_row").items(),
                                                    key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][2] or 0))]
        if any(isinstance(v, dict) for r in t["rows"] for v in r["values"].values()):
            out.append(t)
    return out


def _pooled_row(row_key: tuple, reports: list[tuple[int, dict]], metric: str) -> dict:
    groups = sorted({g for _, rep in reports for g in rep["groups"]})
    values = {}
    for g in groups:
        entries = [rep["groups"].get(g) for _, rep in reports]
        if any(e is None or e.get(metric) is None for e in entries):
            withheld = any(e is not None and e.get("too_few") and e.get(metric) is None for e in entries)
            values[g] = TOO_FEW if withheld else None
            continue
        values[g] = pool_seeds([e[metric] for e in entries], [e.get(f"{metric}_ci") for e in entries], bounds=UNIT)
    gaps = [rep["gaps"].get(metric) or {} for _, rep in reports]
    gap = None
    if gaps and all(x.get("gap") is not None for x in gaps):
        gap = pool_seeds([x["gap"] for x in gaps], [x.get("gap_ci") for x in gaps], bounds=UNIT)  # worst - best
        gap.update(best=gaps[0].get("best"), worst=gaps[0].get("worst"),
                   consistent=len({(x.get("best"), x.get("worst")) for x in gaps}) == 1)
    return {"protocol": row_key[0], "generator": row_key[1], "ratio": row_key[2],
            "seeds": [s for s, _ in reports], "values": values, "gap": gap}


def headers(table: dict) -> list[str]:
    groups = list(table["groups"])
    return ["Protocol", "Generator", "r", "Seeds"] + [_group_head(g, table["groups"][g]) for g in groups] + \
        ["Worst-to-best gap [95% CI]"]


def _group_head(name: str, counts: dict) -> str:
    prev = counts.get("prevalence")
    return f"{name} (n={counts.get('n')}, {counts.get('n_pos')}+/{counts.get('n_neg')}-" + \
        (f", prev {prev:.2f})" if prev is not None else ")")


def table_rows(table: dict) -> list[list[str]]:
    out = []
    for r in table["rows"]:
        cells = []
        for g in table["groups"]:
            v = r["values"].get(g)
            cells.append(TOO_FEW if v == TOO_FEW else "-" if v is None else fmt_interval(v))
        gap = r["gap"]
        gap_text = "-" if not gap else f"{fmt_interval(gap)} ({gap['best']} best, {gap['worst']} worst" + \
            ("" if gap.get("consistent", True) else "; not the same groups in every seed") + ")"
        out.append([r["protocol"], r["generator"], "-" if not r["ratio"] else f"{r['ratio']:g}",
                    ",".join(str(s) for s in r["seeds"]), *cells, gap_text])
    return out


def plain_reading(table: dict) -> list[str]:
    """Which group fares worst for real-only, and which generator rows narrow or widen that gap."""
    what = METRICS[table["metric"]]
    base = next((r for r in table["rows"] if str(r["protocol"]).startswith("real-only")), None)
    lines = []
    if base is None or not base["gap"]:
        return lines
    b = base["gap"]
    lines.append(f"Real-only's {what} by {table['field']} on {table['test_set']}: {b['worst']} fares worst, "
                 f"{b['best']} best; gap {fmt_interval(b)}.")
    for r in table["rows"]:
        if r is base or not r["gap"] or r["generator"] in ("noise",):
            continue
        diff = r["gap"]["mean"] - b["mean"]
        if abs(diff) < 0.02:
            continue
        verb = "narrows" if diff < 0 else "widens"
        where = r["protocol"] + (f", r = {r['ratio']:g}" if r["ratio"] else "")
        lines.append(f"{r['generator']} ({where}) {verb} it to {fmt_interval(r['gap'])} (point estimates; compare the "
                     "intervals).")
    return lines
