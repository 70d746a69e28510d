"""Which columns of the leaderboard table come first, which fold into a caption line, which wait
behind the page's "details" toggle; and where the protocol groups of rows begin.

A row has some 40 columns, most of them the same in every row (one dataset, size, classifier,
schedule, test set). At 1,280 px the reader must see who a row is, its headline metric and how
it compares, without scrolling. So, from the rows as shown (text per cell):

* key columns, in this order: :data:`KEY_LEAD` (generator, protocol, r, the real-data size),
  then the :data:`CONTEXT` columns that differ between rows (numbers of different test sets or
  classifiers are not comparable, so the reader must see which one a row is), the headline (the
  schema's sort column, AUROC), :data:`KEY_TRAIL` (dAUROC, content gain, utility), and the status
  when not every row is ok (a failed row is never hidden behind a toggle);
* constant columns: a settings column (format text or int) with the same value in every row is
  named once in a caption line ("dataset kermany · 32 px · resnet18 · quick · test kermany:test ·
  all ok"); a measurement that happens to be equal everywhere stays a column;
* details: every column that is not key, in schema order (the constant ones too, so opening the
  toggle shows the whole table).

Pure functions of columns and cell texts (no HTML), so the page and the Markdown share them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the column every row is ranked by (the default schema's sort column)
HEADLINE = "auroc"
KEY_LEAD = ("generator", "protocol", "ratio", "real_data")
CONTEXT = ("dataset", "size", "classifier", "schedule", "test_set")
KEY_TRAIL = ("delta_auroc", "content_gain", "utility_ratio")
STATUS = "status"
#: row fields whose values never share a comparison: a run of rows equal in all of them is one
#: group on the page (headed by its protocol), in the order build.py sorts rows
GROUP_FIELDS = ("dataset", "size", "classifier", "real_data", "protocol", "schedule", "test_set")
#: how a constant setting reads in the caption; any other: "Header value"
_CAPTION = {"dataset": "dataset {}", "size": "{} px", "classifier": "{}", "schedule": "{}", "test_set": "test {}",
            "chain": "post-processing {}"}
MISSING = "-"


@dataclass(frozen=True)
class Layout:
    """Column indices into the table's columns: ``key`` shown first, ``details`` behind the
    toggle (every other column, schema order), ``constants`` (index, text) named in the caption."""

    key: list[int]
    details: list[int]
    constants: list[tuple[int, str]]
    headline: int | None

    @property
    def order(self) -> list[int]:
        return self.key + self.details


def plan(ids: list[str], formats: list[str], cells: list[list[str]], headline: str) -> Layout:
    """The layout of a table whose columns have ``ids`` and ``formats`` and whose rows show
    ``cells`` (text); ``headline``: the id of the column every row is ranked by."""
    def constant(i: int) -> str | None:
        values = {line[i] for line in cells}
        if ids[i] in CONTEXT and len(values - {MISSING}) == 1:  # "-": a failed row that never got this far
            values -= {MISSING}
        return next(iter(values)) if cells and len(values) == 1 else None

    index = {c: i for i, c in enumerate(ids)}
    varying_context = [index[c] for c in CONTEXT if c in index and constant(index[c]) is None]
    key = [index[c] for c in KEY_LEAD if c in index] + varying_context
    key += [index[c] for c in (headline, *KEY_TRAIL) if c in index and index[c] not in key]
    if STATUS in index and constant(index[STATUS]) != "ok":
        key.append(index[STATUS])
    constants = [(i, constant(i)) for i in range(len(ids)) if i not in key and formats[i] in ("text", "int")
                 and constant(i) not in (None, MISSING)]
    return Layout(key=key, details=[i for i in range(len(ids)) if i not in key], constants=constants,
                  headline=index.get(headline))


def caption(ids: list[str], headers: list[str], constants: list[tuple[int, str]]) -> str:
    """The constant settings as one line: ``dataset kermany · 32 px · resnet18 · all ok``."""
    parts = []
    for i, text in constants:
        if ids[i] == STATUS:
            parts.append("all ok" if text == "ok" else f"status {text}")
        else:
            parts.append(_CAPTION.get(ids[i], headers[i] + " {}").format(text))
    return " · ".join(parts)


def groups(rows: list[dict]) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of consecutive rows equal in :data:`GROUP_FIELDS`; a field a
    row lacks (a configuration whose seeds all failed has no test set) does not split the run."""
    out: list[tuple[int, int]] = []
    for i, row in enumerate(rows):
        if out and all(row.get(k) in (None, rows[out[-1][0]].get(k)) for k in GROUP_FIELDS):
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def group_heading(rows: list[dict], first: dict) -> str:
    """A group's heading: its protocol, then the group fields that differ between the table's rows
    (those the same everywhere are in the caption), e.g. ``supplemented.v1 · real data 5% (235)``."""
    parts = [str(first.get("protocol"))]
    for k in GROUP_FIELDS:
        if k != "protocol" and first.get(k) is not None and len({str(r[k]) for r in rows if r.get(k) is not None}) > 1:
            parts.append(("real data {}" if k == "real_data" else _CAPTION.get(k, "{}")).format(first[k]))
    return " · ".join(parts)


#: what each reference row is, in the legend above a table
REFERENCE_MEANING = {
    "ceiling": "the real training images through the same protocol",
    "floor": "noise images through the same protocol",
    "baseline": "real-only: the real training images alone",
    "control": "real + r x noise images: what the number of images alone does",
}
