"""Condition vectors: labels plus optional demographics as one fixed-length float vector.

A conditional generator sees each image's :class:`~cxrbench.contracts.Condition` (a label
vector, a seed and optional demographics such as sex, age and race). :class:`ConditionEncoder`
turns those into the float vector a network consumes. It is fitted on the training split's
metadata (which demographics are known, the age range, the race values seen), saved as JSON
with the checkpoint (:meth:`ConditionEncoder.to_json` / :meth:`ConditionEncoder.from_json`)
and then encodes conditions (:meth:`ConditionEncoder.encode`) or a whole split
(:meth:`ConditionEncoder.encode_split`).

The value parsers read the spellings datasets use: :func:`sex_value` (0/1, M/F, male/female),
:func:`age_value` (numbers, DICOM "063Y"), :func:`race_value`; :func:`is_missing` says which
values mean "unknown" (None, NaN, "", "unknown", "n/a"...).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from cxrbench.contracts import Condition, Split
from cxrbench.errors import PluginError

if TYPE_CHECKING:  # pragma: no cover
    import torch

_MISSING_STRINGS = {"", "nan", "none", "null", "unknown", "u", "?", "na", "n/a"}
_SEX_VALUES = {
    "m": 0.0, "male": 0.0, "man": 0.0, "0": 0.0,
    "f": 1.0, "female": 1.0, "woman": 1.0, "w": 1.0, "1": 1.0,
}


def is_missing(value: Any) -> bool:
    """True for None, NaN and strings meaning unknown ("", "nan", "unknown", "n/a"...)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and value.strip().lower() in _MISSING_STRINGS:
        return True
    return False


def sex_value(value: Any) -> float | None:
    """0 = male, 1 = female, None = unknown (accepts 0/1, M/F, male/female...)."""
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if float(value) in (0.0, 1.0) else None
    return _SEX_VALUES.get(str(value).strip().lower())


def age_value(value: Any) -> float | None:
    """Age in years, None = unknown (accepts numbers and DICOM strings such as "063Y")."""
    if is_missing(value):
        return None
    try:
        age = float(str(value).strip().rstrip("Yy"))  # "063Y" (DICOM) -> 63
    except ValueError:
        return None
    return None if math.isnan(age) else age


def race_value(value: Any) -> str | None:
    """The lower-cased race string, None = unknown."""
    return None if is_missing(value) else str(value).strip().lower()


class ConditionEncoder:
    """Label vector + demographics -> fixed-length float vector.

    Layout: ``[labels (L) | sex_known, sex_female | age_known, age_01 | race one-hot (R)]``;
    a demographic block is present only when the training split had at least one known value
    of it. Unknown values encode as zeros with ``known = 0``. Label NaN encodes as 0.
    """

    def __init__(
        self,
        label_names: Sequence[str],
        *,
        sex: bool = False,
        age_range: tuple[float, float] | None = None,
        races: Sequence[str] | None = None,
    ):
        self.label_names = tuple(label_names)
        self.sex = bool(sex)
        self.age_range = tuple(age_range) if age_range is not None else None
        self.races = tuple(races) if races else None

    # ---- fitting and persistence
    @classmethod
    def fit(cls, split: Split) -> ConditionEncoder:
        meta = split.metadata or {}
        sexes = [sex_value(v) for v in meta.get("sex", [])]
        ages = [a for a in (age_value(v) for v in meta.get("age", [])) if a is not None]
        races = sorted({r for r in (race_value(v) for v in meta.get("race", [])) if r is not None})
        return cls(
            split.label_names,
            sex=any(s is not None for s in sexes),
            age_range=(min(ages), max(ages)) if ages else None,
            races=races or None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "label_names": list(self.label_names),
            "sex": self.sex,
            "age_range": list(self.age_range) if self.age_range else None,
            "races": list(self.races) if self.races else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConditionEncoder:
        return cls(
            data["label_names"],
            sex=data.get("sex", False),
            age_range=tuple(data["age_range"]) if data.get("age_range") else None,
            races=data.get("races"),
        )

    @property
    def dim(self) -> int:
        return (
            len(self.label_names)
            + (2 if self.sex else 0)
            + (2 if self.age_range else 0)
            + (len(self.races) if self.races else 0)
        )

    def describe(self) -> str:
        parts = [f"labels {list(self.label_names)}"]
        if self.sex:
            parts.append("sex")
        if self.age_range:
            parts.append(f"age in [{self.age_range[0]:g}, {self.age_range[1]:g}]")
        if self.races:
            parts.append(f"race {list(self.races)}")
        return ", ".join(parts)

    # ---- encoding
    def _row(self, labels: Sequence[float], demographics: Mapping[str, Any]) -> list[float]:
        row = [0.0 if (v is None or math.isnan(float(v))) else float(v) for v in labels]
        if self.sex:
            s = sex_value(demographics.get("sex"))
            row += [0.0, 0.0] if s is None else [1.0, s]
        if self.age_range:
            a = age_value(demographics.get("age"))
            if a is None:
                row += [0.0, 0.0]
            else:
                lo, hi = self.age_range
                row += [1.0, min(1.0, max(0.0, (a - lo) / (hi - lo))) if hi > lo else 0.5]
        if self.races:
            r = race_value(demographics.get("race"))
            row += [1.0 if r == name else 0.0 for name in self.races]
        return row

    def demographics_of(self, row: Sequence[float]) -> tuple[str | None, float | None]:
        """(sex "female"/"male", age in years) read back from an encoded row; None = unknown."""
        sex = age = None
        i = len(self.label_names)
        if self.sex:
            sex = ("female" if row[i + 1] >= 0.5 else "male") if row[i] >= 0.5 else None
            i += 2
        if self.age_range and row[i] >= 0.5:
            lo, hi = self.age_range
            age = lo + float(row[i + 1]) * (hi - lo)
        return sex, age

    def encode(self, conditions: Sequence[Condition]) -> torch.Tensor:
        import torch

        rows = []
        for i, cond in enumerate(conditions):
            if len(cond.labels) != len(self.label_names):
                raise PluginError(
                    f"condition {i} has {len(cond.labels)} label(s) but the generator was fitted "
                    f"on {len(self.label_names)}: {list(self.label_names)}"
                )
            rows.append(self._row(cond.labels, cond.demographics or {}))
        return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), self.dim)

    def encode_split(self, split: Split) -> torch.Tensor:
        import torch

        labels = split.labels.detach().cpu().double().tolist()
        meta = split.metadata or {}
        n = len(split)
        rows = []
        for i in range(n):
            demo = {k: meta[k][i] for k in ("sex", "age", "race") if k in meta}
            rows.append(self._row(labels[i], demo))
        return torch.tensor(rows, dtype=torch.float32).reshape(n, self.dim)
