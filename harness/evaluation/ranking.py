"""Does a model ranking made on the internal test set hold on an external one?

Functional and numpy-only. Several models (e.g. one per synthetic-data method) are scored on
an internal and an external test set; each gets an AUROC per set (mean over its seeds), a rank
per set, and the agreement of the two rankings is Kendall's tau-b between the internal and the
external AUROCs. Its CI comes from a paired two-sample bootstrap: each resample draws internal
patients and external patients independently, and the SAME draw is applied to every model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .bootstrap import percentile_ci
from .metrics import auroc, auroc_from_groups, binary_inputs, group_weights
from .report import _json_ci, _json_number
from .transfer import two_sample_weights

__all__ = ["kendall_tau", "ranking_agreement", "AGREEMENT_LEVELS", "MIN_MODELS"]

#: ranking_agreement's "agreement" values (None when there is no CI)
AGREEMENT_LEVELS = ("agree", "reversed", "uncertain")
MIN_MODELS = 3


# --------------------------------------------------------------------------- Kendall tau-b


def _tau_b_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair of ``a``, ``b`` (R, n); NaN where undefined.

    tau_b = (concordant - discordant) / sqrt(pairs untied in a * pairs untied in b), over the
    pairs i < j; a pair tied in both counts in neither. NaN for rows with a NaN, n < 2, or a
    constant row (no untied pair).
    """
    da = np.sign(a[:, :, None] - a[:, None, :])
    db = np.sign(b[:, :, None] - b[:, None, :])
    # every unordered pair appears twice (i, j) and (j, i) with the same products: halves cancel
    s = np.einsum("rij,rij->r", da, db)
    untied_a = np.einsum("rij->r", np.abs(da))
    untied_b = np.einsum("rij->r", np.abs(db))
    den = np.sqrt(untied_a * untied_b)
    out = np.full(a.shape[0], np.nan)
    np.divide(s, den, out=out, where=den > 0)
    out[np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1)] = np.nan
    return out


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two score vectors; equals ``scipy.stats.kendalltau(a, b).statistic``.

    Ties are handled as tau-b. NaN when undefined (fewer than 2 entries, a constant vector, or
    a NaN entry). Direct O(n^2) computation, meant for a handful of models.
    """
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.ndim != 1 or a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must be 1-D of equal length, got {a_arr.shape} and {b_arr.shape}")
    if a_arr.size < 2:
        return math.nan
    return float(_tau_b_rows(a_arr[None], b_arr[None])[0])


def _ranks_desc(values: np.ndarray) -> np.ndarray:
    """Rank 1 = highest value; ties get the average of the ranks they span."""
    v = np.asarray(values, dtype=np.float64)
    greater = (v[None, :] > v[:, None]).sum(axis=1)
    equal = (v[None, :] == v[:, None]).sum(axis=1)
    return 1.0 + greater + (equal - 1) / 2.0


# --------------------------------------------------------------------------- inputs


def _seed_matrix(scores, n: int, where: str) -> np.ndarray:
    """(S, n) float64 scores from an (n,) vector or an (S, n) array."""
    arr = np.asarray(scores, dtype=np.float64)
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] < 1:
        raise ValueError(f"{where}: scores must be ({n},) or (S, {n}), got shape {np.shape(scores)}")
    return arr


def _prepare(scores_by_name: Mapping, y, where: str, names: list[str]):
    """(y kept bool, kept column indices, {name: (S, n_kept) scores}) for one test set.

    ValueError on a shape mismatch, a label other than 0/1/NaN or a non-finite known score.
    """
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.ndim != 1:
        raise ValueError(f"{where}_y must be 1-D (one binary label), got shape {y_arr.shape}")
    keep = ~np.isnan(y_arr)
    idx = np.flatnonzero(keep)
    mats = {}
    for name in names:
        m = _seed_matrix(scores_by_name[name], y_arr.size, f"{where}[{name!r}]")
        for row in m:  # validates labels and the scores of the kept images
            binary_inputs(y_arr, row)
        mats[name] = m[:, idx]
    return y_arr[idx].astype(bool), idx, mats


def _mean_auroc(y: np.ndarray, m: np.ndarray) -> float:
    """Mean over seeds (rows of ``m``) of the AUROC."""
    return float(np.mean([auroc(y.astype(np.float64), row) for row in m]))


def _mean_auroc_resampled(y: np.ndarray, idx: np.ndarray, m: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) mean over seeds of the AUROC under each weight row (columns ``idx`` of ``w``)."""
    return np.mean([auroc_from_groups(group_weights(y, row, w, columns=idx)) for row in m], axis=0)


def _rank_number(r: float):
    """3.0 -> 3, 2.5 -> 2.5 (JSON-ready)."""
    return int(r) if float(r).is_integer() else float(r)


def ranking_agreement(
    internal: Mapping,
    external: Mapping,
    *,
    internal_y,
    external_y,
    internal_groups=None,
    external_groups=None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Agreement of the models' AUROC rankings on an internal and an external test set.

    ``internal[name]`` is an (N_int,) score vector or an (S, N_int) array of S seeds' scores on
    the internal test set (same images, same order for every name); ``external`` likewise on
    the external set, with the same names. ``*_y``: one binary label, NaN = masked (excluded);
    ``*_groups``: patient ids (one per image) to resample patients instead of images.

    Returns:

    - ``internal_auroc`` / ``external_auroc``: {name: AUROC, mean over seeds};
    - ``internal_rank`` / ``external_rank``: {name: rank}, 1 = best, ties share the average rank;
    - ``rank_changes``: [{"name", "internal_rank", "external_rank", "moved"}] for the models
      whose rank differs, by internal rank; ``moved = external - internal`` (positive = it falls
      on the external set);
    - ``tau``: Kendall tau-b between the internal and external AUROCs (1 = same order, -1 =
      reversed order), ``tau_ci``: percentile bootstrap CI;
    - ``agreement``: "agree" (tau_ci low > 0: the ranking carries over), "reversed" (tau_ci high
      < 0: the order tends to flip), "uncertain" (the CI includes 0), None (no tau or no CI);
    - ``n_models``, ``n_internal``, ``n_external``, ``n_resamples``, ``confidence``, ``seed``,
      ``bootstrap_skipped`` (resamples with a single class or an undefined tau), ``method``,
      and a ``note`` when tau is None (fewer than 3 models, all AUROCs tied on one set, or a
      set whose known labels hold a single class: its AUROCs and ranks are then None).

    Each resample draws the internal and the external patients independently and applies the
    SAME draw to every model (paired), so the CI reflects the test sets' sampling, not noise
    between models evaluated on different draws. ``n_resamples=0``: CI None.
    """
    names = list(internal)
    if set(names) != set(external):
        raise ValueError(
            f"internal and external need the same model names; only internal: {sorted(set(names) - set(external))}, "
            f"only external: {sorted(set(external) - set(names))}"
        )
    y_int, idx_int, m_int = _prepare(internal, internal_y, "internal", names)
    y_ext, idx_ext, m_ext = _prepare(external, external_y, "external", names)
    n_int, n_ext = np.asarray(internal_y).size, np.asarray(external_y).size

    single = [where for where, yk in (("internal", y_int), ("external", y_ext)) if not (yk.any() and not yk.all())]
    nan = np.full(len(names), np.nan)
    auc_int = nan if "internal" in single else np.array([_mean_auroc(y_int, m_int[n]) for n in names])
    auc_ext = nan if "external" in single else np.array([_mean_auroc(y_ext, m_ext[n]) for n in names])
    rank_int, rank_ext = _ranks_desc(auc_int), _ranks_desc(auc_ext)
    changes = [] if single else [
        {"name": n, "internal_rank": _rank_number(ri), "external_rank": _rank_number(re),
         "moved": _rank_number(re - ri)}
        for n, ri, re in sorted(zip(names, rank_int, rank_ext), key=lambda t: (t[1], t[0]))
        if ri != re
    ]
    out = {
        "tau": None,
        "tau_ci": None,
        "agreement": None,
        "n_models": len(names),
        "internal_auroc": {n: _json_number(v) for n, v in zip(names, auc_int)},
        "external_auroc": {n: _json_number(v) for n, v in zip(names, auc_ext)},
        "internal_rank": None if "internal" in single else {n: _rank_number(r) for n, r in zip(names, rank_int)},
        "external_rank": None if "external" in single else {n: _rank_number(r) for n, r in zip(names, rank_ext)},
        "rank_changes": changes,
        "n_internal": int(n_int),
        "n_external": int(n_ext),
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
        "bootstrap_skipped": None,
        "method": "Kendall tau-b between internal and external AUROCs (mean over seeds); percentile "
        "bootstrap drawing internal and external patients independently, the same draw for every model",
    }
    if single:
        out["note"] = f"AUROC undefined: the {' and '.join(single)} labels hold a single class"
        return out
    if len(names) < MIN_MODELS:
        out["note"] = f"needs at least {MIN_MODELS} models to compare rankings (got {len(names)})"
        return out
    tau = kendall_tau(auc_int, auc_ext)
    if math.isnan(tau):
        out["note"] = "tau undefined: every model has the same AUROC on one of the sets"
        return out
    out["tau"] = _json_number(tau)
    if n_resamples <= 0:
        return out

    taus = []
    for w_int, w_ext in two_sample_weights(
        n_int, n_ext, n_resamples=n_resamples, seed=seed, groups_a=internal_groups, groups_b=external_groups
    ):
        a = np.column_stack([_mean_auroc_resampled(y_int, idx_int, m_int[n], w_int) for n in names])
        b = np.column_stack([_mean_auroc_resampled(y_ext, idx_ext, m_ext[n], w_ext) for n in names])
        taus.append(_tau_b_rows(a, b))
    tau_b = np.concatenate(taus)
    ci = _json_ci(percentile_ci(tau_b, confidence))
    out["tau_ci"], out["bootstrap_skipped"] = ci, int(np.isnan(tau_b).sum())
    if ci is not None:
        out["agreement"] = "agree" if ci[0] > 0 else "reversed" if ci[1] < 0 else "uncertain"
    return out
