"""Learning curves: isotonic fit vs sklearn, real-image equivalents with known answers, the
bootstrap interval of the equivalent, and the saturation size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from cxrbench.evaluation.curves import (
    Equivalent,
    equivalent_interval,
    monotone_curve,
    real_image_equivalent,
    saturation_size,
)

#: a curve exactly linear in log10(n): real = 0.6 + 0.1 log10(n) -> 0.7, 0.8, 0.9, 1.0
SIZES = [10, 100, 1000, 10000]
LINEAR = [0.6 + 0.1 * math.log10(n) for n in SIZES]


# --------------------------------------------------------------------------- monotone_curve


def test_monotone_curve_matches_sklearn_isotonic_on_random_curves():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(2, 9))
        sizes = rng.permutation(np.unique(rng.integers(1, 10_000, size=40))[:k]).astype(float)
        values = rng.normal(0.7, 0.05, size=sizes.size)
        expected = IsotonicRegression(increasing=True).fit_transform(sizes, values)
        np.testing.assert_allclose(monotone_curve(sizes, values), expected, rtol=0, atol=1e-12)


def test_monotone_curve_pools_a_violating_pair_into_its_mean():
    fit = monotone_curve([47, 94, 235, 470], [0.60, 0.70, 0.66, 0.75])
    np.testing.assert_allclose(fit, [0.60, 0.68, 0.68, 0.75], atol=1e-12)


def test_monotone_curve_keeps_input_order_for_unsorted_sizes():
    fit = monotone_curve([235, 47, 470, 94], [0.66, 0.60, 0.75, 0.70])
    np.testing.assert_allclose(fit, [0.68, 0.60, 0.75, 0.68], atol=1e-12)


def test_monotone_curve_leaves_an_increasing_curve_alone():
    np.testing.assert_allclose(monotone_curve(SIZES, LINEAR), LINEAR, atol=0)


@pytest.mark.parametrize(
    "sizes, values, match",
    [
        ([47], [0.6], "at least 2"),
        ([47, 47, 94], [0.6, 0.61, 0.7], "duplicate size 47"),
        ([0, 47], [0.6, 0.7], "positive"),
        ([-5, 47], [0.6, 0.7], "positive"),
        ([47, 94], [0.6, float("nan")], "finite"),
        ([47, 94], [0.6, 0.7, 0.8], "one value per size"),
    ],
)
def test_monotone_curve_rejects_bad_input(sizes, values, match):
    with pytest.raises(ValueError, match=match) as err:
        monotone_curve(sizes, values)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- real_image_equivalent


def test_equivalent_interpolates_linearly_in_log_n():
    eq = real_image_equivalent(SIZES, LINEAR, 0.75)
    assert eq.bound is None and eq.limit is None
    assert eq.n == pytest.approx(10**1.5, rel=1e-9)
    assert real_image_equivalent(SIZES, LINEAR, 0.87).n == pytest.approx(10**2.7, rel=1e-9)


def test_equivalent_at_a_measured_point_is_that_size():
    assert real_image_equivalent(SIZES, LINEAR, 0.8).n == pytest.approx(100, rel=1e-12)
    assert real_image_equivalent(SIZES, LINEAR, 1.0).n == pytest.approx(10000, rel=1e-12)


def test_equivalent_reads_the_isotonic_fit_not_the_raw_curve():
    # Raw 0.70 at 94 then 0.66 at 235 pool to 0.68, 0.68: 0.68 is first reached at 94, and 0.65
    # lies between 47 (0.60) and 94 (0.68) on the fit, although the raw curve crosses it twice.
    sizes, values = [47, 94, 235, 470], [0.60, 0.70, 0.66, 0.75]
    assert real_image_equivalent(sizes, values, 0.68).n == pytest.approx(94, rel=1e-12)
    expected = math.exp(math.log(47) + (0.05 / 0.08) * math.log(94 / 47))
    assert real_image_equivalent(sizes, values, 0.65).n == pytest.approx(expected, rel=1e-9)


def test_equivalent_on_a_flat_stretch_is_its_smallest_n():
    sizes, values = [47, 94, 235, 470, 1174], [0.60, 0.70, 0.70, 0.70, 0.80]
    assert real_image_equivalent(sizes, values, 0.70).n == pytest.approx(94, rel=1e-12)
    # just above the flat level: between its last point and the next
    assert 470 < real_image_equivalent(sizes, values, 0.7001).n < 1174


def test_equivalent_above_the_curve_is_a_lower_bound():
    eq = real_image_equivalent([47, 94, 235, 470, 1174, 4695], [0.6, 0.65, 0.7, 0.72, 0.75, 0.78], 0.79)
    assert eq == Equivalent(None, "above", 4695.0)
    assert eq.text() == "> 4,695"


@pytest.mark.parametrize("target", [0.59, 0.6])
def test_equivalent_at_or_below_the_first_point_is_an_upper_bound(target):
    eq = real_image_equivalent([47, 94, 235], [0.6, 0.65, 0.7], target)
    assert eq == Equivalent(None, "below", 47.0)
    assert eq.text() == "< 47"


def test_equivalent_text_rounds_and_groups_thousands():
    assert Equivalent(1234.4).text() == "1,234"
    assert Equivalent(31.62).text() == "32"
    assert real_image_equivalent(SIZES, LINEAR, 0.95).text() == f"{round(10**3.5):,}"  # "3,162"


def test_equivalent_ignores_input_order():
    order = [2, 0, 3, 1]
    eq = real_image_equivalent([SIZES[i] for i in order], [LINEAR[i] for i in order], 0.75)
    assert eq.n == pytest.approx(10**1.5, rel=1e-9)


def test_equivalent_rejects_a_non_finite_target():
    with pytest.raises(ValueError, match="target must be finite"):
        real_image_equivalent(SIZES, LINEAR, float("nan"))


# --------------------------------------------------------------------------- equivalent_interval


def test_interval_with_no_uncertainty_is_the_point_equivalent():
    point = real_image_equivalent(SIZES, LINEAR, 0.75).n
    for ses, target_se in (([0, 0, 0, 0], 0), ([None] * 4, None), (None, 0.0)):
        ci = equivalent_interval(SIZES, LINEAR, ses, 0.75, target_se, draws=50)
        assert ci["lo"] == pytest.approx(point, rel=1e-9) and ci["hi"] == pytest.approx(point, rel=1e-9)
        assert ci["lo_text"] == ci["hi_text"] == "32"
        assert ci["censored_below"] == ci["censored_above"] == 0


def test_interval_covers_the_point_and_widens_with_the_ses():
    point = real_image_equivalent(SIZES, LINEAR, 0.85).n
    widths = []
    for se in (0.002, 0.01, 0.03):
        ci = equivalent_interval(SIZES, LINEAR, [se] * 4, 0.85, se, seed=3)
        assert ci["lo"] < point < ci["hi"]
        widths.append(math.log(ci["hi"] / ci["lo"]))
    assert widths[0] < widths[1] < widths[2]


def test_interval_target_se_alone_gives_the_mapped_normal_quantiles():
    # Only the target varies, and on a linear-in-log10 curve log10(n) = (target - 0.6) / 0.1,
    # so the interval ends are the normal quantiles mapped through that line.
    ci = equivalent_interval(SIZES, LINEAR, None, 0.8, 0.01, draws=20000, seed=1)
    z = 1.959964
    assert math.log10(ci["lo"]) == pytest.approx(2 - z * 0.1, abs=0.03)
    assert math.log10(ci["hi"]) == pytest.approx(2 + z * 0.1, abs=0.03)


def test_interval_is_deterministic_for_a_seed():
    args = (SIZES, LINEAR, [0.01] * 4, 0.82, 0.01)
    assert equivalent_interval(*args, seed=7) == equivalent_interval(*args, seed=7)
    assert equivalent_interval(*args, seed=7)["lo"] != equivalent_interval(*args, seed=8)["lo"]


def test_interval_censoring_when_the_target_sits_at_the_top():
    # Target mean equal to the last point, no curve noise: about half the draws exceed the curve.
    ci = equivalent_interval(SIZES, LINEAR, None, 1.0, 0.01, draws=4000, seed=0)
    assert ci["censored_above"] == pytest.approx(0.5, abs=0.03)
    assert ci["censored_below"] == 0
    assert ci["hi_censored"] and ci["hi"] == 10000 and ci["hi_text"] == "> 10,000"
    assert not ci["lo_censored"] and 1000 < ci["lo"] < 10000


def test_interval_censoring_below_the_curve():
    ci = equivalent_interval(SIZES, LINEAR, [0.005] * 4, 0.6, 0.005, draws=1000)
    assert ci["censored_below"] > 0.95
    assert ci["lo_censored"] and ci["hi_censored"] and ci["lo_text"] == ci["hi_text"] == "< 10"


def test_interval_reports_its_settings():
    ci = equivalent_interval(SIZES, LINEAR, [0.01] * 4, 0.8, 0.01, draws=100, seed=5)
    assert ci["draws"] == 100 and ci["seed"] == 5 and "bootstrap" in ci["method"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(real_ses=[0.01, -0.01, 0.01, 0.01]), "non-negative"),
        (dict(real_ses=[0.01] * 3), "4 finite"),
        (dict(target_se=float("inf")), "target_se"),
        (dict(target_mean=float("nan")), "target_mean must be finite"),
        (dict(confidence=1.0), "confidence"),
        (dict(draws=2.5), "draws"),
        (dict(draws=0), "draws"),
    ],
)
def test_interval_rejects_bad_input(kwargs, match):
    args = dict(sizes=SIZES, real_means=LINEAR, real_ses=[0.01] * 4, target_mean=0.8, target_se=0.01)
    with pytest.raises(ValueError, match=match) as err:
        equivalent_interval(**{**args, **kwargs})
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- saturation_size


def test_saturation_is_the_start_of_the_covering_tail():
    cis = [(0.05, 0.1), (0.01, 0.04), (-0.01, 0.02), (-0.02, 0.01)]
    assert saturation_size([47, 94, 235, 470], cis) == 235


def test_not_saturated_when_the_largest_size_excludes_zero():
    cis = [(-0.01, 0.02), (-0.02, 0.01), (0.01, 0.03)]
    assert saturation_size([47, 94, 235], cis) is None


def test_saturation_starts_after_the_last_non_covering_size():
    cis = [(-0.02, 0.03), (0.01, 0.04), (-0.01, 0.02), (-0.02, 0.01)]
    assert saturation_size([47, 94, 235, 470], cis) == 235


def test_saturation_everywhere_is_the_smallest_size_and_order_does_not_matter():
    assert saturation_size([470, 47, 235], [(-0.1, 0.1), (-0.2, 0.2), (-0.1, 0.0)]) == 47
    assert saturation_size([470, 47, 235], [(-0.1, 0.1), (0.1, 0.2), (-0.1, 0.0)]) == 235


def test_saturation_interval_touching_zero_covers_it():
    assert saturation_size([47, 94], [(0.01, 0.02), (0.0, 0.02)]) == 94


@pytest.mark.parametrize(
    "sizes, cis, match",
    [
        ([47, 94, 235], [(0.0, 0.1), None, (-0.1, 0.1)], "no gain interval at size 94"),
        ([47, 94], [(0.0, 0.1)], "one interval per size"),
        ([47, 94], [(0.1, 0.0), (-0.1, 0.1)], "lo <= hi"),
        ([47, 47], [(0.0, 0.1), (-0.1, 0.1)], "duplicate size 47"),
    ],
)
def test_saturation_rejects_bad_input(sizes, cis, match):
    with pytest.raises(ValueError, match=match) as err:
        saturation_size(sizes, cis)
    assert "\n" not in str(err.value)
