"""Subgroup (fairness) evaluation: per-group AUROC / FNR / FPR and worst-to-best gaps.

Functional and numpy-only. A *field* is a per-image attribute from the metadata (sex, site,
view, an age band derived from age...); each image belongs to at most one *group* (value) of a
field, or to none when the value is missing. For ONE binary label,
:func:`subgroup_report` gives per group the counts, AUROC, and at a fixed operating threshold
the false-negative rate (underdiagnosis) and false-positive rate, each with a percentile
bootstrap CI, and per metric the gap between the best and the worst group with a CI from the
SAME resamples. Resampling draws patients of the whole test set (not per group), so a group's
images keep their within-patient correlation and the groups' metrics stay jointly resampled.

A metric computed on too few cases is withheld (None) with a plain ``"too_few"`` text, never
reported as a number: AUROC needs ``min_positives`` positives AND ``min_negatives`` negatives,
FNR needs ``min_positives`` positives, FPR needs ``min_negatives`` negatives.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from .bootstrap import percentile_ci, resample_weights
from .metrics import _safe_ratio, auroc, auroc_from_groups, binary_inputs, group_weights
from .report import _json_ci, _json_number

__all__ = [
    "DEFAULT_AGE_EDGES",
    "SUBGROUP_METRICS",
    "age_band",
    "subgroup_values",
    "subgroup_report",
    "subgroup_reports",
]

DEFAULT_AGE_EDGES = (18, 40, 65)
#: metric -> True when a higher value is better (decides which group is "best")
SUBGROUP_METRICS = {"auroc": True, "fnr": False, "fpr": False}
AGE_BAND_FIELD = "age_band"


# --------------------------------------------------------------------------- group values


def _fmt_edge(e: float) -> str:
    """18.0 -> '18', 17.5 -> '17.5'."""
    return str(int(e)) if float(e).is_integer() else str(e)


def _band_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the len(edges) + 1 bands: '<e0', 'e0-(e1-1)' ... 'eK+' (integer edges).

    Non-integer edges give 'a-<b' for the half-open band [a, b).
    """
    labels = [f"<{_fmt_edge(edges[0])}"]
    for lo, hi in zip(edges[:-1], edges[1:]):
        integral = float(lo).is_integer() and float(hi).is_integer()
        upper = _fmt_edge(hi - 1) if integral else f"<{_fmt_edge(hi)}"
        labels.append(f"{_fmt_edge(lo)}-{upper}")
    labels.append(f"{_fmt_edge(edges[-1])}+")
    return labels


def _check_edges(edges) -> tuple[float, ...]:
    """Strictly increasing, finite, at least one edge; ValueError otherwise."""
    e = tuple(float(x) for x in edges)
    if not e or not all(math.isfinite(x) for x in e) or any(b <= a for a, b in zip(e[:-1], e[1:])):
        raise ValueError(f"age edges must be a non-empty strictly increasing sequence, got {tuple(edges)}")
    return e


def _parse_number(value) -> float | None:
    """float(value), or None for None / NaN / inf / blank / unparseable / bool."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def age_band(age, edges=DEFAULT_AGE_EDGES) -> str | None:
    """Age band of one age: '<18', '18-39', '40-64', '65+' for the default edges.

    Band i is [edges[i-1], edges[i]); labels are generated from any strictly increasing
    ``edges`` (see :func:`_band_labels`). None / NaN / blank / unparseable -> None.
    """
    e = _check_edges(edges)
    x = _parse_number(age)
    if x is None:
        return None
    return _band_labels(e)[int(np.searchsorted(e, x, side="right"))]


def _group_value(value) -> str | None:
    """str(value); None for None / NaN / '' / 'nan' (any case); 3.0 -> '3' (float-typed ids)."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    text = str(value).strip()
    return None if text == "" or text.lower() == "nan" else text


def _keep_most_frequent(values: list[str | None], max_levels: int) -> list[str | None]:
    """Keep the max_levels most frequent values (ties by name); the others -> None."""
    counts = Counter(v for v in values if v is not None)
    kept = {v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_levels]}
    return [v if v in kept else None for v in values]


def subgroup_values(
    metadata: Mapping[str, Sequence],
    field: str,
    *,
    age_edges=DEFAULT_AGE_EDGES,
    max_levels: int | None = None,
) -> list[str | None]:
    """Per-image group of one ``field`` of ``metadata`` (column name -> one value per image).

    ``"age_band"`` is derived from the ``"age"`` column with :func:`age_band`; any other field
    is read as is, as ``str(value)``. None / NaN / '' -> None: that image is in no group of the
    field. ``max_levels`` keeps the N most frequent values (ties broken by name), the others
    -> None (e.g. only the largest sites). A field not in metadata -> ValueError.
    """
    if max_levels is not None and max_levels < 1:
        raise ValueError(f"max_levels must be >= 1 or None, got {max_levels}")
    if field == AGE_BAND_FIELD and "age" in metadata:
        e = _check_edges(age_edges)
        values = [age_band(a, e) for a in metadata["age"]]
    elif field in metadata:
        values = [_group_value(v) for v in metadata[field]]
    else:
        available = sorted(set(metadata) | ({AGE_BAND_FIELD} if "age" in metadata else set()))
        raise ValueError(f"unknown subgroup field {field!r}; available: {', '.join(available) or 'none'}")
    return values if max_levels is None else _keep_most_frequent(values, max_levels)


# --------------------------------------------------------------------------- bootstrap kernels


def _group_resample_metrics(y: np.ndarray, s: np.ndarray, columns: np.ndarray, w: np.ndarray, threshold: float):
    """(B,) AUROC, FNR, FPR of one group for a block of weights (B, N); NaN where undefined."""
    g = group_weights(y, s, w, columns=columns)
    k = int(np.searchsorted(g.scores, threshold, side="left"))  # distinct scores >= threshold: k..U-1
    tp, fp = g.pos[:, k:].sum(axis=1), g.neg[:, k:].sum(axis=1)
    fn, tn = g.pos[:, :k].sum(axis=1), g.neg[:, :k].sum(axis=1)
    # FNR = FN / (TP + FN), FPR = FP / (FP + TN); NaN where the denominator is 0
    return {"auroc": auroc_from_groups(g), "fnr": _safe_ratio(fn, tp + fn), "fpr": _safe_ratio(fp, fp + tn)}


# --------------------------------------------------------------------------- report


def _too_few(n_pos: int, n_neg: int, min_positives: int, min_negatives: int) -> str | None:
    """'3 positives < 10; 2 negatives < 10', or None when every metric is allowed."""
    parts = []
    if n_pos < min_positives:
        parts.append(f"{n_pos} positive{'s' if n_pos != 1 else ''} < {min_positives}")
    if n_neg < min_negatives:
        parts.append(f"{n_neg} negative{'s' if n_neg != 1 else ''} < {min_negatives}")
    return "; ".join(parts) or None


def _group_point(y, s, pids, threshold, min_positives, min_negatives) -> tuple[dict, list[str]]:
    """Full-sample entry of one group (no CIs) and the metrics it is allowed to report."""
    n, n_pos = int(y.size), int(y.sum())
    n_neg = n - n_pos
    pred = s >= threshold
    tp, fn = int(np.sum(pred & y)), int(np.sum(~pred & y))
    fp, tn = int(np.sum(pred & ~y)), int(np.sum(~pred & ~y))
    allowed = []
    if n_pos >= min_positives and n_neg >= min_negatives:
        allowed.append("auroc")
    if n_pos >= min_positives:
        allowed.append("fnr")
    if n_neg >= min_negatives:
        allowed.append("fpr")
    values = {
        "auroc": auroc(y.astype(np.float64), s),
        "fnr": fn / (tp + fn) if tp + fn else math.nan,
        "fpr": fp / (fp + tn) if fp + tn else math.nan,
    }
    entry = {
        "n": n,
        "n_patients": None if pids is None else int(np.unique(pids).size),
        "n_pos": n_pos,
        "n_neg": n_neg,
        "prevalence": _json_number(n_pos / n),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tn": tn,
    }
    for m in SUBGROUP_METRICS:
        entry[m] = _json_number(values[m]) if m in allowed else None
        entry[f"{m}_ci"] = None
    entry["too_few"] = _too_few(n_pos, n_neg, min_positives, min_negatives)
    return entry, allowed


def _gap_entry(metric: str, entries: dict, boot: dict | None, confidence: float) -> dict:
    """Worst-to-best gap of ``metric`` over the groups that report it, CI from the joint resamples."""
    names = [k for k, e in entries.items() if e[metric] is not None]
    out = {"groups": names, "n_groups": len(names), "best": None, "worst": None,
           "best_value": None, "worst_value": None, "gap": None, "gap_ci": None, "bootstrap_skipped": None}
    if len(names) < 2:
        out["note"] = f"needs at least 2 groups with {metric} (got {len(names)})"
        return out
    vals = np.array([entries[k][metric] for k in names])
    higher_better = SUBGROUP_METRICS[metric]
    best = int(np.argmax(vals) if higher_better else np.argmin(vals))  # first in name order on ties
    worst = int(np.argmin(vals) if higher_better else np.argmax(vals))
    out.update(best=names[best], worst=names[worst], best_value=_json_number(vals[best]),
               worst_value=_json_number(vals[worst]), gap=_json_number(vals.max() - vals.min()))
    if boot is not None:
        per = np.column_stack([boot[k][metric] for k in names])  # (B, K)
        defined = ~np.isnan(per).any(axis=1)
        gaps = per[defined].max(axis=1) - per[defined].min(axis=1)
        out["gap_ci"] = _json_ci(percentile_ci(gaps, confidence))
        out["bootstrap_skipped"] = int((~defined).sum())
    return out


def _check_report_inputs(y, scores, values, patient_ids, min_positives, min_negatives):
    """Validate; return (y float (N,), scores (N,), values list, patient ids array or None)."""
    y_arr, s_arr = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    vals = [_group_value(v) for v in values]
    if y_arr.ndim != 1 or s_arr.shape != y_arr.shape or len(vals) != y_arr.size:
        raise ValueError(f"y, scores and values need one entry per image: {y_arr.shape}, {s_arr.shape}, {len(vals)}")
    pids = None if patient_ids is None else np.asarray(patient_ids)
    if pids is not None and pids.shape != y_arr.shape:
        raise ValueError(f"patient_ids must have one entry per image ({y_arr.size}), got shape {pids.shape}")
    if min_positives < 1 or min_negatives < 1:
        raise ValueError("min_positives and min_negatives must be >= 1")
    return y_arr, s_arr, vals, pids


def subgroup_report(
    y,
    scores,
    values,
    *,
    threshold: float,
    patient_ids=None,
    min_positives: int = 10,
    min_negatives: int = 10,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Per-group metrics of ONE binary label and the worst-to-best gap per metric.

    ``y`` (N,) 0/1/NaN (NaN = masked, excluded), ``scores`` (N,), ``values`` (N,) the group of
    each image, read as str (None / NaN / '' = in no group, excluded; see :func:`subgroup_values`). Predict positive
    when ``score >= threshold`` (choose it on the validation split).

    Returns ``{"groups": {value: entry}, "gaps": {"auroc"|"fnr"|"fpr": gap}, ...}`` with groups
    in name order. An entry holds n, n_patients (None without patient ids), n_pos, n_neg,
    prevalence, tp / fn / fp / tn, auroc / fnr / fpr and their ``*_ci`` ([low, high] or None),
    ``too_few`` (e.g. "3 negatives < 10", None when nothing is withheld) and
    ``bootstrap_skipped`` ({metric: resamples where the group's metric was undefined}). A
    metric withheld by the minimum counts is None, never a number. A gap entry holds best,
    worst (group names; best = highest AUROC / lowest FNR, FPR), best_value, worst_value,
    gap = max - min over the groups that report the metric, gap_ci, groups, n_groups,
    bootstrap_skipped (resamples where some group's metric was undefined: skipped), and a
    ``note`` when fewer than 2 groups report it.

    Resampling draws the patients (``patient_ids``; else the images) of the whole test set
    with replacement; every group's metrics come from the same draws. ``n_resamples=0``: CIs
    and skipped counts None. Every value is JSON-ready.
    """
    y_arr, s_arr, vals, pids = _check_report_inputs(y, scores, values, patient_ids, min_positives, min_negatives)
    y_kept, _, keep = binary_inputs(y_arr, s_arr)
    has_group = np.array([v is not None for v in vals], dtype=bool)
    used = keep & has_group
    group_of = np.array([v if v is not None else "" for v in vals], dtype=object)
    idx_by_group = {
        name: np.flatnonzero(used & (group_of == name)) for name in sorted({vals[i] for i in np.flatnonzero(used)})
    }
    y_full = np.zeros(y_arr.size, dtype=bool)  # full-length copies; masked entries are never read
    y_full[keep] = y_kept
    s_full = np.where(keep, s_arr, 0.0)

    entries, allowed = {}, {}
    for name, idx in idx_by_group.items():
        entries[name], allowed[name] = _group_point(
            y_full[idx], s_full[idx], None if pids is None else pids[idx], threshold, min_positives, min_negatives
        )

    boot = None
    if n_resamples > 0 and entries:
        chunks = {name: {m: [] for m in SUBGROUP_METRICS} for name in entries}
        for w in resample_weights(y_arr.size, n_resamples=n_resamples, seed=seed, groups=pids):
            for name, idx in idx_by_group.items():
                for m, v in _group_resample_metrics(y_full[idx], s_full[idx], idx, w, threshold).items():
                    chunks[name][m].append(v)
        boot = {name: {m: np.concatenate(c[m]) for m in SUBGROUP_METRICS} for name, c in chunks.items()}
    for name, entry in entries.items():
        skipped = {}
        for m in allowed[name]:
            if boot is not None:
                entry[f"{m}_ci"] = _json_ci(percentile_ci(boot[name][m], confidence))
                skipped[m] = int(np.isnan(boot[name][m]).sum())
        entry["bootstrap_skipped"] = skipped if boot is not None else None

    return {
        "groups": entries,
        "gaps": {m: _gap_entry(m, entries, boot, confidence) for m in SUBGROUP_METRICS},
        "n_images": int(used.sum()),
        "n_masked": int((~keep).sum()),
        "n_without_group": int((keep & ~has_group).sum()),
        "resampling": "patient" if pids is not None else "image",
        "threshold": _json_number(threshold),
        "min_positives": int(min_positives),
        "min_negatives": int(min_negatives),
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
    }


def subgroup_reports(
    y,
    scores,
    metadata: Mapping[str, Sequence],
    fields: Sequence[str],
    *,
    threshold: float,
    patient_ids=None,
    age_edges=DEFAULT_AGE_EDGES,
    max_levels: int | None = None,
    **kw,
) -> dict:
    """:func:`subgroup_report` for each field: ``{field: report}`` (each report gets "field").

    Group values come from :func:`subgroup_values` (``age_edges``, ``max_levels`` passed on);
    every field is checked before any report is computed. Other keyword arguments go to
    :func:`subgroup_report`; with the same seed every field sees the same resamples.
    """
    values = {f: subgroup_values(metadata, f, age_edges=age_edges, max_levels=max_levels) for f in fields}
    out = {}
    for f in fields:
        report = subgroup_report(y, scores, values[f], threshold=threshold, patient_ids=patient_ids, **kw)
        out[f] = {"field": f, **report}
    return out
