"""Fidelity, PRDC and diversity metrics against their reference implementations and known answers.

References: clean-fid (Fréchet distance, kernel distance), torchmetrics (KID, MS-SSIM), the
authors' ``prdc`` package (Naeem et al. 2020), numpy (pixel spread), and closed forms.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from cxrbench.errors import CxrbenchError
from cxrbench.quality import fd_ratio, feature_stats, frechet_distance, kid, ms_ssim_diversity, pixel_spread, prdc
from cxrbench.quality import fidelity
from cxrbench.testing import make_toy_images


def gaussians(n_a, n_b, d, *, shift=0.0, seed=0):
    """Two correlated Gaussian feature sets; b differs in mean (``shift``) and covariance."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n_a, d)) @ mix, 1.3 * rng.normal(size=(n_b, d)) @ mix + shift


# --------------------------------------------------------------------------- Fréchet distance


def test_frechet_matches_cleanfid_and_closed_form():
    from cleanfid.fid import frechet_distance as cleanfid_fd

    a, b = gaussians(300, 250, 12, shift=0.5)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = cleanfid_fd(mu_a, s_a, mu_b, s_b)
    got = frechet_distance(a, b)
    assert got == pytest.approx(ref, rel=1e-10)
    # independently of sqrtm: tr (S_a S_b)^(1/2) = sum of sqrt of the (real, >= 0) eigenvalues
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(s_a @ s_b).real, 0, None)).sum()
    closed = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt
    assert got == pytest.approx(closed, rel=1e-6)
    mu, sigma = feature_stats(torch.from_numpy(a))  # torch input, float64 stats
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, s_a, rtol=1e-12)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(got, rel=1e-5)


def test_frechet_zero_for_identical_sets_and_mean_shift_squared():
    a, _ = gaussians(400, 2, 10)
    assert abs(frechet_distance(a, a)) < 1e-6
    delta = np.linspace(-1, 1, 10)
    # same samples shifted: covariances are equal exactly, so FD = |delta|^2 exactly
    assert frechet_distance(a, a + delta) == pytest.approx((delta**2).sum(), rel=1e-6)


def test_frechet_mean_shift_on_independent_gaussians():
    rng = np.random.default_rng(3)
    d, n = 4, 50_000
    chol = np.linalg.cholesky(np.eye(d) + 0.5)  # a shared, non-diagonal covariance
    delta = np.array([1.0, -0.5, 0.5, 0.0])
    base = rng.normal(size=(n, d)) @ chol.T
    for scale in (1.0, 2.0, 3.0):
        b = rng.normal(size=(n, d)) @ chol.T + scale * delta
        # sampling error of the mean term ~ 2 |delta| sqrt(2 tr(S) / n) ~ 0.05 at scale 3
        assert frechet_distance(base, b) == pytest.approx(scale**2 * (delta**2).sum(), abs=0.08)


def test_frechet_needs_two_rows():
    with pytest.raises(CxrbenchError, match="at least 2") as err:
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    assert "\n" not in str(err.value)
    with pytest.raises(CxrbenchError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


# --------------------------------------------------------------------------- KID


def test_kid_matches_torchmetrics_and_cleanfid():
    from cleanfid.fid import kernel_distance
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = gaussians(120, 120, 16, shift=0.3, seed=1)
    # subsets=1 of size N: every subset is a permutation of the whole set, so all agree exactly
    mean, std = kid(a, b, subsets=1, subset_size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features"
        metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=120)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    tm_mean, tm_std = metric.compute()
    assert mean == pytest.approx(float(tm_mean), rel=1e-9)
    assert std == float(tm_std) == 0.0
    assert mean == pytest.approx(kernel_distance(a, b, num_subsets=1, max_subset_size=500), rel=1e-9)
    assert mean > 0.01  # and the shift is visible


def test_kid_subsets_are_drawn_without_replacement(monkeypatch):
    a, b = gaussians(60, 60, 8, shift=0.2, seed=2)
    # full-size proper subsets are permutations: every subset gives the same MMD, std 0;
    # drawing with replacement would repeat rows and scatter the values
    full, _ = kid(a, b, subsets=1, subset_size=60)
    mean, std = kid(a, b, subsets=5, subset_size=60)
    assert mean == pytest.approx(full, rel=1e-12) and std < 1e-12 * abs(full)

    drawn = []
    real_rng = np.random.default_rng

    class Spy:
        def __init__(self, seed):
            self.g = real_rng(seed)

        def choice(self, *args, **kwargs):
            out = self.g.choice(*args, **kwargs)
            drawn.append(np.asarray(out))
            return out

    monkeypatch.setattr(fidelity.np.random, "default_rng", Spy)
    kid(a, b[:45], subsets=7, subset_size=30)
    assert len(drawn) == 14
    for idx in drawn:
        assert len(idx) == 30 and len(np.unique(idx)) == 30


def test_kid_seeded_and_subset_size_capped():
    a, b = gaussians(80, 50, 8, shift=0.2, seed=4)
    assert kid(a, b, subsets=10, subset_size=30, seed=5) == kid(a, b, subsets=10, subset_size=30, seed=5)
    assert kid(a, b, subsets=10, subset_size=30, seed=5) != kid(a, b, subsets=10, subset_size=30, seed=6)
    # m = min(subset_size, len(a), len(b)) = 50, same as asking for exactly 50
    assert kid(a, b, subsets=3, subset_size=1000) == kid(a, b, subsets=3, subset_size=50)


def test_the_quality_blocks_kid_subsets_are_smaller_than_its_sets_so_the_spread_is_real():
    from cxrbench.quality.fidelity import kid_subset_size

    a, b = gaussians(600, 600, 16, shift=0.3, seed=7)
    m = kid_subset_size(len(a), len(b))
    assert m == 300 and kid_subset_size(5000, 3000) == 1000 and kid_subset_size(3, 2) == 2
    mean, std = kid(a, b, subset_size=m, seed=0)
    whole, _ = kid(a, b, subsets=1, subset_size=600)
    assert std > 0.05 * abs(mean) > 0  # a spread, not ~1e-15
    assert mean == pytest.approx(whole, rel=0.2)  # the same (unbiased) quantity


# --------------------------------------------------------------------------- FD ratio


def test_fd_ratio_near_one_for_same_distribution_and_small_for_shifted():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(2000, 8))
    same = fd_ratio(real, rng.normal(size=(1000, 8)))
    worse = fd_ratio(real, rng.normal(size=(1000, 8)) + 0.5)
    assert same["n_half"] == worse["n_half"] == 1000
    assert 0.6 < same["ratio"] < 1.7
    assert worse["ratio"] < 0.1
    # the real/real half is the same split for the same seed: only the synthetic side changed
    assert same["fd_real_real"] == worse["fd_real_real"]
    assert worse["fd_real_syn"] == pytest.approx(8 * 0.5**2, rel=0.1)  # |delta|^2
    assert same["ratio"] == pytest.approx(same["fd_real_real"] / same["fd_real_syn"])


def test_fd_ratio_subsamples_synthetic_at_random():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(2000, 4))
    # synthetic sorted: 1,000 real-like rows, then 1,000 shifted; a random half mixes both
    syn = np.concatenate([rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4)) + 3.0])
    assert fd_ratio(real, syn)["fd_real_syn"] > 4 * 0.5 * 1.5**2


def test_fd_ratio_equal_sizes_and_zero_guard():
    rng = np.random.default_rng(7)
    assert fd_ratio(rng.normal(size=(100, 4)), rng.normal(size=(30, 4)))["n_half"] == 30
    const = np.ones((20, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fd_ratio(const, const)
    assert out["fd_real_syn"] == 0.0 and np.isnan(out["ratio"])


# --------------------------------------------------------------------------- PRDC


@pytest.mark.parametrize("k", [3, 5])
def test_prdc_matches_reference_package(k, capsys):
    from prdc import compute_prdc

    real, fake = gaussians(400, 300, 16, shift=0.3, seed=k)
    ref = compute_prdc(real, fake, nearest_k=k)
    got = prdc(real, fake, k=k)
    assert got["k"] == k
    for key in ("precision", "recall", "density", "coverage"):
        assert got[key] == pytest.approx(float(ref[key]), rel=1e-6), key
    # chunking is bookkeeping only
    assert prdc(real, fake, k=k, chunk=7) == got
    assert 0 < got["precision"] < 1 and 0 < got["coverage"] < 1


def test_prdc_known_answers():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(300, 8))
    same = prdc(real, real.copy(), k=5)
    # each fake copy lies in its own ball and the k-1 strictly closer neighbours' balls: density 1
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0)

    far = prdc(real, rng.normal(size=(200, 8)) + 100.0, k=5)
    assert far["precision"] == far["recall"] == far["density"] == far["coverage"] == 0.0

    centres = np.zeros((4, 8))
    centres[:, :4] = 12 * np.eye(4)
    modes = np.concatenate([c + rng.normal(size=(100, 8)) for c in centres])
    collapsed = prdc(modes, centres[0] + 0.01 * rng.normal(size=(100, 8)), k=5)
    assert collapsed["precision"] == 1.0  # every fake looks real...
    assert collapsed["recall"] < 0.02 and collapsed["coverage"] < 0.25  # ...but covers < 1 of 4 modes


def test_prdc_needs_more_than_k_rows():
    with pytest.raises(CxrbenchError, match="more than k"):
        prdc(np.zeros((5, 2)), np.ones((10, 2)), k=5)


# --------------------------------------------------------------------------- MS-SSIM diversity


@pytest.mark.parametrize("size,scales,kernel", [(16, 2, 7), (32, 3, 7), (64, 4, 7)])
def test_ms_ssim_identical_vs_noise(size, scales, kernel):
    one = make_toy_images([1], size, seed=0)
    same = ms_ssim_diversity(one.repeat(6, 1, 1, 1), None, pairs=20)
    assert same["all"] == pytest.approx(1.0, abs=1e-6) and same["overall"] == same["all"]
    assert (same["scales"], same["kernel_size"], same["groups"]) == (scales, kernel, ["all"])
    noise = torch.randint(0, 256, (12, 1, size, size), generator=torch.Generator().manual_seed(size), dtype=torch.uint8)
    assert ms_ssim_diversity(noise, None, pairs=20)["all"] < 0.15
    # realistic images sit in between, and a collapsed set above a varied one
    toy = make_toy_images([0] * 12, size, seed=1)
    varied = ms_ssim_diversity(toy, None, pairs=20)["all"]
    near_dupes = one.repeat(12, 1, 1, 1).float() + torch.randn(12, 1, size, size, generator=torch.Generator().manual_seed(0))
    assert 0.15 < varied < ms_ssim_diversity(near_dupes.clamp(0, 255), None, pairs=20)["all"] < 1.0


@pytest.mark.parametrize("size", [32, 256])
def test_ms_ssim_equals_torchmetrics_on_one_pair(size):
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    imgs = make_toy_images([0, 1], size, seed=2)
    got = ms_ssim_diversity(imgs, None, pairs=16)  # two images: every pair is (0, 1) or (1, 0)
    a, b = imgs[:1].double(), imgs[1:].double()
    if size == 256:  # large enough for the defaults: only the betas' renormalisation differs
        ref = ms_ssim(a, b, data_range=255.0)
        assert got["all"] == pytest.approx(float(ref), rel=2e-4)
    ref = ms_ssim(a, b, data_range=255.0, kernel_size=got["kernel_size"], sigma=got["sigma"], betas=got["betas"])
    assert got["all"] == pytest.approx(float(ref), rel=1e-5)  # float32 vs float64 reference


def test_ms_ssim_ignores_nan_labels_and_small_groups():
    imgs = make_toy_images([0, 1] * 10, 32, seed=3)
    labels = torch.tensor([[0.0, float("nan")], [1.0, float("nan")]] * 10)
    labels[[2, 5, 7], 0] = float("nan")
    labels[4, 1] = 1.0  # column 1: one known label, no group of 2
    got = ms_ssim_diversity(imgs, labels, pairs=30, seed=1)
    assert got["groups"] == ["label0=0", "label0=1"]
    keep = ~torch.isnan(labels[:, 0])
    ref = ms_ssim_diversity(imgs[keep], labels[keep][:, :1], pairs=30, seed=1)
    assert got["label0=0"] == ref["label0=0"] and got["label0=1"] == ref["label0=1"]
    assert got["overall"] == pytest.approx((got["label0=0"] + got["label0=1"]) / 2)
    with pytest.raises(CxrbenchError, match="16 px"):
        ms_ssim_diversity(make_toy_images([0, 1], 8, seed=0), None)


# --------------------------------------------------------------------------- pixel spread


def test_pixel_spread_equals_numpy_std():
    rng = np.random.default_rng(9)
    # values hugging 0 and 255: squares or differences in uint8 would overflow
    imgs = np.where(rng.random((40, 1, 16, 16)) < 0.5, rng.integers(0, 4, (40, 1, 16, 16)),
                    rng.integers(250, 256, (40, 1, 16, 16))).astype(np.uint8)
    labels = np.array([0.0, 1.0, np.nan, 1.0] * 10)
    got = pixel_spread(torch.from_numpy(imgs), torch.from_numpy(labels)[:, None])
    for name, mask in (("label0=0", labels == 0), ("label0=1", labels == 1)):
        assert got[name] == pytest.approx(np.std(imgs[mask].astype(np.float64), axis=0).mean(), rel=1e-10)
    assert got["all"] == pytest.approx(np.std(imgs.astype(np.float64), axis=0).mean(), rel=1e-10)
    assert got["overall"] == pytest.approx((got["label0=0"] + got["label0=1"]) / 2)
    assert got["groups"] == ["label0=0", "label0=1"]
    assert pixel_spread(np.repeat(imgs[:1], 5, axis=0))["all"] == 0.0
