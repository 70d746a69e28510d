"""The leaderboard's display schema: which columns, from where, formatted how, sorted which way.

A schema is YAML, versioned (``schema_version: 1``) and strict like a benchmark spec: an unknown
key, a missing key, a wrong type, an unknown column source, format or group key is a one-line
:class:`~cxrbench.errors.ConfigError` naming the file and the key path (``columns[3].source``).
The default ships beside this file as ``default-schema.yaml`` (its comments document every field).

A column's ``source`` is ``row.FIELD`` (a field the builder makes, :data:`ROW_FIELDS`),
``aggregate.PATH`` (the row of :func:`cxrbench.aggregate.aggregate`, checked against its known
shape), ``record.PATH`` (a value in each seed's cell record, averaged over the ok seeds; only the
first key is checked, because plugins add their own keys below it) or ``derived.NAME`` (a value
computed from each seed's record by a function of :data:`DERIVED`, averaged the same way: for
figures that older records hold only as parts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cxrbench.errors import ConfigError
from cxrbench.quality.cost import seconds_per_delivered_image, usd_per_delivered_image

#: ``derived.NAME`` column sources: NAME -> function(record) -> value
DERIVED = {"seconds_per_delivered_image": seconds_per_delivered_image,
           "usd_per_delivered_image": usd_per_delivered_image}

SCHEMA_VERSION = 1
DEFAULT_SCHEMA = Path(__file__).with_name("default-schema.yaml")

#: fields of a leaderboard row usable as ``row.FIELD`` sources and as group keys
ROW_FIELDS = ("dataset", "size", "classifier", "protocol", "schedule", "test_set", "feature_network",
              "generator", "reference", "chain", "ratio", "context", "status", "seeds", "fits", "vs_real_only",
              "utility_ratio", "floor", "ceiling", "real_data", "n_real", "vs_noise_control")
#: group keys every schema must keep: numbers from different values of these are not comparable
REQUIRED_GROUP_KEYS = ("dataset", "size", "classifier", "protocol", "schedule", "feature_network")

_RUBIN = dict.fromkeys(("mean", "sd", "n_seeds", "within_var", "between_var", "total_var", "df", "ci", "per_seed"))
_PAIRED = {"delta_auroc": _RUBIN, **dict.fromkeys(("p_values", "seeds_better", "seeds_worse", "n_seeds"))}
#: the shape of an aggregate row (cxrbench.aggregate._row); None marks a leaf
AGGREGATE_TREE: dict = {
    **dict.fromkeys(("protocol", "generator", "ratio", "schedule", "context", "real_data", "test_set", "seeds",
                     "failed_seeds", "truncated", "method")),
    "metrics": {"auroc": _RUBIN, "aupr": _RUBIN},
    "vs_real_only": _PAIRED,
    # the content gain: over real + r x noise images at the same real-data size, ratio and seed
    "vs_noise_control": _PAIRED,
}
#: top-level keys of a cell record (schema cxrbench.cell/1)
RECORD_KEYS = ("artifacts", "cell", "cell_id", "classifier", "comparisons", "created", "dataset", "error", "external",
               "generator", "git_revision", "hardware", "metrics", "protocol", "real_data", "schema", "seeds", "spec",
               "spec_source", "status", "thresholds", "timings", "training_set", "versions", "vs_noise_control")

_FORMAT = re.compile(r"^(?:text|int|(?:fixed|signed|sig|percent|mean_sd_ci):\d)$")
FORMATS_HELP = "text, int, fixed:N, signed:N, sig:N, percent:N, mean_sd_ci:N"


@dataclass
class Column:
    """One column: ``id`` names it in the CSV and in ``sort.column``; ``higher_is_better`` sets the
    sort direction (true: descending, false: ascending, null: ascending and no "best");
    ``hide_when_empty``: the column is left out when no row has a value in it (e.g. the real-data
    size, which records without that axis do not have)."""

    id: str
    header: str
    source: str
    format: str = "text"
    higher_is_better: bool | None = None
    hide_when_empty: bool = False

    @property
    def kind(self) -> str:
        return self.source.split(".", 1)[0]

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.source.split(".")[1:])

    @property
    def feature_network(self) -> str | None:
        """``domain`` for a ``record.generator.quality.features.domain...`` column: its numbers are
        only comparable between rows whose ``domain`` network has the same identity."""
        p = self.path
        if self.kind == "record" and p[:3] == ("generator", "quality", "features") and len(p) > 4:
            return p[3]
        return None


@dataclass
class SortSpec:
    column: str


@dataclass
class Schema:
    schema_version: int
    columns: list[Column]
    group_by: list[str]
    sort: SortSpec

    def column(self, column_id: str) -> Column:
        return next(c for c in self.columns if c.id == column_id)


def load_schema(path: str | Path | None = None) -> Schema:
    """Read and strictly check a schema file (the default one when ``path`` is None)."""
    import yaml

    path = Path(path) if path is not None else DEFAULT_SCHEMA
    source = str(path) if path != DEFAULT_SCHEMA else "default-schema.yaml"
    if not path.is_file():
        raise ConfigError(f"{source}: schema file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return schema_from_data(data, source)


def schema_from_data(data, source: str = "<schema>") -> Schema:
    """A :class:`Schema` from parsed YAML, checked: types and keys (as cxrbench.config does), then
    version, unique column ids, sources, formats, group keys and the sort column."""
    from cxrbench.config import from_mapping

    schema = from_mapping(Schema, data if data is not None else {}, "", source)
    if schema.schema_version != SCHEMA_VERSION:
        raise ConfigError(f"{source}: schema_version: {schema.schema_version} is not supported "
                          f"(this cxrbench reads {SCHEMA_VERSION})")
    if not schema.columns:
        raise ConfigError(f"{source}: columns: at least one column is required")
    seen: set[str] = set()
    for i, col in enumerate(schema.columns):
        where = f"{source}: columns[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", col.id):
            raise ConfigError(f"{where}.id: {col.id!r}: use letters, digits, '_', '-', '.'")
        if col.id in seen:
            raise ConfigError(f"{where}.id: {col.id!r} is used by an earlier column")
        seen.add(col.id)
        if not _FORMAT.match(col.format):
            raise ConfigError(f"{where}.format: unknown format {col.format!r}; allowed: {FORMATS_HELP}")
        _check_source(col, where)
    for i, key in enumerate(schema.group_by):
        if key not in ROW_FIELDS:
            raise ConfigError(f"{source}: group_by[{i}]: unknown group key {key!r}; allowed: {', '.join(ROW_FIELDS)}")
    missing = [k for k in REQUIRED_GROUP_KEYS if k not in schema.group_by]
    if missing:
        raise ConfigError(f"{source}: group_by: must include {', '.join(missing)} (rows that differ in them are "
                          f"not comparable and never share a row)")
    if schema.sort.column not in seen:
        raise ConfigError(f"{source}: sort.column: {schema.sort.column!r} is not a column id; "
                          f"allowed: {', '.join(c.id for c in schema.columns)}")
    return schema


def _check_source(col: Column, where: str) -> None:
    kind, path = col.kind, col.path
    allowed = "row.FIELD, aggregate.PATH, record.PATH or derived.NAME"
    if kind not in ("row", "aggregate", "record", "derived") or not path or not all(path):
        raise ConfigError(f"{where}.source: unknown column source {col.source!r}; expected {allowed}")
    if kind == "derived":
        if len(path) != 1 or path[0] not in DERIVED:
            raise ConfigError(f"{where}.source: unknown column source {col.source!r}; derived values: "
                              f"{', '.join(DERIVED)}")
        return
    if kind == "row":
        if len(path) != 1 or path[0] not in ROW_FIELDS:
            raise ConfigError(f"{where}.source: unknown column source {col.source!r}; row fields: "
                              f"{', '.join(ROW_FIELDS)}")
    elif kind == "record":
        if path[0] not in RECORD_KEYS:
            raise ConfigError(f"{where}.source: unknown column source {col.source!r}; a record's keys: "
                              f"{', '.join(RECORD_KEYS)}")
    else:
        node: dict | None = AGGREGATE_TREE
        for depth, key in enumerate(path):
            if node is None or key not in node:
                known = ", ".join(node) if node else "(none: a leaf)"
                raise ConfigError(f"{where}.source: unknown column source {col.source!r}: no "
                                  f"{'.'.join(path[:depth + 1])!r} in an aggregate row; known here: {known}")
            node = node[key]
        if col.format.startswith("mean_sd_ci") and node is not _RUBIN:
            raise ConfigError(f"{where}.format: mean_sd_ci needs a pooled interval source such as "
                              f"aggregate.metrics.auroc, not {col.source!r}")
    if col.format.startswith("mean_sd_ci") and kind != "aggregate":
        raise ConfigError(f"{where}.format: mean_sd_ci needs an aggregate.* source (a pooled interval)")
