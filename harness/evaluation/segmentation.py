"""Segmentation metrics: per-image Dice / IoU / HD95, a bootstrap report and a paired comparison.

Functional and numpy / scipy only (torch tensors are accepted and converted, torch is never
imported). Masks are (N, H, W) or (N, C, H, W); every metric comes out as an (N, C) array, one
row per image and one column per class.

Input formats (the same for prediction and target):

- (N, H, W) with values in {0, 1} (or bool) and ``num_classes=None``: one class, the foreground.
- (N, H, W) integer label map with ``num_classes=C``: label k (1..C) is class k, label 0 is the
  background and is never scored, so the output has C columns (a binary mask is C = 1).
- (N, C, H, W) with values in {0, 1}: one binary mask per class (one-hot or multi-label); every
  channel is scored, so drop a background channel before passing it.

Conventions for empty masks, per image and class:

- Dice / IoU: a class absent from both prediction and target scores 1.0 (both empty: perfect);
  absent from the target but predicted (or the reverse) scores 0.0. (torchmetrics' ``dice_score``
  gives NaN for "both empty".)
- HD95: both empty -> 0.0; exactly one empty -> NaN (undefined; the report counts those images
  and leaves them out of the mean, never turning them into a number).

HD95 follows MONAI's ``compute_hausdorff_distance(percentile=95)``: the boundary of a mask is
``mask XOR binary_erosion(mask)`` (4-connected cross, pixels outside the image count as
background), the directed surface distances are the Euclidean distances from every boundary
pixel of one mask to the nearest boundary pixel of the other (``distance_transform_edt`` of the
complement of the other boundary, scaled by ``spacing``), and HD95 = max(95th percentile of
pred->target, 95th percentile of target->pred), percentiles linearly interpolated
(``numpy.percentile``). medpy's ``hd95`` instead takes the 95th percentile of the union of the two
directed sets, which is never larger. With percentile=100 it is the classic Hausdorff distance
(equal to torchmetrics' ``hausdorff_distance``).

The bootstrap resamples patients (with ``patient_ids``; images otherwise) by
:func:`~.bootstrap.resample_weights`; a resample's mean is the mean over the drawn images
weighted by their draw counts, i.e. exactly the mean of the explicitly repeated sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage, stats

from .bootstrap import percentile_ci, resample_weights
from .report import _json_ci, _json_number

__all__ = [
    "dice_per_image",
    "iou_per_image",
    "hd95_per_image",
    "segmentation_per_image",
    "segmentation_summary",
    "segmentation_report",
    "compare_dice",
]

_METRICS = ("dice", "iou", "hd95")
HD95_DEFINITION = (
    "MONAI compute_hausdorff_distance(percentile=95): max of the two directed 95th percentiles of "
    "boundary-to-boundary Euclidean distances (boundary = mask XOR 4-connected erosion), times spacing"
)
EMPTY_CONVENTION = (
    "dice/iou: class absent from prediction and target = 1.0, absent from one only = 0.0; "
    "hd95: both empty = 0.0, exactly one empty = undefined (excluded from the mean and counted)"
)
#: fewest patients for which the Wilcoxon signed-rank test is reported (n=5: exact p >= 0.0625)
MIN_WILCOXON_PATIENTS = 6


# --------------------------------------------------------------------------- inputs


def _to_numpy(x, name: str) -> np.ndarray:
    """numpy view of an array-like or a torch tensor (without importing torch)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array or tensor")
    return arr


def _as_masks(x, num_classes: int | None, name: str) -> np.ndarray:
    """bool (N, C, H, W) class masks from one of the accepted input formats."""
    arr = _to_numpy(x, name)
    if arr.ndim == 3:
        if num_classes is None:
            if not np.all((arr == 0) | (arr == 1)):
                raise ValueError(
                    f"{name}: an (N, H, W) input without num_classes must be binary (0/1); "
                    "pass num_classes for a label map"
                )
            return arr.astype(bool)[:, None]
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not np.all((arr == np.round(arr)) & (arr >= 0) & (arr <= num_classes)):
            raise ValueError(f"{name}: label map values must be integers in 0..{num_classes} (0 = background)")
        labels = arr.astype(np.int64)
        return labels[:, None] == np.arange(1, num_classes + 1)[None, :, None, None]
    if arr.ndim == 4:
        if num_classes is not None and arr.shape[1] != num_classes:
            raise ValueError(f"{name} has {arr.shape[1]} class channels, num_classes={num_classes}")
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name}: an (N, C, H, W) input must hold one binary (0/1) mask per class")
        return arr.astype(bool)
    raise ValueError(f"{name} must be (N, H, W) or (N, C, H, W), got shape {arr.shape}")


def _pair(pred, target, num_classes) -> tuple[np.ndarray, np.ndarray]:
    """Validated bool (N, C, H, W) prediction and target of the same shape."""
    p, t = _as_masks(pred, num_classes, "pred"), _as_masks(target, num_classes, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} differ in shape (as (N, C, H, W) masks)")
    return p, t


# --------------------------------------------------------------------------- overlap metrics


def _overlap_counts(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, C) intersection, prediction size and target size."""
    inter = np.logical_and(p, t).sum(axis=(2, 3), dtype=np.int64)
    return inter, p.sum(axis=(2, 3), dtype=np.int64), t.sum(axis=(2, 3), dtype=np.int64)


def _dice(p, t) -> np.ndarray:
    inter, n_p, n_t = _overlap_counts(p, t)
    denom = n_p + n_t
    return np.where(denom == 0, 1.0, 2.0 * inter / np.maximum(denom, 1))


def _iou(p, t) -> np.ndarray:
    inter, n_p, n_t = _overlap_counts(p, t)
    union = n_p + n_t - inter
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def dice_per_image(pred, target, num_classes: int | None = None) -> np.ndarray:
    """(N, C) Dice = 2|P & T| / (|P| + |T|) per image and class.

    ``pred`` and ``target``: (N, H, W) binary masks (one class), (N, H, W) label maps with
    ``num_classes`` foreground classes (0 = background, not scored) or (N, C, H, W) binary masks
    per class; numpy arrays or torch tensors. A class absent from both prediction and target
    scores 1.0; absent from the target but predicted (or predicted nowhere but present) 0.0.
    """
    return _dice(*_pair(pred, target, num_classes))


def iou_per_image(pred, target, num_classes: int | None = None) -> np.ndarray:
    """(N, C) IoU (Jaccard) = |P & T| / |P | T| per image and class.

    Same inputs and empty-mask convention as :func:`dice_per_image` (both empty: 1.0; only one
    empty: 0.0).
    """
    return _iou(*_pair(pred, target, num_classes))


# --------------------------------------------------------------------------- HD95


def _spacing(spacing) -> tuple[float, float]:
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (2,))
    if not np.all(np.isfinite(sp) & (sp > 0)):
        raise ValueError(f"spacing must be positive, got {spacing}")
    return float(sp[0]), float(sp[1])


def _boundary(mask: np.ndarray) -> np.ndarray:
    """mask XOR its 4-connected erosion (pixels outside the array count as background)."""
    return mask ^ ndimage.binary_erosion(mask)


def _hd_one(p: np.ndarray, t: np.ndarray, spacing: tuple[float, float], percentile: float) -> float:
    """Percentile Hausdorff distance of two (H, W) bool masks (MONAI's definition)."""
    has_p, has_t = bool(p.any()), bool(t.any())
    if not has_p and not has_t:
        return 0.0
    if has_p != has_t:
        return math.nan
    # Crop to the union's bounding box and pad one background pixel on every side: the
    # boundaries and the distances between them are unchanged (as MONAI's crop with margin 1).
    rows, cols = np.flatnonzero((p | t).any(axis=1)), np.flatnonzero((p | t).any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    p, t = np.pad(p[box], 1), np.pad(t[box], 1)
    edge_p, edge_t = _boundary(p), _boundary(t)
    to_t = ndimage.distance_transform_edt(~edge_t, sampling=spacing)[edge_p]  # pred -> target
    to_p = ndimage.distance_transform_edt(~edge_p, sampling=spacing)[edge_t]  # target -> pred
    return float(max(np.percentile(to_t, percentile), np.percentile(to_p, percentile)))


def _hd(p: np.ndarray, t: np.ndarray, spacing: tuple[float, float], percentile: float) -> np.ndarray:
    """(N, C) percentile Hausdorff distances of bool (N, C, H, W) masks."""
    out = np.empty(p.shape[:2])
    for i in range(p.shape[0]):
        for c in range(p.shape[1]):
            out[i, c] = _hd_one(p[i, c], t[i, c], spacing, percentile)
    return out


def hd95_per_image(
    pred, target, spacing=1.0, *, num_classes: int | None = None, percentile: float = 95.0
) -> np.ndarray:
    """(N, C) 95th-percentile symmetric Hausdorff distance between the mask boundaries.

    MONAI's ``compute_hausdorff_distance(percentile=95)`` definition: boundary = mask XOR its
    4-connected erosion; HD95 = max(95th percentile of the distances from each predicted
    boundary pixel to the nearest target boundary pixel, 95th percentile of the reverse),
    linear interpolation. (medpy's ``hd95`` takes the 95th percentile of the union of both
    directed sets instead.) Distances are in pixels times ``spacing`` (a scalar or (row, col)
    spacing). Both masks empty: 0.0; exactly one empty: NaN (undefined). Same inputs as
    :func:`dice_per_image`; ``percentile=100`` gives the classic Hausdorff distance.
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    p, t = _pair(pred, target, num_classes)
    return _hd(p, t, _spacing(spacing), percentile)


def segmentation_per_image(pred, target, *, num_classes: int | None = None, spacing=1.0) -> dict:
    """Per-image metrics ``{"dice", "iou", "hd95"}``, each an (N, C) float array.

    The arrays :func:`segmentation_report` summarises (kept out of the report: too big); feed
    the Dice column of two models to :func:`compare_dice`. HD95 is NaN where undefined.
    """
    p, t = _pair(pred, target, num_classes)
    return {"dice": _dice(p, t), "iou": _iou(p, t), "hd95": _hd(p, t, _spacing(spacing), 95.0)}


# --------------------------------------------------------------------------- report


def _groups(patient_ids, n: int) -> np.ndarray | None:
    if patient_ids is None:
        return None
    groups = np.asarray(_to_numpy(patient_ids, "patient_ids"))
    if groups.shape != (n,):
        raise ValueError(f"patient_ids must have one entry per image ({n}), got shape {groups.shape}")
    return groups


def _weighted_means(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B, C) means of (N, C) ``values`` under weight rows (B, N), NaN entries left out.

    A resample with no defined value drawn for a class gives NaN for that class.
    """
    defined = ~np.isnan(values)
    total = w @ np.where(defined, values, 0.0)
    count = w @ defined.astype(np.float64)
    return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def _nanmean_columns(values: np.ndarray) -> np.ndarray:
    """(C,) column means over defined entries; NaN for a column with none."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=0)
    total = np.where(defined, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def segmentation_summary(
    per_image: dict,
    *,
    patient_ids=None,
    class_names: Sequence[str] = ("lungs",),
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """The report of :func:`segmentation_report` from :func:`segmentation_per_image` arrays.

    ``per_image``: ``{"dice", "iou", "hd95"}`` (N, C) arrays (HD95 NaN = undefined).
    """
    vals = {}
    for m in _METRICS:
        arr = np.asarray(per_image[m], dtype=np.float64)
        vals[m] = arr[:, None] if arr.ndim == 1 else arr
    n, n_classes = vals["dice"].shape
    if any(v.shape != (n, n_classes) for v in vals.values()):
        raise ValueError(f"per-image arrays differ in shape: {[v.shape for v in vals.values()]}")
    if np.isnan(vals["dice"]).any() or np.isnan(vals["iou"]).any():
        raise ValueError("dice and iou must be defined (finite) for every image and class")
    names = [str(c) for c in class_names]
    if len(names) != n_classes or len(set(names)) != n_classes:
        raise ValueError(f"need {n_classes} distinct class names, got {names}")
    groups = _groups(patient_ids, n)

    point = {m: _nanmean_columns(v) for m, v in vals.items()}  # (C,)
    boot = None
    if n_resamples > 0 and n > 0:
        boot = {m: [] for m in _METRICS}
        for w in resample_weights(n, n_resamples=n_resamples, seed=seed, groups=groups):
            for m in _METRICS:
                boot[m].append(_weighted_means(vals[m], w))
        boot = {m: np.concatenate(b) for m, b in boot.items()}  # (B, C)

    hd_undefined = np.isnan(vals["hd95"])
    classes = {}
    for c, name in enumerate(names):
        entry = {}
        for m in _METRICS:
            entry[m] = _json_number(point[m][c])
            defined = boot is not None and entry[m] is not None
            entry[f"{m}_ci"] = _json_ci(percentile_ci(boot[m][:, c], confidence)) if defined else None
        entry["hd95_n_defined"] = int((~hd_undefined[:, c]).sum())
        entry["hd95_n_undefined"] = int(hd_undefined[:, c].sum())
        entry["hd95_bootstrap_skipped"] = None if boot is None else int(np.isnan(boot["hd95"][:, c]).sum())
        classes[name] = entry

    macro = {"n_classes": n_classes}
    hd_classes = [c for c in range(n_classes) if not np.isnan(point["hd95"][c])]
    for m in _METRICS:
        cols = hd_classes if m == "hd95" else list(range(n_classes))
        macro[m] = _json_number(np.mean(point[m][cols])) if cols else None
        ci = None
        if boot is not None and cols:
            ci = _json_ci(percentile_ci(boot[m][:, cols].mean(axis=1), confidence))
        macro[f"{m}_ci"] = ci
    macro["hd95_classes"] = [names[c] for c in hd_classes]
    macro["hd95_n_undefined"] = int(hd_undefined.sum())
    macro["hd95_bootstrap_skipped"] = (
        None if boot is None or not hd_classes else int(np.isnan(boot["hd95"][:, hd_classes].mean(axis=1)).sum())
    )
    meta = {
        "n_images": int(n),
        "n_patients": None if groups is None else int(np.unique(groups).size),
        "resampling": "patient" if groups is not None else "image",
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
        "hd95_definition": HD95_DEFINITION,
        "empty_convention": EMPTY_CONVENTION,
        "macro": "mean over classes of the per-class means (hd95: over classes with a defined image)",
    }
    return {"classes": classes, "macro": macro, "meta": meta}


def segmentation_report(
    pred,
    target,
    *,
    patient_ids=None,
    class_names: Sequence[str] = ("lungs",),
    num_classes: int | None = None,
    spacing=1.0,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Mean Dice, IoU and HD95 per class and macro, with percentile bootstrap CIs. JSON-ready.

    ``pred`` / ``target``: masks as in :func:`dice_per_image` (``num_classes`` for label maps),
    ``class_names`` one per class column. ``patient_ids`` (one per image): the bootstrap draws
    patients with replacement and every image of a drawn patient counts as often as the patient
    was drawn (a resample's mean = mean over the drawn images weighted by draw counts); without
    them it draws images. HD95 means are over the images where it is defined (both masks empty:
    0; exactly one empty: undefined, counted in ``hd95_n_undefined``); a resample with no defined
    image is skipped and counted in ``hd95_bootstrap_skipped``.

    Returns ``{"classes": {name: {dice, dice_ci, iou, iou_ci, hd95, hd95_ci, hd95_n_defined,
    hd95_n_undefined, hd95_bootstrap_skipped}}, "macro": {n_classes, dice, dice_ci, iou, iou_ci,
    hd95, hd95_ci, hd95_classes, hd95_n_undefined, hd95_bootstrap_skipped}, "meta": {n_images,
    n_patients, resampling, n_resamples, confidence, seed, hd95_definition, empty_convention,
    macro}}``. Macro = mean over classes; its CI from the same resamples across classes.
    ``n_resamples=0``: CIs None. The per-image values: :func:`segmentation_per_image`.
    """
    per_image = segmentation_per_image(pred, target, num_classes=num_classes, spacing=spacing)
    return segmentation_summary(
        per_image, patient_ids=patient_ids, class_names=class_names,
        n_resamples=n_resamples, seed=seed, confidence=confidence,
    )


# --------------------------------------------------------------------------- comparison


def _as_vector(x, name: str) -> np.ndarray:
    arr = np.asarray(_to_numpy(x, name), dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be per-image values (N,), got shape {arr.shape}; pick one class column")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def compare_dice(
    dice,
    baseline_dice,
    *,
    patient_ids=None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Paired comparison of per-image Dice (N,) of a model vs a baseline on the same images.

    ``difference`` = mean(dice - baseline_dice) over images (positive: the model is better);
    ``difference_ci``: percentile bootstrap drawing patients (``patient_ids``; images without)
    and applying the SAME draws to both models. ``p_value``: two-sided Wilcoxon signed-rank test
    (``scipy.stats.wilcoxon`` defaults: zero differences dropped) on the per-PATIENT mean
    differences (each image is its own patient without ``patient_ids``), since a patient's images
    are not independent. Fewer than 6 patients or every patient difference zero: p None and a
    ``note``. Returns mean_dice, baseline_mean_dice, difference, difference_ci, p_value,
    statistic, test, n_images, n_patients, n_patients_nonzero, resampling, n_resamples,
    confidence, seed, note (None when the test ran). JSON-ready.
    """
    a, b = _as_vector(dice, "dice"), _as_vector(baseline_dice, "baseline_dice")
    if a.shape != b.shape:
        raise ValueError(f"dice {a.shape} and baseline_dice {b.shape} differ in shape")
    n = a.size
    if n == 0:
        raise ValueError("no images to compare")
    groups = _groups(patient_ids, n)
    diff = a - b
    if groups is None:
        patient_diff = diff
    else:
        _, inverse = np.unique(groups, return_inverse=True)
        patient_diff = np.bincount(inverse, weights=diff) / np.bincount(inverse)
    out = {
        "mean_dice": _json_number(a.mean()),
        "baseline_mean_dice": _json_number(b.mean()),
        "difference": _json_number(diff.mean()),
        "difference_ci": None,
        "p_value": None,
        "statistic": None,
        "test": "two-sided Wilcoxon signed-rank on per-patient mean Dice differences (scipy.stats.wilcoxon)",
        "n_images": int(n),
        "n_patients": int(patient_diff.size),
        "n_patients_nonzero": int(np.count_nonzero(patient_diff)),
        "resampling": "patient" if groups is not None else "image",
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
        "note": None,
    }
    if n_resamples > 0:
        weights = resample_weights(n, n_resamples=n_resamples, seed=seed, groups=groups)
        chunks = [w @ diff / w.sum(axis=1) for w in weights]
        out["difference_ci"] = _json_ci(percentile_ci(np.concatenate(chunks), confidence))
    if patient_diff.size < MIN_WILCOXON_PATIENTS:
        out["note"] = f"fewer than {MIN_WILCOXON_PATIENTS} patients ({patient_diff.size}): Wilcoxon test not run"
    elif not np.any(patient_diff):
        out["note"] = "every per-patient difference is zero: Wilcoxon test undefined"
    else:
        res = stats.wilcoxon(patient_diff)
        out["p_value"], out["statistic"] = _json_number(res.pvalue), _json_number(res.statistic)
    return out
