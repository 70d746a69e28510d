"""Multi-label evaluation report and per-label comparison against a baseline.

:func:`evaluate` turns an (N, L) score matrix and label matrix (NaN = masked) into a plain,
JSON-serialisable dict: per label AUROC / AP with bootstrap CIs and threshold metrics, and the
macro average with a CI from the SAME resamples across labels (so label correlations are kept).
:func:`compare_to_baseline` runs DeLong per label on the same test images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .bootstrap import percentile_ci, resample_weights
from .delong import delong_paired_test
from .metrics import (
    GroupedWeights,
    aupr,
    aupr_from_groups,
    auroc,
    auroc_from_groups,
    binary_inputs,
    choose_threshold,
    group_weights,
    threshold_metrics,
)

__all__ = ["evaluate", "compare_to_baseline", "choose_thresholds"]

DEFAULT_THRESHOLD = 0.5
_BOOT_METRICS = ("auroc", "aupr", "f1", "sensitivity", "specificity")
_THRESHOLD_KEYS = ("f1", "sensitivity", "specificity", "ppv", "npv", "accuracy", "tp", "fp", "tn", "fn")


# --------------------------------------------------------------------------- small helpers


def _json_number(x):
    """Python float / int for JSON; None for NaN, inf or None."""
    if x is None:
        return None
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    x = float(x)
    return x if math.isfinite(x) else None


def _json_ci(ci) -> list | None:
    """[low, high] as floats, or None when the interval is undefined."""
    low, high = _json_number(ci[0]), _json_number(ci[1])
    return None if low is None or high is None else [low, high]


def _as_matrix(a, name: str) -> np.ndarray:
    """float64 (N, L) array; a 1-D input is one label."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, L), got shape {arr.shape}")
    return arr


def _check_inputs(scores, labels, label_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate shapes and names; return (scores, labels, names)."""
    s, y = _as_matrix(scores, "scores"), _as_matrix(labels, "labels")
    names = [str(n) for n in label_names]
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in shape")
    if len(names) != s.shape[1] or len(set(names)) != len(names):
        raise ValueError(f"need {s.shape[1]} distinct label names, got {names}")
    return s, y, names


def _thresholds_per_label(thresholds, names: list[str]) -> list[tuple[float | None, str]]:
    """(threshold, source) per label from None / a scalar / a mapping by name / a sequence."""
    if thresholds is None:
        return [(DEFAULT_THRESHOLD, "default")] * len(names)
    if isinstance(thresholds, str):
        raise TypeError("thresholds must be numbers chosen on the validation split (see choose_thresholds)")
    if isinstance(thresholds, Mapping):
        missing = [n for n in names if n not in thresholds]
        if missing:
            raise ValueError(f"thresholds missing for labels {missing}")
        return [(thresholds[n], "given") for n in names]
    if isinstance(thresholds, Sequence) or isinstance(thresholds, np.ndarray):
        if len(thresholds) != len(names):
            raise ValueError(f"need {len(names)} thresholds, got {len(thresholds)}")
        return [(t, "given") for t in thresholds]
    return [(float(thresholds), "given")] * len(names)


def choose_thresholds(scores, labels, label_names, method: str = "youden") -> dict:
    """Per-label thresholds chosen on a TUNING split, ready to pass to :func:`evaluate`.

    A label without both classes in the tuning split gets None (its threshold metrics are
    then reported as None with a note).
    """
    s, y, names = _check_inputs(scores, labels, label_names)
    out = {}
    for j, name in enumerate(names):
        yj = y[:, j][~np.isnan(y[:, j])]
        both = yj.size and 0 < yj.sum() < yj.size
        out[name] = choose_threshold(y[:, j], s[:, j], method) if both else None
    return out


# --------------------------------------------------------------------------- bootstrap


def _threshold_metrics_from_groups(g: GroupedWeights, threshold: float) -> dict:
    """(B,) f1 / sensitivity / specificity when predicting positive for score >= threshold."""
    k = int(np.searchsorted(g.scores, threshold, side="left"))  # groups >= threshold: k..U-1
    tp, fp = g.pos[:, k:].sum(axis=1), g.neg[:, k:].sum(axis=1)
    fn, tn = g.pos[:, :k].sum(axis=1), g.neg[:, :k].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "f1": 2 * tp / (2 * tp + fp + fn),
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
        }


def _bootstrap_one_label(y, s, columns, w, threshold) -> dict:
    """(B,) bootstrap values of one label for a block of weights; NaN on single-class rows."""
    g = group_weights(y, s, w, columns=columns)
    vals = {"auroc": auroc_from_groups(g), "aupr": aupr_from_groups(g)}
    if threshold is not None:
        vals.update(_threshold_metrics_from_groups(g, threshold))
    single = (g.pos.sum(axis=1) == 0) | (g.neg.sum(axis=1) == 0)
    for v in vals.values():
        v[single] = np.nan
    return vals


def _bootstrap_labels(scores, labels, evaluable, thresholds, *, n_resamples, seed, groups):
    """(B, L) bootstrap values per metric; NaN where a resample has a single class."""
    n, n_labels = scores.shape
    out = {m: np.full((n_resamples, n_labels), np.nan) for m in _BOOT_METRICS}
    kept = {j: np.flatnonzero(~np.isnan(labels[:, j])) for j in evaluable}
    row = 0
    for w in resample_weights(n, n_resamples=n_resamples, seed=seed, groups=groups):
        rows = slice(row, row + w.shape[0])
        for j in evaluable:
            idx = kept[j]
            vals = _bootstrap_one_label(labels[idx, j].astype(bool), scores[idx, j], idx, w, thresholds[j])
            for metric, v in vals.items():
                out[metric][rows, j] = v
        row += w.shape[0]
    return out


# --------------------------------------------------------------------------- evaluate


def _label_point_metrics(y_col, s_col, threshold) -> dict:
    """AUROC, AP and threshold metrics of one label (both classes present)."""
    out = {"auroc": auroc(y_col, s_col), "aupr": aupr(y_col, s_col)}
    if threshold is not None:
        out.update(threshold_metrics(y_col, s_col, threshold))
    else:
        out.update({k: None for k in _THRESHOLD_KEYS})
    return out


def _label_entry(y_col, s_col, threshold, source) -> tuple[dict, bool]:
    """Per-label report without CIs, and whether the label is evaluable (both classes)."""
    y, _, keep = binary_inputs(y_col, s_col)
    n, n_pos = int(y.size), int(y.sum())
    entry = {"n": n, "n_pos": n_pos, "n_neg": n - n_pos, "n_masked": int((~keep).sum())}
    evaluable = 0 < n_pos < n
    if evaluable:
        metrics = _label_point_metrics(y_col, s_col, threshold)
        entry.update({k: _json_number(v) for k, v in metrics.items()})
        entry["threshold"] = _json_number(threshold)
        entry["threshold_source"] = source
        if threshold is None:
            entry["note"] = "no threshold given for this label: threshold metrics undefined"
    else:
        entry.update({k: None for k in ("auroc", "aupr", *_THRESHOLD_KEYS)})
        entry.update({"threshold": _json_number(threshold), "threshold_source": source})
        entry["note"] = f"only one class present (n_pos={n_pos} of n={n}): metrics undefined"
    return entry, evaluable


def _attach_cis(entry: dict, boot: dict, j: int, confidence: float) -> None:
    """Add <metric>_ci and bootstrap_skipped to one label's entry."""
    entry["bootstrap_skipped"] = int(np.isnan(boot["auroc"][:, j]).sum())
    for metric in _BOOT_METRICS:
        ci = percentile_ci(boot[metric][:, j], confidence) if entry.get(metric) is not None else (None, None)
        entry[f"{metric}_ci"] = _json_ci(ci)


def _macro(entries: list[dict], evaluable: list[int], boot, names, confidence) -> dict:
    """Macro mean over evaluable labels, CI from the joint resamples (all labels defined)."""
    out = {"n_labels": len(evaluable), "labels_excluded": [names[j] for j in range(len(names)) if j not in evaluable]}
    for metric in ("auroc", "aupr"):
        if not evaluable:
            out[metric], out[f"{metric}_ci"], out[f"{metric}_se"] = None, None, None
            continue
        out[metric] = _json_number(np.mean([entries[j][metric] for j in evaluable]))
        if boot is None:
            out[f"{metric}_ci"], out[f"{metric}_se"] = None, None
            continue
        per_resample = boot[metric][:, evaluable].mean(axis=1)  # NaN if any label single-class
        out[f"{metric}_ci"] = _json_ci(percentile_ci(per_resample, confidence))
        # the bootstrap standard error: the within-seed variance when seeds are pooled
        finite = per_resample[np.isfinite(per_resample)]
        out[f"{metric}_se"] = _json_number(np.std(finite, ddof=1)) if finite.size > 1 else None
        out["bootstrap_skipped"] = int(np.isnan(per_resample).sum())
    return out


def evaluate(
    scores,
    labels,
    label_names,
    *,
    patient_ids=None,
    thresholds=None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Evaluate an (N, L) score matrix against (N, L) labels (NaN = masked for that label).

    Per label: n, n_pos, AUROC and AP with percentile bootstrap CIs, threshold metrics (f1,
    sensitivity, specificity with CIs; ppv, npv, accuracy, counts) at ``thresholds`` (a
    mapping by label name, a sequence, a scalar, or None = 0.5 marked as "default"; choose
    them on the validation split with :func:`choose_thresholds`). With ``patient_ids`` the
    bootstrap resamples patients. Macro = mean over labels with both classes; its CI comes
    from the same resamples across labels. ``n_resamples=0`` skips the bootstrap (CIs None).
    Every value is a python float / int / str / list / None: ``json.dumps`` works as is.
    """
    s, y, names = _check_inputs(scores, labels, label_names)
    groups = None if patient_ids is None else np.asarray(patient_ids)
    if groups is not None and groups.shape != (s.shape[0],):
        raise ValueError(f"patient_ids must have one entry per image ({s.shape[0]})")
    thr = _thresholds_per_label(thresholds, names)
    entries, evaluable = [], []
    for j, (t, source) in enumerate(thr):
        entry, ok = _label_entry(y[:, j], s[:, j], t, source)
        entries.append(entry)
        if ok:
            evaluable.append(j)
    boot = None
    if n_resamples > 0:
        boot = _bootstrap_labels(
            s, y, evaluable, [t for t, _ in thr], n_resamples=n_resamples, seed=seed, groups=groups
        )
    for j, entry in enumerate(entries):
        if boot is not None and j in evaluable:
            _attach_cis(entry, boot, j, confidence)
        else:  # same keys for every label, so consumers need no special case
            entry.update({f"{m}_ci": None for m in _BOOT_METRICS})
            entry["bootstrap_skipped"] = None
    meta = {
        "n_images": int(s.shape[0]),
        "n_patients": None if groups is None else int(np.unique(groups).size),
        "resampling": "patient" if groups is not None else "image",
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
    }
    return {
        "labels": dict(zip(names, entries)),
        "macro": _macro(entries, evaluable, boot, names, confidence),
        "meta": meta,
    }


# --------------------------------------------------------------------------- comparison


def compare_to_baseline(y_true_matrix, scores, baseline_scores, label_names, *, patient_ids=None) -> dict:
    """Per-label two-sided DeLong test of AUROC(scores) vs AUROC(baseline_scores).

    Both score matrices must be on the same test images in the same order. Returns raw
    p-values (apply :func:`bonferroni` over the whole family of comparisons you report). With
    ``patient_ids`` the clustered (Obuchowski) variance is used. Labels with one class give
    None values and a note.
    """
    s, y, names = _check_inputs(scores, y_true_matrix, label_names)
    b, _, _ = _check_inputs(baseline_scores, y_true_matrix, label_names)
    groups = None if patient_ids is None else np.asarray(patient_ids)
    out = {}
    for j, name in enumerate(names):
        res = delong_paired_test(y[:, j], s[:, j], b[:, j], groups=groups)
        entry = {
            "auroc": res["auc_a"],
            "auroc_baseline": res["auc_b"],
            "delta": res["delta"],
            "se": res["se"],
            "z": res["z"],
            "p_value": res["p_value"],
        }
        entry = {k: _json_number(v) for k, v in entry.items()}
        entry.update({"n": res["n"], "n_pos": res["n_pos"]})
        if entry["p_value"] is None:
            entry["note"] = "test undefined (one class present, or too few images / patients)"
        out[name] = entry
    method = "delong" if groups is None else "obuchowski-clustered-delong"
    return {"labels": out, "method": method, "n_tests": sum(e["p_value"] is not None for e in out.values())}
