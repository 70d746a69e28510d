"""External validity: does a generator's score survive another hospital, and does the ranking?

From the cell records of a run with ``external:`` test sets (and their predictions files), per
training configuration (dataset, image size, classifier, schedule, real-data size) and external
test set:

- :func:`transfer_rows` - per protocol / generator / ratio, pooled over seeds (Rubin's rules):
  AUROC on the internal test split and on the external set, the **transfer gap** (external -
  internal) and the gap **relative to real-only's** at the same seeds (positive: the synthetic
  data narrows the generalisation gap), each with its interval; the external set's own floor
  (``noise``) and ceiling (``real``) under the same protocol and ratio, and the utility between
  them. Each seed's gap and its CI come from the cell (cell_evaluation.transfer_section).
- :func:`rankings` - per protocol and ratio with at least three generator rows: Kendall's tau
  between the internal and the external AUROC rankings with a bootstrap CI over test patients
  (recomputed here from the predictions files, seeds averaged), and the rank changes.
- :func:`plain_reading` - sentences a clinical reader can act on, including "the ranking does
  not transfer" when it does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from cxrbench.aggregate import (DIFFERENCE, DIFFERENCE_OF_DIFFERENCES, UNIT, _se_from_ci, rubin_interval,
                                utility_between)

TABLE_HEADERS = ["Protocol", "Generator", "r", "Seeds", "Internal AUROC [95% CI]", "External AUROC [95% CI]",
                 "Transfer gap [95% CI]", "Gap vs real-only [95% CI]", "Utility on external"]


def _auroc(rec: dict, tname: str) -> tuple[float | None, list | None]:
    macro = ((rec.get("metrics") or {}).get(tname) or {}).get("macro") or {}
    return macro.get("auroc"), macro.get("auroc_ci")


def pool_seeds(values: list[float], cis: list, confidence: float = 0.95,
               bounds: tuple[float, float] | None = None) -> dict | None:
    """Rubin-pooled mean and interval of per-seed estimates with their bootstrap CIs, the interval
    clipped to ``bounds`` (the quantity's range; see aggregate.rubin_interval)."""
    pairs = [(v, ci) for v, ci in zip(values, cis) if v is not None]
    if not pairs:
        return None
    if len(pairs) == 1:
        return {"mean": pairs[0][0], "ci": pairs[0][1], "n_seeds": 1}
    pooled = rubin_interval([v for v, _ in pairs], [_se_from_ci(ci, confidence) for _, ci in pairs], confidence,
                            bounds=bounds)
    out = {"mean": pooled["mean"], "ci": pooled.get("ci"), "n_seeds": len(pairs)}
    if pooled.get("ci_clipped"):
        out["ci_clipped"] = True
    return out


def config_of(rec: dict) -> tuple:
    cell, spec = rec.get("cell") or {}, rec.get("spec") or {}
    return ((rec.get("dataset") or {}).get("name"), spec.get("size"), (spec.get("classifier") or {}).get("name"),
            cell.get("schedule"), str(cell.get("real_data")) if "real_data" in cell else None)


def row_of(rec: dict) -> tuple:
    cell = rec.get("cell") or {}
    gen = cell.get("generator") or {}
    return (cell.get("protocol"), gen.get("label") or gen.get("name") or "-", cell.get("ratio"))


def external_groups(records: list[dict]) -> list[dict]:
    """[{key, internal, external, records}] per training configuration and external test set, for
    ok records that carry a transfer section."""
    groups: dict[tuple, dict] = {}
    for rec in records:
        if rec.get("status") != "ok" or not rec.get("transfer"):
            continue
        for tname, entry in rec["transfer"].items():
            key = (config_of(rec), tname)
            g = groups.setdefault(key, {"key": key[0], "internal": entry.get("internal"), "external": tname,
                                        "records": []})
            g["records"].append(rec)
    return [groups[k] for k in sorted(groups, key=lambda k: tuple(str(x) for x in (*k[0], k[1])))]


def transfer_rows(group: dict, cards_of: Callable[[list[dict]], list[str]] | None = None) -> list[dict]:
    """One row per protocol / generator / ratio of ``group`` (see the module docstring);
    ``cards_of(records)`` gives each row the generator cards of its fits (``cards``; empty without it)."""
    by_row: dict[tuple, list[dict]] = {}
    for rec in group["records"]:
        by_row.setdefault(row_of(rec), []).append(rec)
    internal, external = group["internal"], group["external"]
    rows = []
    for key in sorted(by_row, key=lambda k: (str(k[0]), str(k[1]), k[2] or 0)):
        recs = sorted(by_row[key], key=lambda r: r["cell"]["seed"])
        tr = [r["transfer"][external] for r in recs]
        ins = [_auroc(r, internal) for r in recs]
        exs = [_auroc(r, external) for r in recs]
        rows.append({
            "protocol": key[0], "generator": key[1], "ratio": key[2],
            "plugin": ((recs[0]["cell"].get("generator") or {}).get("name")),
            "seeds": [r["cell"]["seed"] for r in recs], "cards": cards_of(recs) if cards_of else [],
            "internal": pool_seeds([a for a, _ in ins], [c for _, c in ins], bounds=UNIT),
            "external": pool_seeds([a for a, _ in exs], [c for _, c in exs], bounds=UNIT),
            "gap": pool_seeds([t.get("gap") for t in tr], [t.get("gap_ci") for t in tr], bounds=DIFFERENCE),
            "gap_vs_real_only": pool_seeds([t.get("gap_vs_baseline") for t in tr],
                                           [t.get("gap_vs_baseline_ci") for t in tr], bounds=DIFFERENCE_OF_DIFFERENCES),
        })
    # the external set's floor and ceiling; the ceiling's interval decides whether there is a scale
    add_references(rows, lambda r: (r["external"] or {}).get("mean"),
                   lambda r: ((r["external"] or {}).get("ci") or [None])[0])
    return rows


def add_references(rows: list[dict], value_of: Callable[[dict], float | None],
                   low_of: Callable[[dict], float | None] = lambda r: None,
                   same: Callable[[dict], tuple] = lambda r: (r["protocol"], r["ratio"])) -> None:
    """Each row's floor (the plain ``noise`` row) and ceiling (the plain ``real`` row) of the same
    ``same(row)`` (protocol and ratio; a learning curve adds the size), by ``value_of``, and its
    utility between them; a relabelled variant of noise or real is a generator row (rows without
    a ``plugin`` are named by their generator), and real-only rows have neither reference."""
    def plugin(r: dict) -> str:
        return r.get("plugin", r["generator"])

    refs = {(*same(r), plugin(r)): r for r in rows if plugin(r) in ("noise", "real") and r["generator"] == plugin(r)}
    for r in rows:
        floor_row, ceiling_row = (refs.get((*same(r), kind)) for kind in ("noise", "real"))
        r["floor"] = None if floor_row is None else value_of(floor_row)
        r["ceiling"] = None if ceiling_row is None else value_of(ceiling_row)
        r["utility"] = utility_between(value_of(r), r["floor"], r["ceiling"],
                                       None if ceiling_row is None else low_of(ceiling_row))


def rankings(group: dict, predictions: Callable[[dict, str], Path | None], *, n_resamples: int = 1000,
             seed: int = 0, confidence: float = 0.95) -> list[dict]:
    """Per protocol and ratio with >= 3 rows (real-only excluded): Kendall's tau [CI] between the
    internal and the external AUROC rankings, rank changes (evaluation/ranking.py). Each row's
    scores: the seeds every row of the comparison has, averaged in the AUROC. ``predictions(rec,
    test_set)`` finds a record's predictions file (None: not available; the comparison is skipped
    with a note)."""
    import numpy as np
    import pandas as pd

    from cxrbench.evaluation.ranking import ranking_agreement

    internal, external = group["internal"], group["external"]
    by_cmp: dict[tuple, dict[str, list[dict]]] = {}
    for rec in group["records"]:
        protocol, label, ratio = row_of(rec)
        if str(protocol).startswith("real-only"):
            continue
        by_cmp.setdefault((protocol, ratio), {}).setdefault(label, []).append(rec)
    out = []
    for (protocol, ratio), rows in sorted(by_cmp.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or 0)):
        entry = {"protocol": protocol, "ratio": ratio, "internal": internal, "external": external,
                 "models": sorted(rows)}
        seeds = sorted(set.intersection(*({r["cell"]["seed"] for r in recs} for recs in rows.values())))
        if len(rows) < 3 or not seeds:
            entry["note"] = f"{len(rows)} generator row(s) with common seeds {seeds}: a ranking needs 3"
            out.append(entry)
            continue
        frames, missing = {}, []
        for label, recs in rows.items():
            for rec in recs:
                if rec["cell"]["seed"] not in seeds:
                    continue
                for tname in (internal, external):
                    path = predictions(rec, tname)
                    if path is None:
                        missing.append(f"{label} seed {rec['cell']['seed']} {tname}")
                    else:
                        frames.setdefault((label, tname), []).append(pd.read_csv(path))
        if missing:
            entry["note"] = f"predictions not found for {', '.join(missing[:3])}: no ranking"
            out.append(entry)
            continue
        first = frames[(next(iter(rows)), internal)][0]
        label_col = next(c for c in first.columns if c.startswith("true_"))
        score_col = "score_" + label_col[len("true_"):]
        ref = {tname: frames[(next(iter(rows)), tname)][0] for tname in (internal, external)}

        def scores(label, tname):  # (seeds, N) in the first file's image order
            keys = ref[tname]["key"].tolist()
            return np.stack([df.set_index("key").loc[keys, score_col].to_numpy() for df in frames[(label, tname)]])

        entry.update(ranking_agreement(
            {label: scores(label, internal) for label in rows}, {label: scores(label, external) for label in rows},
            internal_y=ref[internal][label_col].to_numpy(dtype=float),
            external_y=ref[external][label_col].to_numpy(dtype=float),
            internal_groups=ref[internal]["patient_id"].astype(str).to_numpy(),
            external_groups=ref[external]["patient_id"].astype(str).to_numpy(),
            n_resamples=n_resamples, seed=seed, confidence=confidence))
        entry["seeds"] = seeds
        entry["label"] = label_col[len("true_"):]
        out.append(entry)
    return out


def fmt_interval(pooled: dict | None, signed: bool = False) -> str:
    if not pooled or pooled.get("mean") is None:
        return "-"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    ci = pooled.get("ci")
    text = fmt.format(pooled["mean"])
    return f"{text} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else text


def table_rows(rows: list[dict]) -> list[list[str]]:
    def ratio(r):
        return "-" if not r["ratio"] else f"{r['ratio']:g}"

    return [[r["protocol"], r["generator"], ratio(r), ",".join(str(s) for s in r["seeds"]), fmt_interval(r["internal"]),
             fmt_interval(r["external"]), fmt_interval(r["gap"], True), fmt_interval(r["gap_vs_real_only"], True),
             "-" if r["utility"] is None else f"{r['utility']:.2f}"] for r in rows]


def interval_sign(pooled: dict | None) -> int:
    """+1 / -1 when the interval lies above / below zero, else 0."""
    ci = (pooled or {}).get("ci")
    if not ci or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ci):
        return 0
    return 1 if ci[0] > 0 else -1 if ci[1] < 0 else 0


def _narrowing_source(row: dict, base: dict | None) -> str:
    """Where a narrower gap comes from. The gap vs real-only is (external - real-only's external) -
    (internal - real-only's internal), so a model that is simply worse at home "narrows" it too:
    split the mean difference into its two parts and say which one carries it."""
    if not (base and row["internal"] and row["external"] and base["internal"] and base["external"]):
        return ""
    d_ext = row["external"]["mean"] - base["external"]["mean"]
    d_int = row["internal"]["mean"] - base["internal"]["mean"]
    parts = (f": external AUROC {d_ext:+.3f} and internal {d_int:+.3f} against real-only (means)")
    if d_int < 0 and -d_int >= d_ext:
        return parts + (", so at least half of the narrowing is a lower score at home, not better transfer; "
                        "read its external AUROC against real-only's, not the gap")
    return parts


def plain_reading(group: dict, rows: list[dict], ranks: list[dict]) -> list[str]:
    """Plain sentences: how much real-only loses on the external set, which generators narrow or
    widen that loss, where the references sit, and whether the ranking transfers."""
    ext, lines = group["external"], []
    base = next((r for r in rows if str(r["protocol"]).startswith("real-only")), None)
    if base and base["gap"]:
        lines.append(f"Real-only moves from {fmt_interval(base['internal'])} on {group['internal']} to "
                     f"{fmt_interval(base['external'])} on {ext}: a transfer gap of {fmt_interval(base['gap'], True)}.")
    for r in rows:
        if r["plugin"] == "noise" and r["external"]:
            where = r["protocol"] + (f" r = {r['ratio']:g}" if r["ratio"] else "")
            below = r["external"]["mean"] < 0.5
            lines.append(f"The noise floor on {ext} under {where} is {fmt_interval(r['external'])}"
                         + (": below chance - this set's own floor, not 0.5, is what a generator must beat."
                            if below else "."))
    narrow = [r for r in rows if interval_sign(r["gap_vs_real_only"]) > 0 and r["plugin"] != "noise"]
    widen = [r for r in rows if interval_sign(r["gap_vs_real_only"]) < 0 and r["plugin"] != "noise"]
    measured = [r for r in rows if r["gap_vs_real_only"]]
    if measured:
        if not narrow:
            lines.append(f"No generator narrows real-only's generalisation gap on {ext} beyond its interval.")
        for r in narrow:
            lines.append(f"{r['generator']} ({r['protocol']}, r = {r['ratio']:g}) narrows the gap by "
                         f"{fmt_interval(r['gap_vs_real_only'], True)}" + _narrowing_source(r, base) + ".")
        for r in widen:
            lines.append(f"{r['generator']} ({r['protocol']}, r = {r['ratio']:g}) widens the gap "
                         f"({fmt_interval(r['gap_vs_real_only'], True)}).")
    for k in ranks:
        if k.get("tau") is None:
            lines.append(f"{k['protocol']} r = {k['ratio']:g}: no ranking ({k.get('note', 'not computed')}).")
            continue
        ci = k.get("tau_ci")
        tau = f"Kendall's tau {k['tau']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
        moved = "; ".join(f"{c['name']} {c['internal_rank']:g} -> {c['external_rank']:g}" for c in k["rank_changes"])
        verdict = {"agree": "the ranking transfers", "reversed": "the ranking is reversed on the external set",
                   "uncertain": "the ranking does not clearly transfer (the interval includes 0)"}.get(
                       k.get("agreement"), "the ranking's agreement is undetermined")
        lines.append(f"{k['protocol']} r = {k['ratio']:g}, {k['n_models']} generators: {tau}: {verdict}"
                     + (f"; rank changes: {moved}." if moved else "; no rank changes."))
    return lines
