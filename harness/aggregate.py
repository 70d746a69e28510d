"""Seeds as an axis: one aggregate row per configuration over its per-seed cells.

A single-seed synthetic-only score cannot tell a generator from noise (``noise`` scored AUROC
0.46-0.86 over five seeds under synthetic-only.v1), so every configuration run with several seeds
gets a row with the mean, the standard deviation over seeds, and a confidence interval that
accounts for both sources of uncertainty:

* *within* a seed: the test-set sampling error, the patient-level bootstrap standard error of that
  cell (``auroc_se`` in its record);
* *between* seeds: training randomness (initialisation, shuffling, augmentation, synthetic sample).

All seeds are scored on the same test set, so the within-seed error does not shrink with more
seeds. That is the structure Rubin's rules were made for (the same data analysed m times with
independent random draws; Rubin 1987): total variance ``T = W + (1 + 1/m) B`` with ``W`` the mean
within-seed variance and ``B`` the between-seed variance, and a t interval with
``df = (m - 1) (1 + W / ((1 + 1/m) B))^2`` degrees of freedom. With one seed it reduces to the cell's
own bootstrap interval.

The paired test against real-only is done per seed (DeLong on the same test images) and summarised
here: mean difference, its Rubin interval (within = the DeLong standard error), and how many seeds
were significant in each direction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

AGGREGATE_METHOD = "rubin-rules: T = W + (1 + 1/m) B, t interval (Rubin 1987)"


def utility_between(value: float | None, floor: float | None, ceiling: float | None,
                    ceiling_low: float | None = None) -> float | None:
    """Where ``value`` sits between the noise floor (0) and the real ceiling (1) measured on the
    same test set the same way; None without both references or when the ceiling is not above
    the floor (there is no scale to read on). With ``ceiling_low`` (the lower end of the ceiling's
    interval) also None when the ceiling is not clearly above the floor: on an external set where
    noise and real score 0.547 and 0.557 [0.408, 0.709], a ratio over a 0.010 span read 6.8."""
    if None in (value, floor, ceiling) or ceiling <= floor:
        return None
    if ceiling_low is not None and ceiling_low <= floor:
        return None
    return (value - floor) / (ceiling - floor)


# The ranges pooled intervals are clipped to (see rubin_interval): a score or rate, a difference
# of two of them, a difference of two differences (a transfer gap relative to real-only's), and a
# distance (HD95 in pixels).
UNIT, DIFFERENCE, DIFFERENCE_OF_DIFFERENCES = (0.0, 1.0), (-1.0, 1.0), (-2.0, 2.0)
NON_NEGATIVE = (0.0, math.inf)


def rubin_interval(estimates: Sequence[float], ses: Sequence[float | None], confidence: float = 0.95,
                   bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Pool per-seed estimates with their standard errors. Returns mean, sd (between seeds,
    ddof=1), within/between/total variance, degrees of freedom and the interval.

    ``bounds``: the range the quantity lives in (``UNIT`` for an AUROC, a Dice or a rate). With
    three seeds that disagree, the t interval (df near 2) can reach past it - an AUROC interval
    of [-0.19, 1.09] - so it is clipped to the range and ``ci_clipped`` says so: the clipped
    interval still says "the seeds disagree too much to say more", without impossible values."""
    from scipy import stats

    m = len(estimates)
    if m == 0:
        raise ValueError("no estimates to pool")
    mean = sum(estimates) / m
    between = sum((x - mean) ** 2 for x in estimates) / (m - 1) if m > 1 else 0.0
    known = [s for s in ses if s is not None and math.isfinite(s)]
    within = sum(s * s for s in known) / len(known) if known else 0.0
    total = within + (1.0 + 1.0 / m) * between
    if m > 1 and between > 0:
        r = (1.0 + 1.0 / m) * between / max(within, 1e-300)
        df = (m - 1) * (1.0 + 1.0 / r) ** 2
    else:
        df = math.inf
    q = stats.norm.ppf(0.5 + confidence / 2) if math.isinf(df) else stats.t.ppf(0.5 + confidence / 2, df)
    half = q * math.sqrt(total)
    ci = [mean - half, mean + half] if known or m > 1 else None
    pooled = {
        "mean": mean, "sd": math.sqrt(between) if m > 1 else None, "n_seeds": m,
        "within_var": within, "between_var": between, "total_var": total,
        "df": None if math.isinf(df) else df, "ci": ci,
    }
    if ci and bounds and (ci[0] < bounds[0] or ci[1] > bounds[1]):
        pooled["ci"] = [max(ci[0], bounds[0]), min(ci[1], bounds[1])]
        pooled["ci_clipped"] = True
    return pooled


def _se_from_ci(ci: Sequence[float] | None, confidence: float) -> float | None:
    """A standard error from a percentile interval (records written before auroc_se existed)."""
    from scipy import stats

    if not ci:
        return None
    return (ci[1] - ci[0]) / (2 * stats.norm.ppf(0.5 + confidence / 2))


def config_key(record: dict) -> tuple:
    """Everything but the seed that identifies a cell's configuration (context hash included)."""
    cell = record.get("cell", {})
    gen = cell.get("generator") or {}
    context = str(record.get("cell_id", "")).rsplit("__", 1)[-1]
    return (cell.get("protocol"), gen.get("label", "-"), cell.get("ratio"), cell.get("schedule"), context,
            cell.get("real_data"))


def is_truncated(record: dict) -> bool:
    return bool((record.get("generator") or {}).get("truncated"))


def aggregate(records: Iterable[dict]) -> list[dict]:
    """One row per (configuration, test set) with at least one seed; see the module doc."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        groups.setdefault(config_key(rec), []).append(rec)
    rows = []
    for key, recs in groups.items():
        recs = sorted(recs, key=lambda r: r.get("cell", {}).get("seed", 0))
        ok = [r for r in recs if r.get("status") == "ok"]
        failed = [r.get("cell", {}).get("seed") for r in recs if r.get("status") != "ok"]
        test_sets = sorted({t for r in ok for t in r.get("metrics", {})})
        if not ok:
            rows.append(_row(key, None, recs, failed, {}, {}))  # every seed failed
            continue
        for tname in test_sets:
            per_seed = [r for r in ok if tname in r.get("metrics", {})]
            confidence = float(((per_seed[0].get("spec") or {}).get("evaluation") or {}).get("confidence", 0.95))
            metrics = {}
            for metric in ("auroc", "aupr"):
                vals, ses = [], []
                for r in per_seed:
                    macro = r["metrics"][tname].get("macro", {})
                    if macro.get(metric) is None:
                        continue
                    vals.append(float(macro[metric]))
                    se = macro.get(f"{metric}_se")
                    ses.append(float(se) if se is not None else _se_from_ci(macro.get(f"{metric}_ci"), confidence))
                if vals:
                    metrics[metric] = rubin_interval(vals, ses, confidence, bounds=UNIT)
                    metrics[metric]["per_seed"] = vals
                    own = per_seed[0]["metrics"][tname].get("macro", {}).get(f"{metric}_ci")
                    if len(vals) == 1 and own:
                        # one seed: the cell's own (percentile bootstrap) interval, the one `show`
                        # prints beside the cell, not a normal approximation of it
                        metrics[metric]["ci"] = [float(own[0]), float(own[1])]
                        metrics[metric]["ci_method"] = "the cell's patient-level bootstrap percentile interval"
            rows.append(_row(key, tname, recs, failed, metrics, _paired_summary(per_seed, tname, confidence),
                             _paired_summary(per_seed, tname, confidence, "vs_noise_control")))
    return rows


def _paired_summary(records: list[dict], tname: str, confidence: float, field: str = "comparisons") -> dict:
    """Per-seed DeLong comparisons (macro over labels), pooled over seeds: against real-only
    (``comparisons``), or against the noise control at the same size and ratio
    (``vs_noise_control``: the content gain)."""
    deltas, ses, ps = [], [], []
    for r in records:
        comp = (r.get(field) or {}).get(tname) or {}
        labels = [c for c in (comp.get("labels") or {}).values() if c.get("delta") is not None]
        if not labels:
            continue
        deltas.append(sum(c["delta"] for c in labels) / len(labels))
        se = [c.get("se") for c in labels]
        ses.append(math.sqrt(sum(s * s for s in se)) / len(se) if all(s is not None for s in se) else None)
        ps.append(min((c["p_value"] for c in labels if c.get("p_value") is not None), default=None))
    if not deltas:
        return {}
    pooled = rubin_interval(deltas, ses, confidence, bounds=DIFFERENCE)
    alpha = 1 - confidence
    return {
        "delta_auroc": pooled, "p_values": ps,
        "seeds_better": sum(1 for d, p in zip(deltas, ps) if p is not None and p < alpha and d > 0),
        "seeds_worse": sum(1 for d, p in zip(deltas, ps) if p is not None and p < alpha and d < 0),
        "n_seeds": len(deltas),
    }


def _row(key: tuple, tname: str | None, recs: list[dict], failed: list, metrics: dict, paired: dict,
         vs_noise: dict | None = None) -> dict:
    protocol, label, ratio, schedule, context, real_data = key
    return {
        "protocol": protocol, "generator": label, "ratio": ratio, "schedule": schedule, "context": context,
        **({} if real_data is None else {"real_data": real_data}),
        "test_set": tname, "seeds": [r.get("cell", {}).get("seed") for r in recs], "failed_seeds": failed,
        "truncated": any(is_truncated(r) for r in recs), "method": AGGREGATE_METHOD,
        "metrics": metrics, "vs_real_only": paired, **({"vs_noise_control": vs_noise} if vs_noise else {}),
    }
