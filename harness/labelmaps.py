"""Label maps: testing a classifier on a dataset whose labels are named (and cut) differently.

A classifier trained on Kermany predicts ``pneumonia``; NIH ChestX-ray14 has ``Pneumonia`` among
13 other findings, and on its own it is far too rare (3 of 427 images in the shared sample) while
radiologists' reports of the same disease also say ``Consolidation`` or ``Infiltration``. An
external dataset in a spec says how each training label reads from its own labels:

    external: [{name: nih-cxr14, labels: {pneumonia: Pneumonia}}]                       # one label
    external: [{name: nih-cxr14, labels: {pneumonia: [Pneumonia, Consolidation]}}]      # any of them
    external: [{name: nih-cxr14, labels: {pneumonia: {all_of: [Effusion, Edema]}}}]     # a named rule

Rules (:data:`RULES`), per image, over the listed external labels (1 positive, 0 negative, NaN
uncertain / missing):

- ``any_of`` (what a list means): positive if ANY is positive; negative only if ALL are negative;
  otherwise (no positive, some unknown) masked - an unknown finding could be the positive one.
- ``all_of``: positive if ALL are positive; negative if ANY is negative; otherwise masked.

A label of the same name maps to itself; a label that maps to nothing is an error, never a silent
NaN column. What a map gives on the test images is counted (:func:`map_counts`): each external
label's positives and prevalence and the mapped label's positives / negatives / masked, recorded
with every cell; a map that leaves fewer than the spec's ``min_positives`` / ``min_negatives`` is an
error at ``cxrbench validate --data-root`` and at run time, naming the counts.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cxrbench.errors import ConfigError

#: the named rules; a plain list means ``any_of``
RULES = ("any_of", "all_of")


@dataclass(frozen=True)
class MappedLabel:
    """How one training label reads from an external dataset's label columns."""

    label: str
    rule: str  # "same" (one column) | "any_of" | "all_of"
    names: tuple[str, ...]
    columns: tuple[int, ...]

    def describe(self) -> str | list | dict:
        """As a spec writes it: a name, a list (any of), or {rule: [names]}."""
        if self.rule == "same":
            return self.names[0]
        return list(self.names) if self.rule == "any_of" else {self.rule: list(self.names)}


@dataclass(frozen=True)
class LabelMap:
    """The training dataset's labels, each read from one or several external label columns."""

    labels: tuple[MappedLabel, ...]

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(m.label for m in self.labels)

    def is_identity(self, n_target: int) -> bool:
        return all(m.rule == "same" and m.columns == (j,) for j, m in enumerate(self.labels)) and \
            len(self.labels) == n_target

    def apply(self, labels):
        """(N, L_external) label rows (tensor, array or list of tuples) -> (N, L_source) in the
        same container kind (NaN = masked); see the module docstring for the rules."""
        import numpy as np

        is_tensor = hasattr(labels, "numpy") and hasattr(labels, "dtype") and not isinstance(labels, np.ndarray)
        y = labels.numpy() if is_tensor else np.asarray(labels, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"labels must be (N, L), got shape {y.shape}")
        out = np.full((len(y), len(self.labels)), np.nan, dtype=np.float64)
        for j, m in enumerate(self.labels):
            cols = y[:, list(m.columns)]
            pos, neg = cols == 1, cols == 0
            if m.rule == "all_of":
                out[pos.all(axis=1), j] = 1.0
                out[neg.any(axis=1), j] = 0.0
            else:  # same / any_of
                out[neg.all(axis=1), j] = 0.0
                out[pos.any(axis=1), j] = 1.0
        if is_tensor:
            import torch

            return torch.as_tensor(out, dtype=labels.dtype)
        return out

    def describe(self) -> dict:
        return {m.label: m.describe() for m in self.labels}


def resolve_label_map(source: Sequence[str], target: Sequence[str], mapping: Mapping | None,
                      where: str, target_name: str) -> LabelMap:
    """For each label of ``source`` (the classifier's outputs), the column(s) of ``target`` and the
    rule that give its ground truth. Raises a one-line ConfigError naming the problem and the fix."""
    source, target, mapping = list(source), list(target), dict(mapping or {})
    for key in mapping:
        if key not in source:
            raise ConfigError(f"{where}.labels: {key!r} is not a label of the training dataset{_hint(key, source)}; "
                              f"its labels: {', '.join(source)}")
    out = []
    for label in source:
        if label in mapping:
            rule, names = _parse_entry(mapping[label], f"{where}.labels.{label}")
        elif label in target:
            rule, names = "same", (label,)
        else:
            close = difflib.get_close_matches(label, target, n=1, cutoff=0.0) if target else []
            lower = [t for t in target if t.lower() == label.lower()]
            guess = (lower or close or ["<one of its labels>"])[0]
            raise ConfigError(
                f"{where}: label {label!r} of the training dataset maps to nothing in {target_name} "
                f"(its labels: {', '.join(target)}); add labels: {{{label}: {guess}}}"
            )
        for name in names:
            if name not in target:
                raise ConfigError(f"{where}.labels.{label}: {name!r} is not a label of {target_name}"
                                  f"{_hint(name, target)}; its labels: {', '.join(target)}")
        out.append(MappedLabel(label, rule, tuple(names), tuple(target.index(n) for n in names)))
    return LabelMap(tuple(out))


def _parse_entry(value, where: str) -> tuple[str, tuple[str, ...]]:
    """A map entry -> (rule, external label names)."""
    if isinstance(value, str):
        return "same", (value,)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return ("same", (value[0],)) if len(value) == 1 else ("any_of", tuple(value))
    if isinstance(value, Mapping) and len(value) == 1:
        (rule, names), = value.items()
        if rule in RULES and isinstance(names, (list, tuple)) and names and all(isinstance(v, str) for v in names):
            return rule, tuple(names)
    raise ConfigError(f"{where}: expected a label name, a list of names (any of them), or one rule "
                      f"{{any_of: [..]}} / {{all_of: [..]}}; got {value!r}")


def remap_split(split, label_map: LabelMap):
    """``split`` with its label matrix read through ``label_map`` (source labels and names)."""
    import dataclasses

    return dataclasses.replace(split, labels=label_map.apply(split.labels), label_names=label_map.label_names)


def map_counts(labels, target_names: Sequence[str], label_map: LabelMap) -> dict:
    """What ``label_map`` gives on these (N, L_external) labels: per mapped label its rule, the
    external labels' positives and prevalence (over images where that label is known), and the
    mapped label's positives, negatives and masked images. JSON-ready; recorded with each cell."""
    import numpy as np

    y = labels.numpy() if hasattr(labels, "numpy") and not isinstance(labels, np.ndarray) else np.asarray(labels, dtype=np.float64)
    y = y.reshape(0, len(target_names)) if y.size == 0 else y
    mapped = label_map.apply(y)
    out = {}
    for j, m in enumerate(label_map.labels):
        per = {}
        for name, col in zip(m.names, m.columns):
            known = ~np.isnan(y[:, col])
            n_pos = int((y[known, col] == 1).sum())
            per[name] = {"n_pos": n_pos, "n_known": int(known.sum()),
                         "prevalence": round(n_pos / int(known.sum()), 5) if known.any() else None}
        col = mapped[:, j]
        n_pos, n_neg = int((col == 1).sum()), int((col == 0).sum())
        out[m.label] = {"map": m.describe(), "rule": m.rule, "external_labels": per, "n_images": int(len(y)),
                        "n_pos": n_pos, "n_neg": n_neg, "n_masked": int(np.isnan(col).sum()),
                        "prevalence": round(n_pos / (n_pos + n_neg), 5) if n_pos + n_neg else None}
    return out


def check_counts(counts: Mapping, *, min_positives: int, min_negatives: int, where: str, what: str) -> None:
    """One-line ConfigError when a mapped label has fewer positives or negatives than asked."""
    for label, c in counts.items():
        short = []
        if c["n_pos"] < min_positives:
            short.append(f"{c['n_pos']} positive(s) < min_positives {min_positives}")
        if c["n_neg"] < min_negatives:
            short.append(f"{c['n_neg']} negative(s) < min_negatives {min_negatives}")
        if short:
            raise ConfigError(
                f"{where}: label {label!r} read as {c['map']!r} leaves {' and '.join(short)} on {what} "
                f"({c['n_images']} images, {c['n_masked']} masked); map more labels (a list means any of them) "
                "or lower min_positives / min_negatives for this external set"
            )


def _hint(value: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
