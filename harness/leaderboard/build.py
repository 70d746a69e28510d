"""Leaderboard rows from cell records: a pure function of the records and the schema.

:func:`build_rows` groups the records of one configuration (everything but the seed), pools its
seeds with :func:`cxrbench.aggregate.aggregate` (Rubin's rules; one row per test set) and adds the
mean over its ok seeds of every ``record.*`` and ``derived.*`` column (quality, cost). The contract:

* Rows never mix datasets, sizes, classifiers, protocol versions, schedules or feature networks
  (the ``identity`` of a quality feature block): those are part of the grouping key, and
  :func:`display_columns` splits a fidelity column by network when rows differ in it.
* Nothing is dropped silently: a configuration whose seeds all failed is a ``failed`` row, one
  with fewer ok seeds than recorded says ``incomplete: k/n seeds ok``, a truncated generator fit
  or a failed seed check says so in ``status``, and so does a seed whose paired comparisons were
  made against an earlier run of its reference (:mod:`cxrbench.pairing`). A record seen twice (the same ``cell_id`` in two
  results folders) is counted once; the other copy is listed under ``ignored_records``.
* Each row lists the relative paths of the records it came from, ordered by seed.
* A record of a spec with a real-data axis (``real_data:``) gives its row ``real_data`` (a
  :class:`RealDataSize`: "5% (235)", sorting by its 235 real training images) and ``n_real``;
  rows of different sizes never share a row (the size is part of the configuration). Without
  the axis both are None.
* The order is deterministic: by the schema's ``group_by`` fields, then its sort column in the
  direction of ``higher_is_better`` (missing values last), then generator label, ratio, chain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cxrbench.aggregate import aggregate, config_key, is_truncated, utility_between
from cxrbench.leaderboard.schema import DERIVED, Column, Schema, load_schema
from cxrbench.pairing import outdated_comparisons
from cxrbench.run_table import _chain, _classifier

#: group keys that belong to a record (the rest, test_set, come from the aggregate row)
_RECORD_LEVEL = ("dataset", "size", "classifier", "protocol", "schedule", "generator", "chain", "ratio", "context")


def build_rows(records: Iterable[Mapping | tuple[str, Mapping]], schema: Schema | None = None) -> list[dict]:
    """Leaderboard rows. ``records``: cell records, each a dict (its path is then taken as
    ``cells/<cell_id>.json``) or a ``(relative_path, record)`` pair. See the module doc."""
    schema = schema or load_schema()
    items, ignored = _dedupe(records)
    groups: dict[tuple, list[tuple[str, dict]]] = {}
    for path, rec in items:
        groups.setdefault(_record_key(rec, schema), []).append((path, rec))
    by_id = {str(rec.get("cell_id")): rec for _, rec in items}
    rows = []
    for key in sorted(groups, key=_orderable):
        for members in _split_by_network(groups[key]):
            rows.extend(_rows_of_group(members, schema, ignored, by_id))
    _add_real_data(rows, items)
    _add_utility_ratios(rows)
    for row in rows:  # row.* columns last: utility_ratio needs every row first
        row["values"].update({c.id: _get(row, c.path) for c in schema.columns if c.kind == "row"})
    return sorted(rows, key=lambda r: _row_order(r, schema))


class RealDataSize(str):
    """A real-data size as shown, ``5% (235)`` (:func:`cxrbench.subsets.size_text` and the number
    of real training images it gave; ``200 images`` when a count gave that many), that sorts by
    that number: ``size`` is the spec's value (a float fraction or an int count), ``n`` the real
    training images (None when no record says)."""

    size: float | int
    n: int | None

    def __new__(cls, size: float | int, n: int | None):
        from cxrbench.subsets import size_text

        shown = n is not None and not (isinstance(size, int) and n == size)  # "200 images (200)" says it twice
        obj = super().__new__(cls, size_text(size) + (f" ({n:,})" if shown else ""))
        obj.size, obj.n = size, n
        return obj

    def __reduce__(self):
        return (RealDataSize, (self.size, self.n))

    @property
    def order(self) -> tuple:
        """Smallest first: by real training images, then by the spec's value (a count after a fraction)."""
        return (_orderable(self.n), _orderable(self.size), isinstance(self.size, int))


def _add_real_data(rows: list[dict], items: list[tuple[str, dict]]) -> None:
    """``real_data`` and ``n_real`` of each row: the number of real training images comes from the
    row's own records, else from any record of the same dataset, size (px) and real-data size (a
    configuration whose seeds all failed wrote none)."""
    known: dict[tuple, int] = {}
    for _, rec in items:
        info = rec.get("real_data")
        n = info.get("n_train") if isinstance(info, Mapping) else None
        size = (rec.get("cell") or {}).get("real_data")
        if n is not None and size is not None:
            f = record_fields(rec)
            known.setdefault((f["dataset"], f["size"], _size_key(size)), int(n))
    for row in rows:
        size, n = row.pop("_real_data"), row.pop("_n_real")
        if size is None:
            row["real_data"] = row["n_real"] = None
            continue
        n = n if n is not None else known.get((row["dataset"], row["size"], _size_key(size)))
        row["real_data"], row["n_real"] = RealDataSize(size, n), n


def _size_key(size) -> tuple | None:
    """A size as a dict key: 1.0 (every image) and 1 (an image count, not allowed) stay apart."""
    return None if size is None else (type(size).__name__, size)


def _add_utility_ratios(rows: list[dict]) -> None:
    """``utility_ratio`` = (AUROC - floor) / (ceiling - floor), means over seeds: where the row's
    AUROC sits between the ``noise`` generator's row (the floor) and the ``real`` generator's row
    (the real training images themselves: the ceiling), both through the same protocol, ratio,
    dataset content, size, classifier, schedule, real-data size and TEST SET. 1: as good as the
    real images; 0: no better than noise. Each test set has its own floor and ceiling: on a
    shifted external set the noise floor can sit well below 0.5, so neither 0.5 nor another set's
    reference is ever used. A chain (e.g. proxy-filter) gives a row its own context hash, so the
    references of the row's own context are preferred, else the only ones of its place. None
    without both references (e.g. real-only, or supplemented, whose comparisons are dAUROC vs
    real-only and the content gain vs noise), with two of other contexts to choose from, or when
    the ceiling is not above the floor. The floor and ceiling used are kept on the row."""
    def place(r):
        size = r["real_data"].size if r["real_data"] is not None else None
        return tuple(r[k] for k in ("dataset", "dataset_fingerprint", "size", "classifier", "protocol", "schedule",
                                    "ratio", "test_set")) + (_size_key(size),)

    def pooled(r):
        return (r["aggregate"].get("metrics") or {}).get("auroc") or {}

    def auroc(r):
        return pooled(r).get("mean")

    refs: dict[str, dict[tuple, dict[str, dict]]] = {"real": {}, "noise": {}}
    for r in rows:
        # the plain `noise` / `real` rows (a relabelled variant, e.g. white noise, is a generator row)
        if r["generator_plugin"] in refs and r["generator"] == r["generator_plugin"] and r["chain"] == "-" \
                and auroc(r) is not None:
            refs[r["generator_plugin"]].setdefault(place(r), {}).setdefault(r["context"], pooled(r))

    def reference(kind, r):
        found = refs[kind].get(place(r), {})
        return found.get(r["context"], next(iter(found.values())) if len(found) == 1 else None) or {}

    for r in rows:
        floor, ceiling, value = reference("noise", r).get("mean"), reference("real", r), auroc(r)
        r["floor"], r["ceiling"] = floor, ceiling.get("mean")
        r["utility_ratio"] = utility_between(value, floor, ceiling.get("mean"), (ceiling.get("ci") or [None])[0])


def _reference_role(row: dict, rec: dict) -> str | None:
    """What a reference row is for: under synthetic-only the ``real`` generator (the real training
    images themselves) is the ceiling and ``noise`` the floor every generator is read between;
    real-only is the baseline a supplemented row is compared with. None for any other row."""
    plugin = ((rec.get("cell") or {}).get("generator") or {}).get("name")
    protocol = str(row.get("protocol") or "")
    if protocol.startswith("real-only"):
        return "baseline"
    if protocol.startswith("synthetic-only") and row.get("chain") in (None, "-") and row.get("generator") == plugin:
        return {"real": "ceiling", "noise": "floor"}.get(plugin)
    return None


@dataclass(frozen=True)
class DisplayColumn:
    """A schema column as shown: ``network`` set when a fidelity column is split by feature network."""

    id: str
    header: str
    column: Column
    network: str | None = None

    def value(self, row: dict):
        if self.network is not None:
            net = self.column.feature_network
            if (row.get("feature_networks") or {}).get(net) != self.network:
                return None
        return row["values"].get(self.column.id)


def display_columns(rows: list[dict], schema: Schema) -> list[DisplayColumn]:
    """The schema's columns; one whose numbers come from a feature network is split into one
    column per network identity (its header naming it) when the rows were measured with more
    than one, so numbers from different networks never share a column. A ``hide_when_empty``
    column without a value in any row is left out."""
    out = []
    for col in schema.columns:
        if col.hide_when_empty and all(r["values"].get(col.id) is None for r in rows):
            continue
        net = col.feature_network
        identities = sorted({(r.get("feature_networks") or {}).get(net) for r in rows} - {None}) if net else []
        if len(identities) <= 1:
            out.append(DisplayColumn(col.id, col.header, col))
            continue
        out.extend(DisplayColumn(f"{col.id}@{ident}", f"{col.header} [{ident}]", col, ident) for ident in identities)
    return out


def sort_value(value):
    """What a value sorts by: a pooled interval by its mean, a real-data size by its number of
    real training images; None stays None (sorted last)."""
    if isinstance(value, RealDataSize):
        return None if value.n is None else float(value.n)
    if isinstance(value, Mapping):
        value = value.get("mean")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return None if math.isnan(value) else float(value)
    return value


def record_fields(rec: Mapping) -> dict:
    """The row fields that a single record determines."""
    cell = rec.get("cell") or {}
    spec = rec.get("spec") or {}
    protocol, label, ratio, schedule, context, real_data = config_key(rec)
    return {
        "dataset": (spec.get("dataset") or {}).get("name") or (rec.get("dataset") or {}).get("name"),
        "size": spec.get("size"), "classifier": _classifier(rec), "protocol": protocol, "schedule": schedule,
        "generator": label, "chain": _chain(rec), "ratio": ratio, "context": context, "seed": cell.get("seed"),
        "real_data": real_data,
    }


def feature_networks(rec: Mapping) -> dict[str, str]:
    """{feature block name: network identity} of a record's quality report (empty without one)."""
    feats = (((rec.get("generator") or {}).get("quality") or {}).get("features")) or {}
    return {name: block["identity"] for name, block in sorted(feats.items())
            if isinstance(block, Mapping) and block.get("identity")}


def _dedupe(records) -> tuple[list[tuple[str, dict]], dict[str, list[str]]]:
    """One copy per cell_id (an ok one first, then the first path); ``ignored``: cell_id -> the rest."""
    by_id: dict[str, list[tuple[str, dict]]] = {}
    for i, item in enumerate(records):
        path, rec = (item if isinstance(item, tuple) else
                     (f"cells/{item.get('cell_id') or f'record-{i}'}.json", item))
        by_id.setdefault(str(rec.get("cell_id") or path), []).append((path, rec))
    items, ignored = [], {}
    for cell_id in sorted(by_id):
        copies = sorted(by_id[cell_id], key=lambda pr: (pr[1].get("status") != "ok", pr[0]))
        items.append(copies[0])
        if len(copies) > 1:
            ignored[cell_id] = [p for p, _ in copies[1:]]
    return items, ignored


def _record_key(rec: Mapping, schema: Schema) -> tuple:
    fields = record_fields(rec)
    extra = tuple(fields[k] for k in schema.group_by if k in _RECORD_LEVEL)
    return (fields["dataset"], fields["size"], fields["classifier"], *config_key(rec), extra)


def _split_by_network(members: list[tuple[str, dict]]) -> list[list[tuple[str, dict]]]:
    """Split one configuration by the feature networks of its quality reports. A record without a
    report (a failed seed, an older record) joins the configuration's network when it has exactly one."""
    parts: dict[tuple, list] = {}
    for path, rec in members:
        parts.setdefault(tuple(feature_networks(rec).items()), []).append((path, rec))
    measured = [k for k in parts if k]
    if len(measured) == 1 and () in parts:
        parts[measured[0]] = parts.pop(()) + parts[measured[0]]
    return [parts[k] for k in sorted(parts)]


def _rows_of_group(members: list[tuple[str, dict]], schema: Schema, ignored: dict, by_id: dict) -> list[dict]:
    members = sorted(members, key=lambda pr: (_orderable(pr[1].get("cell", {}).get("seed")), pr[0]))
    recs = [r for _, r in members]
    ok = [r for r in recs if r.get("status") == "ok"]
    first = record_fields(recs[0])
    networks = next((feature_networks(r) for r in recs if feature_networks(r)), {})
    record_values = {c.id: _mean_over(ok, c.path) for c in schema.columns if c.kind == "record"}
    record_values.update({c.id: _mean_of([DERIVED[c.path[0]](r) for r in ok])
                          for c in schema.columns if c.kind == "derived"})
    out = []
    for agg in aggregate(recs):
        row = {k: first[k] for k in _RECORD_LEVEL}
        row.update({
            "test_set": agg["test_set"], "feature_networks": networks,
            "feature_network": ", ".join(f"{k}={v}" for k, v in networks.items()) or None,
            "seeds": f"{len(ok)}/{len(recs)}", "seed_list": agg["seeds"], "failed_seeds": agg["failed_seeds"],
            "fits": _fits_text(ok), "generator_plugin": ((recs[0].get("cell") or {}).get("generator") or {}).get("name"),
            "dataset_fingerprint": (recs[0].get("dataset") or {}).get("fingerprint"),
            "status": _status(recs, ok, agg, by_id), "vs_real_only": _vs_text(agg["vs_real_only"]),
            "vs_noise_control": _vs_text(agg.get("vs_noise_control")),
            # made into real_data / n_real by build_rows (a failed configuration takes n from others)
            "_real_data": first["real_data"],
            "_n_real": next((r["real_data"]["n_train"] for r in ok if isinstance(r.get("real_data"), Mapping)
                             and r["real_data"].get("n_train") is not None), None),
            "aggregate": agg, "records": [p for p, _ in members],
            "reference": _reference_role(first, recs[0]),
            "ignored_records": sorted(p for r in recs for p in ignored.get(str(r.get("cell_id")), [])),
            "artifacts": _artifacts(members),
        })
        # in schema order; row.* columns are filled by build_rows once every row exists
        row["values"] = {c.id: (record_values[c.id] if c.kind in ("record", "derived") else
                                _get(agg, c.path) if c.kind == "aggregate" else None) for c in schema.columns}
        out.append(row)
    return out


def _fits_text(ok: list[dict]) -> str:
    """How many generator trainings the row's seeds stand on: "1 (shared)" when one fit served every
    seed (the spread over seeds leaves training out), "n per seed" with ``fit_seed: per-seed``, and
    "n, mixed" when a row meant to share one fit stands on several (see :func:`mixed_fits`)."""
    gens = [r.get("generator") or {} for r in ok]
    if not gens or not all((g.get("capabilities") or {}).get("needs_training") for g in gens):
        return "-"
    keys = {g.get("fit_key") for g in gens}
    if len(keys) == 1:
        return "1 (shared)"
    return f"{len(keys)}, mixed" if mixed_fits(ok) else f"{len(keys)}, one per seed"


def _fit_policy(rec: dict) -> str | None:
    """The ``fit_seed`` setting ("shared" / "per-seed") of the spec entry that made the record's
    generator row; None where the record does not say."""
    cell = (rec.get("cell") or {}).get("generator") or {}
    for ref in (rec.get("spec") or {}).get("generators") or []:
        if (ref.get("label") or ref.get("name")) == (cell.get("label") or cell.get("name")):
            return ref.get("fit_seed")
    return None


def mixed_fits(ok: list[dict]) -> int:
    """How many fits a row *meant to share one* (``fit_seed: shared``) stands on, when more than
    one, else 0. It happens when a generator's code or options changed between the runs of its
    seeds: the older seeds' records stayed (a record made before plugin identities were stored is
    reused, and only the seeds one re-runs are re-run), so the row would pool different models."""
    keys = {(r.get("generator") or {}).get("fit_key") for r in ok}
    if len(keys) < 2 or any(_fit_policy(r) != "shared" for r in ok):
        return 0
    return len(keys)


def _status(recs: list[dict], ok: list[dict], agg: dict, by_id: dict | None = None) -> str:
    if not ok:
        err = next((r.get("error") or {} for r in recs if r.get("error")), {})
        msg = str(err.get("message") or "").strip().splitlines()
        detail = f": {err.get('type', 'error')}: {msg[0][:100]}" if msg else ""
        return f"failed ({len(recs)}/{len(recs)} seeds){detail}"
    flags = []
    if len(ok) < len(recs):
        flags.append(f"incomplete: {len(ok)}/{len(recs)} seeds ok (failed: seed "
                     f"{', '.join(str(s) for s in agg['failed_seeds'])})")
    scored = ((agg.get("metrics") or {}).get("auroc") or {}).get("n_seeds", len(ok))
    if scored < len(ok):
        flags.append(f"incomplete: {scored}/{len(ok)} ok seeds scored on this test set")
    truncated = [r for r in recs if is_truncated(r)]
    if truncated:
        stats = ((truncated[0].get("generator") or {}).get("fit_stats")) or {}
        flags.append(f"truncated fit ({len(truncated)} seed(s); {stats.get('steps')}/{stats.get('steps_requested')} "
                     "steps)")
    if any(not ((r.get("generator") or {}).get("seed_check") or {}).get("ok", True) for r in recs):
        flags.append("seed check failed")
    mixed = mixed_fits(ok)
    if mixed:
        flags.append(f"mixed fits: its seeds stand on {mixed} different fits of one shared generator "
                     "(it changed between runs; re-run the older seeds)")
    outdated = [(r.get("cell", {}).get("seed"), why) for r in ok
                for why in outdated_comparisons(r, (by_id or {}).get)[:1]]
    if outdated:
        seeds = ", ".join(str(seed) for seed, _ in outdated)
        flags.append(f"outdated comparison (seed {seeds}): {outdated[0][1]}; re-run the seed(s)")
    return "; ".join(flags) or "ok"


def _vs_text(paired: dict) -> str | None:
    if not paired:
        return None
    n = paired["n_seeds"]
    return f"worse {paired['seeds_worse']}/{n}, better {paired['seeds_better']}/{n}"


def _artifacts(members: list[tuple[str, dict]]) -> dict:
    """Images that represent the row (those of its first ok seed that has them): the record's
    relative path, the file name and the path its record gave (absolute, possibly elsewhere)."""
    out = {}
    for path, rec in members:
        if rec.get("status") != "ok":
            continue
        sheet = (rec.get("artifacts") or {}).get("contact_sheet")
        if sheet and "contact_sheet" not in out:
            out["contact_sheet"] = {"record": path, "name": str(sheet).replace("\\", "/").rsplit("/", 1)[-1],
                                    "given": str(sheet)}
        pairs = (((rec.get("generator") or {}).get("quality") or {}).get("memorization") or {}).get("worst_pairs_png")
        if pairs and "worst_pairs" not in out:
            # written into the cell's artifact folder, the folder of its other artifacts
            beside = next((str(a) for a in (rec.get("artifacts") or {}).values() if isinstance(a, str)), None)
            name = str(pairs).rsplit("/", 1)[-1]
            folder = beside.replace("\\", "/").rsplit("/", 1)[0] if beside else None
            out["worst_pairs"] = {"record": path, "name": name, "given": f"{folder}/{name}" if folder else None}
    return out


def _get(obj, path: tuple[str, ...]):
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _mean_over(records: list[dict], path: tuple[str, ...]):
    """The mean of a numeric value over the records that have it; text: the distinct values."""
    return _mean_of([_get(r, path) for r in records])


def _mean_of(values: list):
    values = [v for v in values if v is not None]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if values and len(numbers) == len(values):
        finite = [x for x in numbers if math.isfinite(x)]
        return sum(finite) / len(finite) if finite else None
    texts = sorted({str(v).lower() if isinstance(v, bool) else str(v) for v in values if not isinstance(v, Mapping)})
    return ", ".join(texts) if texts else None


def _orderable(value):
    """A sort key that orders None last and never compares a number with a string."""
    if isinstance(value, tuple):
        return tuple(_orderable(v) for v in value)
    if value is None:
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _row_order(row: dict, schema: Schema) -> tuple:
    col = schema.column(schema.sort.column)
    metric = sort_value(row["values"].get(col.id))
    if isinstance(metric, float) and col.higher_is_better:
        metric = -metric  # descending: the best first
    # the feature network keeps rows and fidelity columns apart (display_columns) but does not
    # split the ranking: a row without a quality report (real, older records) ranks among the rest
    groups = tuple(_group_order(row, k) for k in schema.group_by if k != "feature_network")
    return (groups, _orderable(metric), _orderable((row["generator"], row["ratio"], row["chain"],
                                                    row["feature_network"], row["context"], row["test_set"])))


def _group_order(row: dict, key: str):
    if key == "protocol":
        return _orderable(_newest_first(row.get(key)))
    value = row.get(key)
    if key in ("real_data", "n_real"):  # by real training images, smallest first; no axis last
        size = row.get("real_data")
        return size.order if size is not None else (_orderable(None),) * 2 + (False,)
    return _orderable(value)


def _newest_first(protocol):
    """``synthetic-only.v2`` before ``synthetic-only.v1``: a protocol's latest version leads."""
    name, _, version = str(protocol).rpartition(".v")
    return (name, -int(version)) if name and version.isdigit() else (str(protocol), 0)
