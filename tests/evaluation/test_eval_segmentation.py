"""Segmentation metrics against hand-computed answers, torchmetrics, sklearn and brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import cdist
from sklearn.metrics import f1_score, jaccard_score
from torchmetrics.functional.segmentation import dice_score, hausdorff_distance

from cxrbench.evaluation import (
    compare_dice,
    dice_per_image,
    hd95_per_image,
    iou_per_image,
    percentile_ci,
    resample_weights,
    segmentation_per_image,
    segmentation_report,
    segmentation_summary,
)


def square(top, left, size=4, shape=(12, 12)):
    m = np.zeros(shape, dtype=bool)
    m[top : top + size, left : left + size] = True
    return m


def blobs(rng, n, shape=(32, 32), k=2):
    """(n, H, W) bool masks: unions of k random discs (some may touch the border)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros((n, *shape), dtype=bool)
    for i in range(n):
        for _ in range(k):
            cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
            r = rng.uniform(2, shape[0] / 4)
            out[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    return out


def perturb(rng, masks, p=0.08):
    """Flip pixels near the boundary and a few anywhere: a plausible imperfect prediction."""
    from scipy import ndimage

    ring = np.stack([ndimage.binary_dilation(m, iterations=2) ^ ndimage.binary_erosion(m, iterations=2) for m in masks])
    flip = (ring & (rng.random(masks.shape) < 0.4)) | (rng.random(masks.shape) < p / 10)
    return masks ^ flip


# --------------------------------------------------------------------------- Dice / IoU


def test_dice_iou_hand_computed_overlapping_squares():
    target = np.stack([square(0, 0), square(0, 0), square(2, 2)])
    pred = np.stack([square(0, 2), square(2, 2), square(2, 2)])  # overlaps: 4x2=8, 2x2=4, 16
    dice, iou = dice_per_image(pred, target), iou_per_image(pred, target)
    assert dice.shape == iou.shape == (3, 1)
    np.testing.assert_allclose(dice[:, 0], [2 * 8 / 32, 2 * 4 / 32, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(iou[:, 0], [8 / 24, 4 / 28, 1.0], rtol=0, atol=1e-15)


def test_empty_conventions():
    empty, sq = np.zeros((12, 12), bool), square(3, 3)
    pred = np.stack([empty, sq, empty])
    target = np.stack([empty, empty, sq])
    np.testing.assert_array_equal(dice_per_image(pred, target)[:, 0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(iou_per_image(pred, target)[:, 0], [1.0, 0.0, 0.0])
    hd = hd95_per_image(pred, target)[:, 0]
    assert hd[0] == 0.0 and np.isnan(hd[1]) and np.isnan(hd[2])


def test_dice_matches_torchmetrics_one_hot_and_index():
    rng = np.random.default_rng(0)
    n, n_classes = 12, 3
    target = np.stack([blobs(rng, n, k=1) for _ in range(n_classes)], axis=1)  # (N, C, H, W)
    pred = perturb(rng, target)
    pred[0, 1] = False  # predicted nowhere: Dice 0
    ours = dice_per_image(pred, target)
    ref = dice_score(torch.from_numpy(pred).long(), torch.from_numpy(target).long(), num_classes=n_classes,
                     include_background=True, average="none", input_format="one-hot").numpy()
    assert ours.shape == ref.shape == (n, n_classes)
    assert target.any(axis=(2, 3)).all()  # torchmetrics gives NaN for "both empty"; not the case here
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)  # torchmetrics works in float32
    assert ours[0, 1] == 0.0

    # label maps: class k = label k, 0 = background (torchmetrics: num_classes counts the background)
    labels_t = np.zeros((target.shape[0], *target.shape[2:]), dtype=np.int64)
    labels_p = np.zeros_like(labels_t)
    for c in range(n_classes):  # later classes overwrite earlier ones: a proper label map
        labels_t[target[:, c]] = c + 1
        labels_p[pred[:, c]] = c + 1
    ours = dice_per_image(labels_p, labels_t, num_classes=n_classes)
    ref = dice_score(torch.from_numpy(labels_p), torch.from_numpy(labels_t), num_classes=n_classes + 1,
                     include_background=False, average="none", input_format="index").numpy()
    both_empty = np.isnan(ref)
    np.testing.assert_allclose(ours[~both_empty], ref[~both_empty], rtol=0, atol=1e-6)
    assert np.all(ours[both_empty] == 1.0)
    one_hot_t = labels_t[:, None] == np.arange(1, n_classes + 1)[None, :, None, None]
    one_hot_p = labels_p[:, None] == np.arange(1, n_classes + 1)[None, :, None, None]
    np.testing.assert_array_equal(ours, dice_per_image(one_hot_p, one_hot_t))


def test_dice_iou_match_sklearn_on_flattened_masks():
    rng = np.random.default_rng(1)
    target = blobs(rng, 20)
    pred = perturb(rng, target)
    keep = target.any(axis=(1, 2)) | pred.any(axis=(1, 2))
    dice, iou = dice_per_image(pred, target)[:, 0], iou_per_image(pred, target)[:, 0]
    for i in np.flatnonzero(keep):
        assert dice[i] == pytest.approx(f1_score(target[i].ravel(), pred[i].ravel()), abs=1e-12)
        assert iou[i] == pytest.approx(jaccard_score(target[i].ravel(), pred[i].ravel()), abs=1e-12)


def test_torch_inputs_and_binary_formats_agree():
    rng = np.random.default_rng(2)
    target = blobs(rng, 6)
    pred = perturb(rng, target)
    base = segmentation_per_image(pred, target)
    for p, t in [(torch.from_numpy(pred), torch.from_numpy(target)),
                 (pred.astype(np.uint8), target.astype(np.int64)),
                 (pred[:, None].astype(np.float32), target[:, None]),
                 (torch.from_numpy(pred).float()[:, None], torch.from_numpy(target).long())]:
        got = segmentation_per_image(p, t)
        for m in ("dice", "iou", "hd95"):
            np.testing.assert_array_equal(got[m], base[m])
    assert np.array_equal(dice_per_image(torch.from_numpy(pred), target), dice_per_image(pred, target))


def test_invalid_inputs_raise():
    sq = square(0, 0)[None]
    with pytest.raises(ValueError, match="num_classes"):
        dice_per_image(sq * 2, sq)  # a label map needs num_classes
    with pytest.raises(ValueError, match="differ in shape"):
        dice_per_image(sq, np.concatenate([sq, sq]))
    with pytest.raises(ValueError, match="binary"):
        dice_per_image(np.full((1, 2, 12, 12), 0.5), np.zeros((1, 2, 12, 12)))
    with pytest.raises(ValueError, match="0..2"):
        dice_per_image(sq * 3, sq, num_classes=2)
    with pytest.raises(ValueError, match="class names"):
        segmentation_report(sq, sq, class_names=("a", "b"))


# --------------------------------------------------------------------------- HD95


def brute_force_hd(p: np.ndarray, t: np.ndarray, q: float = 95.0, spacing=(1.0, 1.0), union=False) -> float:
    """MONAI's definition (or medpy's with ``union``) from boundary point lists and cdist."""

    def boundary_points(m):
        padded = np.pad(m, 1)  # outside the image = background
        inner = padded[1:-1, 1:-1]
        all_nb = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        return np.argwhere(inner & ~all_nb) * np.asarray(spacing)

    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return float("nan")
    d = cdist(boundary_points(p), boundary_points(t))
    a, b = d.min(axis=1), d.min(axis=0)
    if union:
        return float(np.percentile(np.concatenate([a, b]), q))
    return float(max(np.percentile(a, q), np.percentile(b, q)))


def test_hd95_known_answers():
    same = hd95_per_image(square(2, 2)[None], square(2, 2)[None])
    assert same.shape == (1, 1) and same[0, 0] == 0.0
    assert hd95_per_image(square(2, 2)[None], square(2, 5)[None])[0, 0] == pytest.approx(3.0, abs=1e-12)
    assert hd95_per_image(square(2, 2)[None], square(5, 2)[None])[0, 0] == pytest.approx(3.0, abs=1e-12)
    assert hd95_per_image(square(2, 2)[None], square(2, 5)[None], spacing=0.5)[0, 0] == pytest.approx(1.5)
    # anisotropic spacing (row, col): a shift of 3 rows at 2 mm per row is 6 mm
    assert hd95_per_image(square(2, 2)[None], square(5, 2)[None], spacing=(2.0, 1.0))[0, 0] == pytest.approx(6.0)
    assert hd95_per_image(square(2, 2)[None], square(5, 2)[None], spacing=(1.0, 2.0))[0, 0] == pytest.approx(3.0)
    # touching the image border: the border pixels are boundary pixels (as in MONAI)
    assert hd95_per_image(square(0, 0)[None], square(0, 3)[None])[0, 0] == pytest.approx(3.0)
    empty = np.zeros((1, 12, 12), bool)
    assert np.isnan(hd95_per_image(square(2, 2)[None], empty)[0, 0])
    assert np.isnan(hd95_per_image(empty, square(2, 2)[None])[0, 0])
    assert hd95_per_image(empty, empty)[0, 0] == 0.0


def test_hd95_matches_brute_force_monai_definition_on_random_blobs():
    rng = np.random.default_rng(3)
    target = blobs(rng, 25, k=2)
    pred = perturb(rng, target)
    pred[0] = np.roll(target[0], 5, axis=1)
    for spacing in [(1.0, 1.0), (0.7, 1.3)]:
        ours = hd95_per_image(pred, target, spacing=spacing)[:, 0]
        ref = np.array([brute_force_hd(p, t, spacing=spacing) for p, t in zip(pred, target)])
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        ok = ~np.isnan(ref)
        assert ok.sum() >= 20
        np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-12, atol=1e-12)
        # medpy's union-of-both-sets percentile is never larger than MONAI's max of the two
        medpy = np.array([brute_force_hd(p, t, spacing=spacing, union=True) for p, t in zip(pred, target)])
        assert np.all(medpy[ok] <= ours[ok] + 1e-12) and np.any(medpy[ok] < ours[ok] - 1e-6)
    # the definition matters: not the plain Hausdorff distance
    hd100 = hd95_per_image(pred, target, percentile=100)[:, 0]
    assert np.any(hd100[ok] > ours[ok] + 1e-6)


def test_full_hausdorff_matches_torchmetrics():
    rng = np.random.default_rng(4)
    target = np.stack([blobs(rng, 10, k=1), blobs(rng, 10, k=2)], axis=1)
    pred = np.stack([perturb(rng, target[:, c]) for c in range(2)], axis=1)
    assert pred.any(axis=(2, 3)).all() and target.any(axis=(2, 3)).all()  # torchmetrics fails on empty
    ours = hd95_per_image(pred, target, percentile=100)
    ref = hausdorff_distance(torch.from_numpy(pred).long(), torch.from_numpy(target).long(), num_classes=2,
                             include_background=True, distance_metric="euclidean", input_format="one-hot").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- report


def hand_mean_ci(values, n_images, *, n_resamples, seed, groups, confidence=0.95):
    """Percentile CI of the mean by explicit repetition of the drawn images (NaN left out)."""
    means = []
    for w in resample_weights(n_images, n_resamples=n_resamples, seed=seed, groups=groups):
        for row in w.astype(np.int64):
            drawn = np.repeat(values, row)
            drawn = drawn[~np.isnan(drawn)]
            means.append(drawn.mean() if drawn.size else np.nan)
    return percentile_ci(means, confidence), np.asarray(means)


def make_case(seed=5, n=30, n_classes=2):
    rng = np.random.default_rng(seed)
    target = np.stack([blobs(rng, n, k=1) for _ in range(n_classes)], axis=1)
    pred = np.stack([perturb(rng, target[:, c]) for c in range(n_classes)], axis=1)
    pred[3, 0] = False  # exactly one empty: HD95 undefined
    target[4, -1] = False
    pred[4, -1] = False  # both empty: Dice 1, HD95 0
    return pred, target


def test_report_matches_hand_bootstrap_and_point_values():
    pred, target = make_case()
    patients = np.arange(pred.shape[0]) // 3
    r = segmentation_report(pred, target, patient_ids=patients, class_names=("left", "right"), n_resamples=300,
                            seed=7, confidence=0.9)
    json.dumps(r)
    per = segmentation_per_image(pred, target)
    assert r["meta"]["n_images"] == 30 and r["meta"]["n_patients"] == 10 and r["meta"]["resampling"] == "patient"
    for c, name in enumerate(("left", "right")):
        e = r["classes"][name]
        for m in ("dice", "iou", "hd95"):
            vals = per[m][:, c]
            assert e[m] == pytest.approx(np.nanmean(vals), abs=1e-12)
            (lo, hi), _ = hand_mean_ci(vals, 30, n_resamples=300, seed=7, groups=patients, confidence=0.9)
            assert e[f"{m}_ci"] == pytest.approx([lo, hi], abs=1e-12)
            assert e[f"{m}_ci"][0] <= e[m] <= e[f"{m}_ci"][1]
    assert r["classes"]["left"]["hd95_n_undefined"] == 1 and r["classes"]["left"]["hd95_n_defined"] == 29
    assert r["classes"]["right"]["hd95_n_undefined"] == 0
    assert per["dice"][4, 1] == 1.0 and per["hd95"][4, 1] == 0.0 and np.isnan(per["hd95"][3, 0])
    # macro: mean over classes, its CI from the same resamples across classes
    for m in ("dice", "iou", "hd95"):
        assert r["macro"][m] == pytest.approx(np.mean([r["classes"][k][m] for k in ("left", "right")]), abs=1e-12)
        per_class = [hand_mean_ci(per[m][:, c], 30, n_resamples=300, seed=7, groups=patients)[1] for c in range(2)]
        macro_ci = percentile_ci(np.mean(per_class, axis=0), 0.9)
        assert r["macro"][f"{m}_ci"] == pytest.approx(list(macro_ci), abs=1e-12)
    assert r["macro"]["hd95_n_undefined"] == 1 and r["macro"]["hd95_bootstrap_skipped"] == 0


def test_patient_level_resampling_of_duplicated_images():
    pred, target = make_case(seed=6, n=40, n_classes=1)
    once = segmentation_report(pred, target, n_resamples=500, seed=1)
    twice_p, twice_t = np.repeat(pred, 2, axis=0), np.repeat(target, 2, axis=0)  # two identical images each
    patients = np.repeat(np.arange(40), 2)
    by_patient = segmentation_report(twice_p, twice_t, patient_ids=patients, n_resamples=500, seed=1)
    by_image = segmentation_report(twice_p, twice_t, n_resamples=500, seed=1)
    a, b, c = once["classes"]["lungs"], by_patient["classes"]["lungs"], by_image["classes"]["lungs"]
    for m in ("dice", "iou", "hd95"):
        assert b[m] == pytest.approx(a[m], abs=1e-12) and c[m] == pytest.approx(a[m], abs=1e-12)
        # drawing patients of two identical images = drawing the original images
        assert b[f"{m}_ci"] == pytest.approx(a[f"{m}_ci"], abs=1e-12)
        # drawing the duplicated images as if independent: too narrow (about 1/sqrt(2))
        width_b, width_c = np.diff(b[f"{m}_ci"])[0], np.diff(c[f"{m}_ci"])[0]
        assert width_c < 0.85 * width_b
    assert by_patient["meta"]["n_patients"] == 40 and by_image["meta"]["n_patients"] is None


def test_report_without_bootstrap_and_all_undefined_hd95():
    pred, target = make_case(seed=8, n=6, n_classes=1)
    r = segmentation_report(pred, target, n_resamples=0)
    assert r["classes"]["lungs"]["dice_ci"] is None and r["macro"]["hd95_ci"] is None
    assert r["classes"]["lungs"]["hd95_bootstrap_skipped"] is None
    target = target | square(2, 2, shape=target.shape[2:])  # no empty target left
    r = segmentation_report(np.zeros_like(target), target, n_resamples=50)  # every HD95 undefined
    e = r["classes"]["lungs"]
    assert e["dice"] == 0.0 and e["hd95"] is None and e["hd95_ci"] is None
    assert e["hd95_n_undefined"] == 6 and e["hd95_bootstrap_skipped"] == 50
    assert r["macro"]["hd95"] is None and r["macro"]["hd95_classes"] == []
    json.dumps(r)
    # the summary of precomputed arrays is the same report
    pred, target = make_case(seed=8, n=6, n_classes=1)
    per = segmentation_per_image(pred, target)
    assert segmentation_summary(per, n_resamples=100) == segmentation_report(pred, target, n_resamples=100)


# --------------------------------------------------------------------------- compare_dice


def test_compare_dice_identical_inputs():
    rng = np.random.default_rng(9)
    d = rng.uniform(0.6, 0.95, size=40)
    r = compare_dice(d, d.copy(), patient_ids=np.arange(40) // 2, n_resamples=200)
    json.dumps(r)
    assert r["difference"] == 0.0 and r["difference_ci"] == [0.0, 0.0]
    assert r["p_value"] is None and "zero" in r["note"]
    assert r["n_patients"] == 20 and r["n_patients_nonzero"] == 0


def test_compare_dice_better_model_matches_scipy_wilcoxon_on_patient_means():
    rng = np.random.default_rng(10)
    n_patients = 15
    patients = np.repeat(np.arange(n_patients), rng.integers(1, 4, size=n_patients))
    rng.shuffle(patients)
    base = rng.uniform(0.6, 0.9, size=patients.size)
    model = base + rng.uniform(0.005, 0.05, size=patients.size)  # better on every image
    r = compare_dice(model, base, patient_ids=patients, n_resamples=400, seed=3)
    diff = model - base
    patient_means = np.array([diff[patients == g].mean() for g in np.unique(patients)])
    ref = stats.wilcoxon(patient_means)
    assert r["difference"] == pytest.approx(diff.mean(), abs=1e-12)
    assert r["mean_dice"] == pytest.approx(model.mean()) and r["baseline_mean_dice"] == pytest.approx(base.mean())
    assert 0 < r["difference_ci"][0] <= r["difference"] <= r["difference_ci"][1]
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-12) and r["p_value"] < 0.05
    assert r["statistic"] == pytest.approx(ref.statistic)
    assert r["n_patients"] == n_patients and r["note"] is None
    # the CI is the paired patient-level bootstrap: same draws for both models
    (lo, hi), _ = hand_mean_ci(diff, patients.size, n_resamples=400, seed=3, groups=patients)
    assert r["difference_ci"] == pytest.approx([lo, hi], abs=1e-12)
    # image-level test would be a different (wrong) p-value: check it uses patient means
    assert r["p_value"] != pytest.approx(stats.wilcoxon(diff).pvalue, rel=1e-6)


def test_compare_dice_too_few_patients_and_torch_input():
    d = np.array([0.8, 0.82, 0.9, 0.7, 0.75, 0.85])
    b = d - 0.01
    r = compare_dice(torch.from_numpy(d), b, patient_ids=[0, 0, 1, 1, 2, 3], n_resamples=100)
    assert r["p_value"] is None and "fewer than 6" in r["note"] and r["n_patients"] == 4
    assert r["difference"] == pytest.approx(0.01)
    r = compare_dice(d, b, n_resamples=0)  # six images = six patients: the test runs
    assert r["p_value"] == pytest.approx(stats.wilcoxon(d - b).pvalue) and r["difference_ci"] is None
    with pytest.raises(ValueError, match="differ in shape"):
        compare_dice(d, b[:5])
