"""Label maps: testing a classifier on a dataset whose labels are named differently.

A classifier trained on Kermany predicts ``pneumonia``; NIH ChestX-ray14 calls it ``Pneumonia``
among 13 other findings. An external dataset in a spec may say how the training dataset's labels
map onto its own: ``external: [{name: nih-cxr14, labels: {pneumonia: Pneumonia}}]``. A label of
the same name maps to itself; a label that maps to nothing is an error, never a silent NaN column.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from cxrbench.errors import ConfigError


def resolve_label_map(source: Sequence[str], target: Sequence[str], mapping: Mapping[str, str] | None,
                      where: str, target_name: str) -> list[int]:
    """For each label of ``source`` (the classifier's outputs), the column of ``target`` that holds
    its ground truth. Raises a one-line ConfigError naming the problem and the fix."""
    source, target, mapping = list(source), list(target), dict(mapping or {})
    for key, value in mapping.items():
        if key not in source:
            raise ConfigError(f"{where}.labels: {key!r} is not a label of the training dataset{_hint(key, source)}; "
                              f"its labels: {', '.join(source)}")
        if value not in target:
            raise ConfigError(f"{where}.labels.{key}: {value!r} is not a label of {target_name}{_hint(value, target)}; "
                              f"its labels: {', '.join(target)}")
    columns = []
    for label in source:
        name = mapping.get(label, label if label in target else None)
        if name is None:
            close = difflib.get_close_matches(label, target, n=1, cutoff=0.0) if target else []
            lower = [t for t in target if t.lower() == label.lower()]
            guess = (lower or close or ["<one of its labels>"])[0]
            raise ConfigError(
                f"{where}: label {label!r} of the training dataset maps to nothing in {target_name} "
                f"(its labels: {', '.join(target)}); add labels: {{{label}: {guess}}}"
            )
        columns.append(target.index(name))
    return columns


def remap_split(split, columns: list[int], label_names: Sequence[str]):
    """``split`` with its label matrix reduced to ``columns``, renamed to ``label_names``."""
    import dataclasses

    return dataclasses.replace(split, labels=split.labels[:, columns], label_names=tuple(label_names))


def _hint(value: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
