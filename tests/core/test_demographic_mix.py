"""Demographic mixes on request (issue #30): a generator with demographic conditioning can be asked
for the training set's mix, a balanced one or given shares; the delivered mix is counted."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from cxrbench.config import ConditionMix, spec_from_data
from cxrbench.spec_validation import validate_plugins
from cxrbench.contracts import GeneratorCapabilities, Split
from cxrbench.demographics import apply_mix, field_value
from cxrbench.errors import ConfigError, CxrbenchError
from cxrbench.generation import condition_for


def _split(n: int = 40) -> Split:
    """n training images: 3/4 men, ages 20..80, labels alternating in a 1:3 ratio."""
    labels = torch.tensor([[1.0] if i % 4 == 0 else [0.0] for i in range(n)])
    return Split(name="train", images=torch.zeros((n, 1, 4, 4), dtype=torch.uint8), labels=labels,
                 label_names=("pneumonia",), patient_ids=[f"p{i}" for i in range(n)], keys=[f"k{i}" for i in range(n)],
                 metadata={"sex": ["F" if i % 4 == 1 else "M" for i in range(n)],
                           "age": [20 + (i * 7) % 60 for i in range(n)]})


def _conditions(split: Split):
    caps = GeneratorCapabilities(labels=True, demographics=True)
    order = list(range(len(split)))
    return order, [condition_for(split, i, 0, 0, caps) for i in order]


def test_the_training_mix_is_the_default_and_leaves_conditions_alone():
    split = _split()
    order, conds = _conditions(split)
    assert apply_mix(conds, order, split, None, seed=0, purpose=0) is conds
    assert apply_mix(conds, order, split, ConditionMix(), seed=0, purpose=0) is conds


def test_a_balanced_mix_draws_each_value_equally_within_each_label_pattern():
    split = _split(80)
    order, conds = _conditions(split)
    mixed = apply_mix(conds, order, split, ConditionMix(demographics="balanced", fields=["sex"]), seed=3, purpose=0)
    assert [c.labels for c in mixed] == [c.labels for c in conds] and [c.seed for c in mixed] == [c.seed for c in conds]
    for label in ((0.0,), (1.0,)):
        sexes = Counter(c.demographics["sex"] for c in mixed if c.labels == label)
        assert abs(sexes["F"] - sexes["M"]) <= 1, sexes
    # the training set is 3:1 men; the balanced set is not
    assert Counter(c.demographics["sex"] for c in conds)["M"] == 60
    # deterministic in (seed, purpose); another purpose draws other donors
    again = apply_mix(conds, order, split, ConditionMix(demographics="balanced", fields=["sex"]), seed=3, purpose=0)
    assert [c.demographics for c in again] == [c.demographics for c in mixed]


def test_a_balanced_mix_over_sex_and_age_band_takes_whole_donor_demographics():
    split = _split(200)
    order, conds = _conditions(split)
    mix = ConditionMix(demographics="balanced", fields=["sex", "age_band"])
    mixed = apply_mix(conds, order, split, mix, seed=0, purpose="tune")
    combos = Counter((c.demographics["sex"], field_value("age_band", c.demographics, mix.age_bands)) for c in mixed)
    seen = {(s, field_value("age_band", {"age": a}, mix.age_bands))
            for s, a in zip(split.metadata["sex"], split.metadata["age"])}
    assert set(combos) == seen
    assert max(combos.values()) - min(combos.values()) <= 2  # one per label pattern at most
    donors = set(zip(split.metadata["sex"], split.metadata["age"]))
    assert all((c.demographics["sex"], c.demographics["age"]) in donors for c in mixed)  # real, jointly plausible


def test_a_given_mix_is_met_by_quota_and_an_impossible_one_is_refused():
    split = _split(50)
    order, conds = _conditions(split)
    mixed = apply_mix(conds, order, split, ConditionMix(demographics="given", mix={"sex": {"F": 0.7, "M": 0.3}}),
                      seed=1, purpose=0)
    assert Counter(c.demographics["sex"] for c in mixed) == {"F": 35, "M": 15}
    with pytest.raises(CxrbenchError, match=r"no training image has \{'sex': 'X'\}.*values seen: sex: F, M"):
        apply_mix(conds, order, split, ConditionMix(demographics="given", mix={"sex": {"M": 0.5, "X": 0.5}}),
                  seed=1, purpose=0)
    with pytest.raises(CxrbenchError, match=r"the training set carries no race metadata"):
        apply_mix(conds, order, split, ConditionMix(demographics="balanced", fields=["race"]), seed=1, purpose=0)


BASE = {"name": "mix", "size": 16, "classifier": {"name": "tiny-cnn"},
        "dataset": {"name": "phantom", "options": {"n_train": 60, "n_val": 20, "n_test": 30}},
        "protocols": [{"name": "synthetic-only.v2", "ratios": [1], "schedule": "quick"}],
        "quality": {"enabled": False}, "evaluation": {"bootstrap_resamples": 20}}


@pytest.mark.parametrize("generator, message", [
    ({"name": "noise", "conditions": {"demographics": "balanced", "fields": ["sex"]}},
     r"generator 'noise' does not declare demographic conditioning"),
    ({"name": "real", "conditions": {"demographics": "balanced"}}, r"needs fields: \[sex, age_band\]"),
    ({"name": "real", "conditions": {"demographics": "balanced", "fields": ["height"]}}, r"unknown field\(s\) \['height'\]"),
    ({"name": "real", "conditions": {"demographics": "given", "mix": {"sex": {"F": 0.7, "M": 0.2}}}},
     r"conditions.mix.sex: shares must be >= 0 and sum to 1"),
    ({"name": "real", "conditions": {"fields": ["sex"]}}, r"fields / mix apply to demographics: balanced / given"),
])
def test_mix_requests_are_checked_at_validate(generator, message):
    with pytest.raises(ConfigError, match=message):
        validate_plugins(spec_from_data({**BASE, "generators": [generator]}, "mix.yaml"), "mix.yaml")


def test_a_run_records_the_mix_asked_for_and_delivered(tmp_path):
    from cxrbench.runner import Runner

    spec = spec_from_data({**BASE, "generators": [
        {"name": "real"}, {"name": "real", "conditions": {"demographics": "given", "mix": {"sex": {"F": 1.0}}}}]},
        "mix.yaml")
    validate_plugins(spec, "mix.yaml")
    summary = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False).run()
    assert not summary.failed, summary
    recs = {r["generator"]["label"]: r for r in
            (json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")) if r["generator"]}
    assert set(recs) == {"real", next(k for k in recs if k.startswith("real-mix-"))}
    plain = recs.pop("real")
    assert "demographic_mix" not in plain["generator"]["synthetic"]
    (mixed,) = recs.values()
    record = mixed["generator"]["synthetic"]["demographic_mix"]
    n = mixed["generator"]["synthetic"]["n"]
    assert record["requested"]["demographics"] == "given" and record["delivered"]["sex"] == {"F": n}
    assert set(record["training"]["sex"]) >= {"F", "M"}
