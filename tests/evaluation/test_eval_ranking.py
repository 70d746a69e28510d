"""Ranking agreement internal vs external: Kendall tau-b against scipy, ranks, paired bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import roc_auc_score

from cxrbench.evaluation import kendall_tau, percentile_ci, ranking_agreement, two_sample_weights, weighted_auroc


@pytest.mark.parametrize("seed", range(30))
def test_kendall_tau_equals_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 15))
    decimals = int(rng.choice([0, 1, 3]))  # 0 -> many ties
    a = np.round(rng.normal(size=n) * 2, decimals)
    b = np.round(a * rng.uniform(-1, 1) + rng.normal(size=n), decimals)
    expected = kendalltau(a, b).statistic
    if math.isnan(expected):
        assert math.isnan(kendall_tau(a, b))
    else:
        assert kendall_tau(a, b) == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_edge_cases():
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 1, 2, 2], [1, 2, 1, 2]) == pytest.approx(kendalltau([1, 1, 2, 2], [1, 2, 1, 2]).statistic)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))  # constant: undefined, as in scipy
    assert math.isnan(kendall_tau([1.0], [2.0]))
    with pytest.raises(ValueError):
        kendall_tau([1, 2, 3], [1, 2])


# --------------------------------------------------------------------------- constructed rankings


def make_sets(d_internal, d_external, *, n=400, n_seeds=1, seed=0):
    """Scores of models k = N(0,1) + d[k] * y (one array per seed) on an internal and an external set."""
    rng = np.random.default_rng(seed)
    y_int = (rng.random(n) < 0.4).astype(float)
    y_ext = (rng.random(n + 50) < 0.3).astype(float)

    def scores(y, d):
        return {f"m{k}": np.squeeze(rng.normal(size=(n_seeds, y.size)) + dk * y) for k, dk in enumerate(d)}

    return scores(y_int, d_internal), scores(y_ext, d_external), y_int, y_ext


def test_identical_rankings_agree():
    d = [0.2, 0.8, 1.5, 2.5]
    internal, external, y_int, y_ext = make_sets(d, d)
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=300)
    assert r["tau"] == 1.0
    assert r["agreement"] == "agree"
    assert r["rank_changes"] == []
    assert r["internal_rank"] == {"m0": 4, "m1": 3, "m2": 2, "m3": 1} == r["external_rank"]
    for name in internal:
        assert r["internal_auroc"][name] == pytest.approx(roc_auc_score(y_int, internal[name]), abs=1e-12)
        assert r["external_auroc"][name] == pytest.approx(roc_auc_score(y_ext, external[name]), abs=1e-12)
    lo, hi = r["tau_ci"]
    assert 0 < lo <= 1.0 == hi
    assert r["n_models"] == 4


def test_reversed_rankings():
    d = [0.2, 0.8, 1.5, 2.5]
    internal, external, y_int, y_ext = make_sets(d, d[::-1])
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=300)
    assert r["tau"] == -1.0
    assert r["agreement"] == "reversed"
    assert r["tau_ci"][0] == -1.0 and r["tau_ci"][1] < 0
    assert {c["name"]: c["moved"] for c in r["rank_changes"]} == {"m3": 3, "m2": 1, "m1": -1, "m0": -3}
    assert [c["name"] for c in r["rank_changes"]] == ["m3", "m2", "m1", "m0"]  # by internal rank


def test_one_swap_among_four():
    internal, external, y_int, y_ext = make_sets([0.2, 0.8, 1.5, 2.5], [0.2, 1.5, 0.8, 2.5], n=600)
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=300)
    assert r["tau"] == pytest.approx(4 / 6)
    assert r["tau"] == pytest.approx(kendalltau(list(r["internal_auroc"].values()),
                                                list(r["external_auroc"].values())).statistic)
    assert r["rank_changes"] == [
        {"name": "m2", "internal_rank": 2, "external_rank": 3, "moved": 1},
        {"name": "m1", "internal_rank": 3, "external_rank": 2, "moved": -1},
    ]
    lo, hi = r["tau_ci"]
    assert lo <= r["tau"] <= hi
    assert r["agreement"] == ("agree" if lo > 0 else "uncertain")


def test_uncertain_when_models_are_alike():
    # near-identical models: the order on each set is noise, the CI spans 0
    internal, external, y_int, y_ext = make_sets([1.0, 1.02, 1.04, 1.06, 1.08], [1.0] * 5, n=150, seed=3)
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=300)
    lo, hi = r["tau_ci"]
    assert lo < 0 < hi
    assert r["agreement"] == "uncertain"
    assert lo <= r["tau"] <= hi


def test_ci_equals_a_manual_paired_bootstrap():
    internal, external, y_int, y_ext = make_sets([0.5, 0.7, 0.9, 1.1], [0.6, 0.5, 1.0, 0.9], n=120, seed=4)
    y_int[:10] = np.nan  # masked images still count in the draw, not in the AUROCs
    patients = np.arange(y_int.size) // 2
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, internal_groups=patients,
                          n_resamples=80, seed=9, confidence=0.9)
    names = list(internal)
    keep = ~np.isnan(y_int)
    taus = []
    for w_int, w_ext in two_sample_weights(y_int.size, y_ext.size, n_resamples=80, seed=9, groups_a=patients):
        for wi, we in zip(w_int, w_ext):
            a = [weighted_auroc(y_int[keep].astype(bool), internal[n][keep], wi[None, keep])[0] for n in names]
            b = [weighted_auroc(y_ext.astype(bool), external[n], we[None])[0] for n in names]
            taus.append(kendalltau(a, b).statistic)
    assert r["tau_ci"] == pytest.approx(list(percentile_ci(taus, 0.9)), abs=1e-12)
    assert r["bootstrap_skipped"] == int(np.isnan(taus).sum())
    # masking: the AUROCs only use the known labels
    assert r["internal_auroc"]["m0"] == pytest.approx(roc_auc_score(y_int[keep], internal["m0"][keep]), abs=1e-12)


def test_seed_arrays_are_averaged():
    internal, external, y_int, y_ext = make_sets([0.2, 0.8, 1.5], [0.8, 0.2, 1.5], n_seeds=3, seed=5)
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=100)
    for name in internal:
        assert internal[name].shape == (3, y_int.size)
        expected = np.mean([roc_auc_score(y_int, row) for row in internal[name]])
        assert r["internal_auroc"][name] == pytest.approx(expected, abs=1e-12)
        expected = np.mean([roc_auc_score(y_ext, row) for row in external[name]])
        assert r["external_auroc"][name] == pytest.approx(expected, abs=1e-12)
    assert r["tau"] == pytest.approx(1 / 3)
    # a (1, N) array is the same as an (N,) vector
    first = {n: v[0] for n, v in internal.items()}
    first_2d = {n: v[:1] for n, v in internal.items()}
    assert ranking_agreement(first, external, internal_y=y_int, external_y=y_ext, n_resamples=50) == \
        ranking_agreement(first_2d, external, internal_y=y_int, external_y=y_ext, n_resamples=50)


def test_tied_models_share_the_average_rank():
    internal, external, y_int, y_ext = make_sets([0.5, 1.0, 2.0], [0.5, 1.0, 2.0], seed=6)
    internal["m1"] = internal["m0"].copy()  # exactly the same AUROC internally
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=50)
    assert r["internal_rank"] == {"m0": 2.5, "m1": 2.5, "m2": 1}
    assert r["external_rank"] == {"m0": 3, "m1": 2, "m2": 1}
    assert r["tau"] == pytest.approx(kendalltau([1, 1, 2], [1, 2, 3]).statistic)
    assert r["rank_changes"] == [
        {"name": "m0", "internal_rank": 2.5, "external_rank": 3, "moved": 0.5},
        {"name": "m1", "internal_rank": 2.5, "external_rank": 2, "moved": -0.5},
    ]


def test_fewer_than_three_models():
    internal, external, y_int, y_ext = make_sets([0.5, 1.0], [1.0, 0.5])
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=50)
    assert r["tau"] is None and r["tau_ci"] is None and r["agreement"] is None
    assert "at least 3 models" in r["note"]
    assert r["n_models"] == 2
    assert r["internal_rank"] == {"m0": 2, "m1": 1} and r["external_rank"] == {"m0": 1, "m1": 2}
    assert r["internal_auroc"]["m1"] == pytest.approx(roc_auc_score(y_int, internal["m1"]), abs=1e-12)


def test_json_deterministic_and_inputs_checked():
    internal, external, y_int, y_ext = make_sets([0.5, 0.6, 0.7], [0.5, 0.7, 0.6], n=150, seed=7)
    r = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=100, seed=1)
    json.dumps(r, allow_nan=False)
    assert r == ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=100, seed=1)
    other = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=100, seed=2)
    assert other["tau"] == r["tau"] and other["tau_ci"] != r["tau_ci"]
    assert (r["n_resamples"], r["confidence"]) == (100, 0.95)
    assert isinstance(r["method"], str)
    none = ranking_agreement(internal, external, internal_y=y_int, external_y=y_ext, n_resamples=0)
    assert none["tau"] == r["tau"] and none["tau_ci"] is None and none["agreement"] is None
    with pytest.raises(ValueError, match="same model names"):
        ranking_agreement(internal, {**external, "extra": external["m0"]}, internal_y=y_int, external_y=y_ext)
    with pytest.raises(ValueError):
        ranking_agreement({**internal, "m0": internal["m0"][:-1]}, external, internal_y=y_int, external_y=y_ext)
    one_class = ranking_agreement(internal, external, internal_y=np.zeros_like(y_int), external_y=y_ext)
    assert one_class["tau"] is None and one_class["internal_rank"] is None and one_class["rank_changes"] == []
    assert set(one_class["internal_auroc"].values()) == {None}
    assert one_class["external_auroc"] == r["external_auroc"]
    assert "internal labels hold a single class" in one_class["note"]
    json.dumps(one_class, allow_nan=False)
