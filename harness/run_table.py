"""The run table: what `cxrbench run` prints at its end and `cxrbench show RUN` prints.

Per-seed rows (one per cell and test set: AUROC [CI], AUPR and the DeLong p vs real-only for
classification; Dice [CI], HD95 and the paired Dice difference for segmentation), then one row per
configuration over its seeds (Rubin's rules), then the learning curves of a real-data axis. The
small record readers (`chain`, `model_name`, `generator_label`) also name rows in the leaderboard.
"""

from __future__ import annotations

from pathlib import Path

from cxrbench.hashing import content_key


def _score_cells(m: dict, comp: dict) -> list[str]:
    """The score columns of one test set: AUROC [CI], AUPR, DeLong p (classification) or Dice
    [CI], HD95, the paired Dice difference (segmentation)."""
    macro = m.get("macro", {})

    def with_ci(v, ci):
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if v is not None and ci else (f"{v:.3f}" if v is not None else "n/a")

    if "dice" in macro:
        diff = comp.get("difference")
        hd = macro.get("hd95")
        return [with_ci(macro.get("dice"), macro.get("dice_ci")), f"{hd:.2f}" if hd is not None else "n/a",
                f"{diff:+.3f}" + (f" (p={comp['p_value']:.3g})" if comp.get("p_value") is not None else "")
                if diff is not None else ""]
    ps = [c.get("p_value") for c in (comp.get("labels") or {}).values() if c.get("p_value") is not None]
    ap = macro.get("aupr")
    return [with_ci(macro.get("auroc"), macro.get("auroc_ci")), f"{ap:.3f}" if ap is not None else "n/a",
            f"DeLong p={min(ps):.3g}" if ps else ""]


def print_table(out: Path, current: set[str] | None = None) -> None:
    """Per-seed rows, then (when a configuration ran with several seeds) one row per
    configuration over its seeds: mean, sd and a CI that pools bootstrap and seed variation.
    ``current``: the cells of this invocation; other records in the folder are marked."""
    from tabulate import tabulate

    from cxrbench.aggregate import aggregate
    from cxrbench.store import RunStore

    records, problems = RunStore(out).checked_records()
    # the real-data axis gets a column only in folders that use it (older tables stay as they were)
    sized = any("real_data" in (rec.get("cell") or {}) for rec in records)
    rows, earlier, failures = [], False, []
    for rec in records:
        cell = rec.get("cell", {})
        status = rec.get("status", "?") + ("*" if current is not None and rec.get("cell_id") not in current else "")
        base = [cell.get("protocol"), _generator_label(rec), _chain(rec), _classifier(rec), cell.get("ratio"),
                *([_real_data_text(rec)] if sized else []), cell.get("seed"), status]
        earlier = earlier or status.endswith("*")
        if rec.get("status") != "ok":
            rows.append(base + ["-", "-", "-", "FAILED (in full below)"])
            failures.append((rec.get("cell_id"), (rec.get("error") or {}).get("message", "")))
            continue
        for tname, m in rec.get("metrics", {}).items():
            rows.append(base + [tname, *_score_cells(m, (rec.get("comparisons") or {}).get(tname, {}))])
    seg = bool(records) and all("segmenter" in r or r.get("status") != "ok" for r in records)
    print(tabulate(rows, headers=["protocol", "generator", "post-processing", "segmenter" if seg else "classifier",
                                  "r", *(["real data (n)"] if sized else []), "seed", "status", "test set",
                                  *(["Dice [95% CI]", "HD95 (px)", "vs real-only (Dice)"] if seg else
                                    ["AUROC [95% CI]", "AUPR", "vs real-only"])]))
    if earlier:
        print("* from an earlier invocation into this folder (not run or reused by this one)")
    for cell_id, message in failures:  # never cut: the cause is usually at the end
        print(f"FAILED {cell_id}: {message}")
    for line in problems:  # never shown as a number
        print(f"NOT SHOWN: {line}")
    unsealed = sum(1 for rec in records if "digest" not in rec)
    if unsealed:
        print(f"{unsealed} record(s) carry no digest (written before cxrbench sealed records): their numbers "
              "cannot be checked")
    agg = [a for a in aggregate(records) if len(a["seeds"]) > 1]
    if agg:
        _print_aggregates(agg, sized)
    if sized:
        from cxrbench.learning_curves import print_curves

        print_curves(records)


def _print_aggregates(agg: list[dict], sized: bool) -> None:
    """One row per configuration over its seeds."""
    from tabulate import tabulate

    from cxrbench.subsets import size_text

    arows = []
    for a in agg:
        label = a["generator"] + (" (TRUNCATED fit)" if a["truncated"] else "")
        seeds = f"{len(a['seeds']) - len(a['failed_seeds'])}/{len(a['seeds'])}"
        auc, ap, vs = a["metrics"].get("auroc"), a["metrics"].get("aupr"), a["vs_real_only"]
        cell = [a["protocol"], label, a["ratio"], *([size_text(a.get("real_data"))] if sized else []), seeds,
                a["test_set"] or "-"]
        if not auc:
            arows.append(cell + ["all seeds failed", "", ""] + ([""] if sized else []))
            continue
        ci = auc["ci"]
        sd = f"{auc['sd']:.3f}" if auc["sd"] is not None else "n/a (1 seed ok)"
        text = f"{auc['mean']:.3f} +/- {sd}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        gains = [_paired_text(vs)] + ([_paired_text(a.get("vs_noise_control"))] if sized else [])
        arows.append(cell + [text, f"{ap['mean']:.3f}" if ap else "n/a", *gains])
    print("\nover seeds (mean +/- sd [95% CI pooling bootstrap and seed variation, Rubin's rules]):")
    print(tabulate(arows, headers=["protocol", "generator", "r", *(["real data"] if sized else []), "seeds ok",
                                   "test set", "AUROC mean +/- sd [95% CI]", "AUPR",
                                   "dAUROC vs real-only [CI]; seeds p<0.05",
                                   *(["content gain vs real + r x noise [CI]; seeds p<0.05"] if sized else [])]))


def _paired_text(vs: dict | None) -> str:
    """A pooled paired difference: mean [CI]; seeds significantly worse / better (DeLong)."""
    if not vs:
        return ""
    d = vs["delta_auroc"]
    dci = f" [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d.get("ci") else ""
    return f"{d['mean']:+.3f}{dci}; worse in {vs['seeds_worse']}/{vs['n_seeds']}, better in {vs['seeds_better']}/{vs['n_seeds']}"


def _real_data_text(rec: dict) -> str:
    """A cell's real-data size and the number of real training images it gave: ``5% (235)``."""
    from cxrbench.subsets import size_text

    size = (rec.get("cell") or {}).get("real_data")
    n = (rec.get("real_data") or {}).get("n_train")
    return size_text(size) + (f" ({n})" if n is not None else "")


def _chain(rec: dict) -> str:
    """The post-processing steps a generator cell's images went through: the generator's own,
    then the spec's (``-`` for none, and for cells without a generator)."""
    generator = rec.get("cell", {}).get("generator") or {}
    steps = [p.get("name", "?") for p in (generator.get("postprocess") or []) + ((rec.get("spec") or {}).get("postprocess") or [])]
    return " > ".join(steps) if steps and generator else "-"


def _classifier(rec: dict) -> str:
    """The trained model's name: the segmenter of a segmentation record, else the classifier."""
    if "segmenter" in rec:
        return (rec.get("segmenter") or {}).get("name", "?")
    return ((rec.get("spec") or {}).get("classifier") or {}).get("name", "?")


def _generator_label(rec: dict) -> str:
    cell_gen = rec.get("cell", {}).get("generator") or {}
    gen = cell_gen.get("label", "-")
    options = cell_gen.get("options") or {}
    if options and gen == f"{cell_gen.get('name')}-{content_key(options, 6)}":
        # a row without a label is named by a hash of its options: say which options
        gen += " (" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"
    g = rec.get("generator") or {}
    if g.get("seed_check") and not g["seed_check"].get("ok", True):
        gen += " (SEED CHECK FAILED: " + "; ".join(g["seed_check"].get("problems", [])) + ")"
    if g.get("truncated"):
        stats = g.get("fit_stats") or {}
        gen += f" (TRUNCATED fit: {stats.get('steps')}/{stats.get('steps_requested')} steps)"
    return gen
