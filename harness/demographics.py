"""Demographic mixes on request: which sexes and ages a generator is asked to draw.

By default a generator that declares demographic conditioning is asked for exactly the real
training set's conditions, image by image, so the synthetic set repeats the training set's
demographic mix. A generator entry of a spec may ask for another mix:

    generators:
      - {name: ddpm, conditions: {demographics: balanced, fields: [sex, age_band]}}
      - {name: ddpm, label: ddpm-women, conditions: {demographics: given, mix: {sex: {F: 0.8, M: 0.2}}}}

- ``training`` (default): the training set's own mix.
- ``balanced``: every combination of the named fields' values seen in the training set (with a
  training image to take it from) equally often, within each label pattern, so the label
  prevalence is unchanged.
- ``given``: per field, the stated shares (they sum to 1), met by quota (largest remainder).

Each condition keeps its label vector and seed; its demographics are taken whole from a donor
training image with the target combination (drawn with a seed of its own), so an ``age_band``
target gets a real age of that band and fields stay jointly plausible. What was asked for and what
was delivered (counts per field value, over every synthetic image of the cell) is recorded. A
generator without demographic conditioning, a field the training set does not carry, or a given
value no training image has is refused in one line.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from cxrbench.errors import ConfigError, CxrbenchError
from cxrbench.generation import DEMOGRAPHIC_FIELDS, demographics_of
from cxrbench.hashing import derive_seed

#: the fields a mix may name: the demographic fields a condition carries, plus age bands of age
MIX_FIELDS = ("sex", "age_band", "race")
#: where each mix field's value lives in a condition
RAW_FIELD = {"sex": "sex", "age_band": "age", "race": "race"}


def field_value(field: str, demographics: dict, age_edges: Sequence[int]) -> str | None:
    """The value of mix field ``field`` of one condition's (or training image's) demographics."""
    from cxrbench.evaluation.subgroups import age_band

    raw = demographics.get(RAW_FIELD[field])
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw == "":
        return None
    return age_band(raw, tuple(age_edges)) if field == "age_band" else str(raw)


def check_mix(mix, generator_name: str, capabilities, where: str, source: str) -> None:
    """Spec-time checks: a known kind, known fields, shares that sum to 1, and a generator that
    declares demographic conditioning (``capabilities.demographics``)."""
    if mix.demographics == "training":
        if mix.fields or mix.mix:
            raise ConfigError(f"{source}: {where}.conditions: fields / mix apply to demographics: balanced / given")
        return
    if not getattr(capabilities, "demographics", False):
        raise ConfigError(f"{source}: {where}.conditions: generator {generator_name!r} does not declare demographic "
                          f"conditioning, so it cannot be asked for a {mix.demographics} mix; drop conditions:")
    fields = mix.fields if mix.demographics == "balanced" else list(mix.mix)
    if not fields:
        raise ConfigError(f"{source}: {where}.conditions: demographics: {mix.demographics} needs "
                          + ("fields: [sex, age_band]" if mix.demographics == "balanced" else "mix: {sex: {F: 0.5, M: 0.5}}"))
    unknown = [f for f in fields if f not in MIX_FIELDS]
    if unknown:
        raise ConfigError(f"{source}: {where}.conditions: unknown field(s) {unknown}; allowed: {', '.join(MIX_FIELDS)}")
    if mix.demographics == "balanced" and mix.mix:
        raise ConfigError(f"{source}: {where}.conditions: a balanced mix takes fields:, not mix:")
    if mix.demographics == "given":
        if mix.fields:
            raise ConfigError(f"{source}: {where}.conditions: a given mix names its fields in mix:, not fields:")
        for f, shares in mix.mix.items():
            total = sum(shares.values())
            if not shares or any(v < 0 for v in shares.values()) or abs(total - 1.0) > 1e-6:
                raise ConfigError(f"{source}: {where}.conditions.mix.{f}: shares must be >= 0 and sum to 1, "
                                  f"got {dict(shares)} (sum {total:g})")


def apply_mix(conditions: list, order: Sequence[int], source_train, mix, *, seed: int, purpose: Any) -> list:
    """``conditions`` (of training examples ``order``) with their demographics replaced to meet
    ``mix``; unchanged for the training mix. Deterministic in (seed, purpose)."""
    import numpy as np

    if mix is None or mix.demographics == "training" or not conditions:
        return conditions
    fields = list(mix.fields) if mix.demographics == "balanced" else list(mix.mix)
    donors = _donors(source_train, fields, mix.age_bands)
    rng = np.random.default_rng(derive_seed(seed, "demographic-mix", purpose))
    if mix.demographics == "balanced":
        combos = sorted(donors)
        targets: list[tuple] = [()] * len(conditions)
        by_label: dict[tuple, list[int]] = {}
        for k, c in enumerate(conditions):
            by_label.setdefault(tuple(c.labels), []).append(k)
        for _, ks in sorted(by_label.items()):
            cycle = [combos[i] for i in rng.permutation(len(combos))]
            for j, k in enumerate(ks):
                targets[k] = cycle[j % len(cycle)]
    else:
        columns = []
        for f in fields:
            quota = _quota(mix.mix[f], len(conditions))
            columns.append([quota[i] for i in rng.permutation(len(quota))])
        targets = list(zip(*columns))
        missing = sorted({t for t in targets if t not in donors})
        if missing:
            raise CxrbenchError(f"demographic mix: no training image has {dict(zip(fields, missing[0]))}; the given "
                                f"mix cannot be drawn from this training set (values seen: {_seen(donors, fields)})")
    out = []
    for c, target in zip(conditions, targets):
        pool = donors[target]
        donor = pool[int(rng.integers(len(pool)))]
        out.append(dataclasses.replace(c, demographics=demographics_of(source_train, donor)))
    return out


def _donors(source_train, fields: list[str], age_edges) -> dict[tuple, list[int]]:
    """{combination of the fields' values: training images with it} over images with all known."""
    absent = [f for f in fields if RAW_FIELD[f] not in source_train.metadata or RAW_FIELD[f] not in DEMOGRAPHIC_FIELDS]
    if absent:
        raise CxrbenchError(f"demographic mix: the training set carries no {', '.join(RAW_FIELD[f] for f in absent)} "
                            "metadata, so a mix over it cannot be asked for; drop conditions: for this dataset")
    donors: dict[tuple, list[int]] = {}
    for i in range(len(source_train)):
        demo = demographics_of(source_train, i)
        combo = tuple(field_value(f, demo, age_edges) for f in fields)
        if None not in combo:
            donors.setdefault(combo, []).append(i)
    if not donors:
        raise CxrbenchError(f"demographic mix: no training image has every one of {fields} known")
    return donors


def _quota(shares: dict[str, float], n: int) -> list[str]:
    """n values with the given shares, by largest remainder (ties by name)."""
    exact = {v: shares[v] * n for v in sorted(shares)}
    counts = {v: int(math.floor(x)) for v, x in exact.items()}
    left = n - sum(counts.values())
    for v in sorted(exact, key=lambda v: (-(exact[v] - counts[v]), v))[:left]:
        counts[v] += 1
    return [v for v in sorted(counts) for _ in range(counts[v])]


def _seen(donors: dict, fields: list[str]) -> str:
    return "; ".join(f"{f}: {', '.join(sorted({c[j] for c in donors}))}" for j, f in enumerate(fields))


def mix_record(mix, conditions: list, source_train) -> dict:
    """What was asked for and what was delivered: per field, counts over ``conditions`` and over
    the training set, for the recorded cell."""
    fields = (list(mix.fields) if mix.demographics == "balanced" else list(mix.mix)) if mix.demographics != "training" \
        else [f for f in MIX_FIELDS if RAW_FIELD[f] in source_train.metadata]

    def counts(demos) -> dict:
        return {f: dict(sorted(Counter(str(field_value(f, d, mix.age_bands)) for d in demos).items()))
                for f in fields}

    training = [demographics_of(source_train, i) for i in range(len(source_train))]
    return {"requested": {"demographics": mix.demographics, "fields": list(mix.fields), "mix": mix.mix,
                          "age_bands": list(mix.age_bands)},
            "delivered": counts([c.demographics for c in conditions]), "training": counts(training),
            "n": len(conditions)}
