"""The real-data axis: nested, patient-level, label-stratified subsets of the real training data.

``real_data: [0.01, 0.05, 0.25, 1.0]`` (fractions of the training split's images) or
``[50, 200, 1000]`` (image counts) on a spec gives every cell one of these sizes. At one size,
every protocol and every generator sees exactly the same real images:

* **patient level**: a patient's images are all in a subset or all out of it (a subset never
  splits a patient, so it never holds a near copy of an image it left out);
* **stratified by label**: patients are grouped by their label pattern (per label: positive if
  any image is, negative, or unknown), and each group contributes its share of the images;
* **nested**: each group's patients are put in one seeded order and a subset takes a prefix of
  it, so the 1% subset is inside the 5% subset, which is inside the 10% one, and so on;
* **seeded** by ``subsets.seed`` (recorded with the subset's fingerprint and label counts).

The tuning (validation) split shrinks in the same proportion - someone with 50 training images
does not have 300 validation images - but keeps at least ``subsets.tuning_min_per_class`` images
of each value of each label, so model selection and thresholds stay defined. It is drawn the same
way, from its own seeded order, and is nested too.

A subset that lacks a label value (no negative, or no positive image) is a one-line error naming
the size and the counts: no classifier can learn from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cxrbench.errors import ConfigError
from cxrbench.hashing import content_key, derive_seed


def size_token(size: float | int) -> str:
    """How a size reads in cell ids and tables: ``0.05`` (a fraction), ``200`` (images), ``all``."""
    if isinstance(size, float):
        return "all" if size == 1.0 else f"{size:g}"
    return str(size)


def size_text(size: float | int | None) -> str:
    """How a size reads for people: ``5%``, ``200 images``, ``all``; ``-`` without the axis."""
    if size is None:
        return "-"
    if isinstance(size, float):
        return "all" if size == 1.0 else f"{size * 100:g}%"
    return f"{size} images"


def check_sizes(sizes: Sequence[Any], where: str) -> None:
    """A fraction is a float in (0, 1]; a count is an integer >= 2 (``1`` is ambiguous: write 1.0)."""
    seen = set()
    for v in sizes:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: {v!r} is not a size; give fractions in (0, 1] or image counts >= 2")
        if isinstance(v, float) and not 0.0 < v <= 1.0:
            raise ConfigError(f"{where}: {v!r}: a fraction must be in (0, 1] (an image count is an integer >= 2)")
        if isinstance(v, int) and v < 2:
            raise ConfigError(f"{where}: {v!r}: an image count must be >= 2 (write 1.0 for every training image)")
        if size_token(v) in seen:
            raise ConfigError(f"{where}: {v!r} is listed twice")
        seen.add(size_token(v))


def _patients(split) -> tuple[list[str], dict[str, list[int]], dict[str, tuple]]:
    """Patients in first-seen order, their image indices, and their label pattern (the stratum)."""
    import numpy as np

    labels = split.labels.numpy()
    order, rows = [], {}
    for i, p in enumerate(split.patient_ids):
        if p not in rows:
            order.append(p)
            rows[p] = []
        rows[p].append(i)
    pattern = {}
    for p, idx in rows.items():
        block = labels[idx]
        known = ~np.isnan(block)
        pattern[p] = tuple(
            -1 if not known[:, j].any() else int(np.nanmax(block[:, j])) for j in range(block.shape[1]))
    return order, rows, pattern


def _strata(split, seed: int, stream: str) -> list[tuple[tuple, list[str]]]:
    """Each label pattern's patients in one seeded order (sorted by pattern: deterministic)."""
    import numpy as np

    order, _, pattern = _patients(split)
    groups: dict[tuple, list[str]] = {}
    for p in sorted(order):  # sorted first: the order never depends on how the dataset listed files
        groups.setdefault(pattern[p], []).append(p)
    out = []
    for key in sorted(groups):
        members = groups[key]
        perm = np.random.default_rng(derive_seed(seed, stream, list(key))).permutation(len(members))
        out.append((key, [members[i] for i in perm]))
    return out


def _prefix_lengths(strata, rows, fraction: float) -> list[int]:
    """How many patients of each stratum a subset of ``fraction`` of the images takes: the
    shortest prefix reaching the stratum's share (rounded), so the lengths grow with the
    fraction and the subsets nest."""
    lengths = []
    for _, members in strata:
        total = sum(len(rows[p]) for p in members)
        target = round(fraction * total)
        n, k = 0, 0
        while n < target and k < len(members):
            n += len(rows[members[k]])
            k += 1
        lengths.append(k)
    return lengths


def _ensure_minimum(strata, rows, lengths: list[int], labels, minimum: int) -> list[int]:
    """Lengthen prefixes (in stratum order, deterministically) until each value of each label has
    ``minimum`` images, or the split runs out. Lengths only grow: the subsets still nest."""
    import numpy as np

    lengths = list(lengths)
    for j in range(labels.shape[1]):
        for value in (0, 1):
            def count() -> int:
                idx = [i for (_, m), k in zip(strata, lengths) for p in m[:k] for i in rows[p]]
                col = labels[idx, j] if idx else np.zeros(0)
                return int((col == value).sum())

            for s, (key, members) in enumerate(strata):
                if key[j] != value:
                    continue
                while count() < minimum and lengths[s] < len(members):
                    lengths[s] += 1
    return lengths


@dataclasses.dataclass(frozen=True)
class Subset:
    """The indices a size keeps of the train and val splits, and what is recorded about it."""

    train: list[int]
    val: list[int]
    record: dict


def draw_subset(train, val, size: float | int, *, seed: int, tuning_min_per_class: int) -> Subset:
    """The subset of ``size`` (a fraction of the training images, or a count of them) of the
    ``train`` and ``val`` splits; see the module docstring for the rules.

    :raises ConfigError: the size leaves a label without negatives or positives (counts named)
    """
    n_train = len(train)
    fraction = float(size) if isinstance(size, float) else min(1.0, int(size) / max(n_train, 1))
    _, train_rows, _ = _patients(train)
    strata = _strata(train, seed, "real-data-train")
    lengths = _prefix_lengths(strata, train_rows, fraction)
    keep = sorted(i for (_, m), k in zip(strata, lengths) for p in m[:k] for i in train_rows[p])
    counts = label_counts(train.labels.numpy()[keep], train.label_names)
    for name, c in counts.items():
        if c["positive"] == 0 or c["negative"] == 0:
            raise ConfigError(
                f"real_data {size_text(size)} ({size!r}): the subset holds {len(keep)} training images, "
                f"{c['positive']} positive and {c['negative']} negative for {name!r}: a classifier cannot learn "
                "a label without both values; use a larger size")
    _, val_rows, _ = _patients(val)
    vstrata = _strata(val, seed, "real-data-val")
    vlengths = _prefix_lengths(vstrata, val_rows, fraction)
    vlengths = _ensure_minimum(vstrata, val_rows, vlengths, val.labels.numpy(), tuning_min_per_class)
    vkeep = sorted(i for (_, m), k in zip(vstrata, vlengths) for p in m[:k] for i in val_rows[p])
    record = {
        "size": size, "size_text": size_text(size), "fraction_requested": fraction, "seed": seed,
        "n_train": len(keep), "n_train_full": n_train, "fraction_of_train": round(len(keep) / max(n_train, 1), 6),
        "n_patients": len({train.patient_ids[i] for i in keep}),
        "n_val": len(vkeep), "n_val_full": len(val), "tuning_min_per_class": tuning_min_per_class,
        "train_label_counts": counts, "val_label_counts": label_counts(val.labels.numpy()[vkeep], val.label_names),
        # what a fit and a cell of this size learned from: the exact images, in order
        "fingerprint": content_key({"train": [train.keys[i] for i in keep], "val": [val.keys[i] for i in vkeep]}),
        "method": "patient-level, stratified by label pattern, nested prefixes of seeded per-stratum orders",
    }
    return Subset(keep, vkeep, record)


def label_counts(labels, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Positive, negative and unknown images per label."""
    import numpy as np

    out = {}
    for j, name in enumerate(names):
        col = labels[:, j] if len(labels) else np.zeros(0)
        out[name] = {"positive": int((col == 1).sum()), "negative": int((col == 0).sum()),
                     "unknown": int(np.isnan(col).sum())}
    return out


def subset_dataset(loaded, size: float | int, *, seed: int, tuning_min_per_class: int):
    """``loaded`` (a LoadedDataset) with its train and val splits cut to ``size``; test sets are
    untouched. ``info["real_data"]`` records the subset."""
    sub = draw_subset(loaded.train, loaded.val, size, seed=seed, tuning_min_per_class=tuning_min_per_class)
    info = {**loaded.info, "real_data": sub.record}
    return dataclasses.replace(loaded, train=loaded.train.subset(sub.train), val=loaded.val.subset(sub.val),
                               info=info)

