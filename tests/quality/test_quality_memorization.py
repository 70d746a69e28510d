"""Nearest neighbours and near-copy detection against brute force and planted copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.distance import cdist

from cxrbench.errors import CxrbenchError
from cxrbench.quality import image_memorization, memorization, nearest, save_worst_pairs
from cxrbench.testing import make_toy_images


def test_nearest_matches_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(70, 24)) * 50 + 100, rng.normal(size=(90, 24)) * 50 + 100
    full = cdist(q, r)
    d, i = nearest(q, r, chunk=16)
    np.testing.assert_array_equal(i, full.argmin(1))
    np.testing.assert_allclose(d, full.min(1), rtol=1e-12)
    own = cdist(r, r)
    np.fill_diagonal(own, np.inf)
    d, i = nearest(torch.from_numpy(r), r, exclude_self=True, chunk=32)
    np.testing.assert_array_equal(i, own.argmin(1))
    np.testing.assert_allclose(d, own.min(1), rtol=1e-12)
    with pytest.raises(CxrbenchError):
        nearest(q, r, exclude_self=True)


def test_nearest_converts_uint8_before_subtracting():
    query = np.zeros((1, 16), dtype=np.uint8)
    reference = np.stack([np.full(16, 255), np.full(16, 10)]).astype(np.uint8)
    # in uint8, 0 - 255 == 1 and 0 - 10 == 246: the far row would look nearest
    assert (query - reference[0]).max() == 1
    d, i = nearest(query, reference)
    assert i[0] == 1 and d[0] == pytest.approx(40.0)
    d_t, i_t = nearest(torch.from_numpy(query), torch.from_numpy(reference))
    assert i_t[0] == 1 and d_t[0] == d[0]


def planted_set(n_train=300, n_fresh=150, size=32):
    """Fresh samples, then 10 exact, 10 mirrored and 10 noised (sigma 2) training copies."""
    rng = np.random.default_rng(1)
    train = make_toy_images(rng.integers(0, 2, n_train).tolist(), size, seed=1)
    fresh = make_toy_images(rng.integers(0, 2, n_fresh).tolist(), size, seed=2)
    src = rng.choice(n_train, 30, replace=False)
    exact = train[src[:10]]
    mirrored = train[src[10:20]].flip(-1)
    noise = torch.from_numpy(rng.normal(0, 2, (10, 1, size, size)))
    noised = (train[src[20:]].double() + noise).round().clamp(0, 255).to(torch.uint8)
    syn = torch.cat([fresh, exact, mirrored, noised])
    return syn, train, src, n_fresh


def test_planted_copies_are_flagged_and_traced_to_their_source():
    syn, train, src, n_fresh = planted_set()
    summary, details = image_memorization(syn, train)
    flagged = details.distances <= summary["near_copy_threshold"]
    assert flagged[n_fresh:].all()
    assert flagged[:n_fresh].mean() <= 0.05
    assert summary["near_copy_fraction"] == pytest.approx(flagged.mean())
    np.testing.assert_array_equal(details.nn_index[n_fresh:], src)
    np.testing.assert_array_equal(details.flipped[n_fresh:], np.arange(30) // 10 == 1)
    assert (details.distances[n_fresh : n_fresh + 20] == 0).all()  # exact and mirrored copies
    assert 30 < details.distances[n_fresh + 20 :].max() < 100  # ~2 grey levels * 32 pixels
    assert summary["relative_median"] == pytest.approx(summary["median_nn"] / summary["median_nn_train"])
    assert summary["n"] == len(syn) and summary["quantile"] == 0.01 and summary["flips"] is True

    # with flips the baseline is leave-one-out over train + mirrored train, minus own mirror
    flat = train.double().flatten(1).numpy()
    both = cdist(flat, np.concatenate([flat, train.flip(-1).double().flatten(1).numpy()]))
    both[np.arange(len(flat)), np.arange(len(flat))] = np.inf
    both[np.arange(len(flat)), np.arange(len(flat)) + len(flat)] = np.inf
    assert summary["median_nn_train"] == pytest.approx(np.median(both.min(1)), rel=1e-12)

    # without mirrored references the mirrored copies slip through
    plain, details = image_memorization(syn, train, flips=False)
    flagged = details.distances <= plain["near_copy_threshold"]
    assert not flagged[n_fresh + 10 : n_fresh + 20].any() and flagged[n_fresh : n_fresh + 10].all()
    # the training baseline is the leave-one-out nearest distance, checked by brute force
    own = cdist(flat, flat)
    np.fill_diagonal(own, np.inf)
    assert plain["median_nn_train"] == pytest.approx(np.median(own.min(1)), rel=1e-12)
    assert plain["near_copy_threshold"] == pytest.approx(np.quantile(own.min(1), 0.01), rel=1e-12)


def test_training_baseline_never_matches_own_mirror_image():
    train = make_toy_images([0, 1] * 20, 16, seed=4)
    train[:30, ..., 8:] = train[:30, ..., :8].flip(-1)  # 30 of 40 left-right symmetric
    assert (train[:30] == train[:30].flip(-1)).all()
    summary, _ = image_memorization(train[:5], train)
    flat = train.double().flatten(1).numpy()
    both = cdist(flat, np.concatenate([flat, train.flip(-1).double().flatten(1).numpy()]))
    n = len(flat)
    both[np.arange(n), np.arange(n)] = both[np.arange(n), np.arange(n) + n] = np.inf
    assert summary["median_nn_train"] == pytest.approx(np.median(both.min(1)), rel=1e-12)
    assert summary["near_copy_threshold"] > 0  # a symmetric image is not its own copy


def test_uint8_and_float_inputs_agree():
    syn, train, _, _ = planted_set(n_train=120, n_fresh=40, size=16)
    s8, d8 = image_memorization(syn, train)
    sf, df = image_memorization(syn.double(), train.float())
    assert s8 == sf
    for key in ("distances", "nn_index", "flipped"):
        np.testing.assert_array_equal(getattr(d8, key), getattr(df, key))


def test_feature_rows_without_flips():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(200, 16))
    syn = np.concatenate([rng.normal(size=(50, 16)), train[:5] + 1e-3])
    summary, details = memorization(syn, train)  # flips: no images, so nothing to mirror
    assert summary["flips"] is False
    flagged = details.distances <= summary["near_copy_threshold"]
    np.testing.assert_array_equal(details.nn_index[50:], np.arange(5))
    assert flagged[50:].all() and flagged[:50].sum() <= 2
    with pytest.raises(CxrbenchError):
        memorization(syn, train[:, :8])


def test_save_worst_pairs_png(tmp_path):
    syn, train, src, n_fresh = planted_set(n_train=60, n_fresh=10, size=16)
    summary, details = image_memorization(syn, train)
    path = tmp_path / "pairs" / "worst.png"
    shown = save_worst_pairs(syn, train, details.nn_index, details.distances, path, n=8,
                             flipped=details.flipped)
    img = np.asarray(Image.open(path))
    assert Image.open(path).mode == "L" and img.dtype == np.uint8
    assert img.shape == (8 * 16 + 7 * 2, 2 * 16 + 2)
    assert (details.distances[shown] <= np.sort(details.distances)[7]).all()
    first = shown[0]
    np.testing.assert_array_equal(img[:16, :16], syn[first, 0].numpy())
    real = train[details.nn_index[first], 0].numpy()
    expect = real[:, ::-1] if details.flipped[first] else real
    np.testing.assert_array_equal(img[:16, 18:], expect)
    assert (img[16:18] == 255).all() and (img[:, 16:18] == 255).all()
    # exact copies at distance 0 show as identical halves
    zero = [row for row, i in enumerate(shown) if details.distances[i] == 0]
    assert zero and all((img[r * 18 : r * 18 + 16, :16] == img[r * 18 : r * 18 + 16, 18:]).all() for r in zero)
