"""Internal -> external transfer: the generalisation gap in macro AUROC, with bootstrap CIs.

Functional and numpy-only. A model is scored on an internal test set (same distribution as
its training data) and on an external one (another hospital / dataset) with the same labels;
``gap = external AUROC - internal AUROC`` (negative = it loses on the new site). Its CI comes
from a two-sample percentile bootstrap: every resample draws the internal patients and the
external patients independently (the two sets share no patient). With a baseline model scored
on the same images, the SAME draws are applied to both models (paired), so
``gap_vs_baseline = gap - baseline_gap`` gets a CI that reflects only the models' difference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .bootstrap import _BLOCK_ENTRIES, percentile_ci, resample_weights
from .metrics import auroc, auroc_from_groups, group_weights
from .report import _json_ci, _json_number

__all__ = ["two_sample_weights", "transfer_gap"]


def _derived_seeds(seed: int, k: int) -> list[int]:
    """k independent integer seeds derived from ``seed`` (numpy SeedSequence spawning)."""
    return [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(seed).spawn(k)]


def two_sample_weights(
    n_a: int, n_b: int, *, n_resamples: int, seed: int = 0, groups_a=None, groups_b=None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield aligned blocks ``(w_a, w_b)`` of bootstrap weights for two independent samples.

    ``w_a`` (rows, n_a) and ``w_b`` (rows, n_b) have the same number of rows; row r of both is
    resample r. Each sample is drawn by :func:`resample_weights` (by patient with ``groups_*``)
    with its own seed derived from ``seed``, so the two draws are independent; deterministic
    for a given seed.
    """
    seed_a, seed_b = _derived_seeds(seed, 2)
    block = max(1, _BLOCK_ENTRIES // max(n_a, n_b, 1))
    gen_a = resample_weights(n_a, n_resamples=n_resamples, seed=seed_a, groups=groups_a, block=block)
    gen_b = resample_weights(n_b, n_resamples=n_resamples, seed=seed_b, groups=groups_b, block=block)
    yield from zip(gen_a, gen_b)


# --------------------------------------------------------------------------- inputs


def _as_matrix(a, name: str) -> np.ndarray:
    """float64 (N, L); a 1-D input is one label."""
    arr = np.asarray(a, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, L) or (N,), got shape {arr.shape}")
    return arr


def _check_set(y, scores, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (N, L) labels (0/1/NaN) and finite scores of one test set."""
    y_m, s_m = _as_matrix(y, f"{name}_y"), _as_matrix(scores, f"{name}_scores")
    if y_m.shape != s_m.shape:
        raise ValueError(f"{name}_y {y_m.shape} and {name}_scores {s_m.shape} differ in shape")
    known = ~np.isnan(y_m)
    if not np.all((y_m[known] == 0) | (y_m[known] == 1)):
        raise ValueError(f"{name}_y must hold only 0, 1 or NaN (masked)")
    if not np.all(np.isfinite(s_m[known])):
        raise ValueError(f"{name}_scores must be finite where the label is known")
    return y_m, s_m


def _both_classes(y_col: np.ndarray) -> bool:
    """True when the known labels of one column hold a positive and a negative."""
    known = y_col[~np.isnan(y_col)]
    return bool(known.size and 0 < known.sum() < known.size)


# --------------------------------------------------------------------------- AUROCs


def _macro_point(y: np.ndarray, s: np.ndarray, labels: list[int]) -> tuple[float, list[float]]:
    """Macro AUROC over ``labels`` (columns) and the per-label values."""
    per = [auroc(y[:, j], s[:, j]) for j in labels]
    return float(np.mean(per)), per


def _macro_resampled(y: np.ndarray, s: np.ndarray, labels: list[int], w: np.ndarray) -> np.ndarray:
    """(B,) macro AUROC for a block of weights (B, N); NaN where some label is single-class."""
    total = np.zeros(w.shape[0])
    for j in labels:
        idx = np.flatnonzero(~np.isnan(y[:, j]))
        total += auroc_from_groups(group_weights(y[idx, j].astype(bool), s[idx, j], w, columns=idx))
    return total / len(labels)


def transfer_gap(
    internal_y,
    internal_scores,
    external_y,
    external_scores,
    *,
    internal_groups=None,
    external_groups=None,
    baseline_internal_scores=None,
    baseline_external_scores=None,
    label_names: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Generalisation gap in macro AUROC (external - internal) with a two-sample bootstrap CI.

    ``*_y`` (N, L) labels with NaN = masked (or (N,) for one label), ``*_scores`` (N, L) on the
    same images; the internal and external sets may differ in N but share the L labels. The
    macro AUROC is the mean over the labels with both classes on BOTH sets (``labels``; the
    others are listed in ``labels_excluded``). ``*_groups``: patient ids (one per image) to
    resample patients instead of images.

    Returns internal_auroc, external_auroc, gap, gap_ci, per_label ({name: {internal_auroc,
    external_auroc, gap}}), labels, labels_excluded, n_internal, n_external, n_resamples,
    confidence, seed, bootstrap_skipped (resamples skipped because a label was single-class in
    them), method, and baseline_internal_auroc, baseline_external_auroc, baseline_gap,
    baseline_gap_ci, gap_vs_baseline = gap - baseline_gap (positive: this model loses less
    than the baseline when moving to the external set) and gap_vs_baseline_ci, from the SAME
    resamples, when ``baseline_internal_scores`` and ``baseline_external_scores`` (another
    model on the same images) are given (None otherwise: the keys are always there). No usable
    label: every number None and a ``note``. ``n_resamples=0``: CIs None. JSON-ready.
    """
    y_int, s_int = _check_set(internal_y, internal_scores, "internal")
    y_ext, s_ext = _check_set(external_y, external_scores, "external")
    if y_int.shape[1] != y_ext.shape[1]:
        raise ValueError(f"internal has {y_int.shape[1]} labels, external {y_ext.shape[1]}")
    n_labels = y_int.shape[1]
    names = [str(n) for n in label_names] if label_names is not None else [str(j) for j in range(n_labels)]
    if len(names) != n_labels:
        raise ValueError(f"need {n_labels} label names, got {len(names)}")
    if (baseline_internal_scores is None) != (baseline_external_scores is None):
        raise ValueError("give both baseline_internal_scores and baseline_external_scores, or neither")
    models = {"model": (s_int, s_ext)}
    if baseline_internal_scores is not None:
        b_int = _check_set(y_int, baseline_internal_scores, "baseline_internal")[1]
        b_ext = _check_set(y_ext, baseline_external_scores, "baseline_external")[1]
        models["baseline"] = (b_int, b_ext)

    labels = [j for j in range(n_labels) if _both_classes(y_int[:, j]) and _both_classes(y_ext[:, j])]
    out = {
        "labels": [names[j] for j in labels],
        "labels_excluded": [names[j] for j in range(n_labels) if j not in labels],
        "n_internal": int(y_int.shape[0]),
        "n_external": int(y_ext.shape[0]),
        "resampling": "patient" if internal_groups is not None or external_groups is not None else "image",
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
        "method": "macro AUROC over labels with both classes on both sets; gap = external - internal; "
        "percentile bootstrap drawing internal and external patients independently, "
        "the same draws for model and baseline",
    }
    keys = ["internal_auroc", "external_auroc", "gap", "gap_ci", "baseline_internal_auroc", "baseline_external_auroc",
            "baseline_gap", "baseline_gap_ci", "gap_vs_baseline", "gap_vs_baseline_ci"]
    out.update({k: None for k in keys})  # the same keys with or without a baseline
    out["per_label"], out["bootstrap_skipped"] = {}, None
    if not labels:
        out["note"] = "no label has both classes on both the internal and the external set"
        return out

    point = {}
    for key, (mi, me) in models.items():
        auc_i, per_i = _macro_point(y_int, mi, labels)
        auc_e, per_e = _macro_point(y_ext, me, labels)
        point[key] = (auc_i, auc_e, per_i, per_e)
    auc_i, auc_e, per_i, per_e = point["model"]
    out.update(internal_auroc=_json_number(auc_i), external_auroc=_json_number(auc_e),
               gap=_json_number(auc_e - auc_i))
    out["per_label"] = {
        names[j]: {"internal_auroc": _json_number(a), "external_auroc": _json_number(b), "gap": _json_number(b - a)}
        for j, a, b in zip(labels, per_i, per_e)
    }
    if "baseline" in models:
        b_i, b_e = point["baseline"][:2]
        out.update(baseline_internal_auroc=_json_number(b_i), baseline_external_auroc=_json_number(b_e),
                   baseline_gap=_json_number(b_e - b_i), gap_vs_baseline=_json_number((auc_e - auc_i) - (b_e - b_i)))

    if n_resamples > 0:
        gaps = {key: [] for key in models}
        for w_int, w_ext in two_sample_weights(
            y_int.shape[0], y_ext.shape[0], n_resamples=n_resamples, seed=seed,
            groups_a=internal_groups, groups_b=external_groups,
        ):
            for key, (mi, me) in models.items():
                ext, int_ = _macro_resampled(y_ext, me, labels, w_ext), _macro_resampled(y_int, mi, labels, w_int)
                gaps[key].append(ext - int_)
        gap_b = {key: np.concatenate(v) for key, v in gaps.items()}
        out["gap_ci"] = _json_ci(percentile_ci(gap_b["model"], confidence))
        out["bootstrap_skipped"] = int(np.isnan(gap_b["model"]).sum())
        if "baseline" in models:
            out["baseline_gap_ci"] = _json_ci(percentile_ci(gap_b["baseline"], confidence))
            out["gap_vs_baseline_ci"] = _json_ci(percentile_ci(gap_b["model"] - gap_b["baseline"], confidence))
    return out

