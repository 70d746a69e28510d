"""The leaderboard rows as Markdown, CSV, LaTeX and one static HTML page (strings; no file I/O).

* Markdown: tabulate's ``github`` table (``|`` in a value escaped), then notes.
* CSV: every number unrounded (``repr``), so parsing it back gives the aggregate's floats; a pooled
  interval column ``X`` becomes ``X_mean, X_sd, X_ci_low, X_ci_high``; a ``records`` column lists
  the record paths of the row (``;``-separated).
* LaTeX: tabulate's ``latex_booktabs``, which escapes ``_ % & # $ { } ~ ^ \\``.
* HTML: ``index.html`` with its CSS and JS inlined (page.css, page.js beside this file) and a
  Content-Security-Policy that allows only those two by hash, so it works offline from a file://
  URL and a string that slipped through unescaped still could not run. Every string from a record,
  a plugin or the schema goes through :func:`html.escape`; links are relative and URL-quoted.

All output depends only on the rows, the columns and the notes (no dates, no absolute paths).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import math
from pathlib import Path
from urllib.parse import quote

from cxrbench.cards import html_links, markdown_links
from cxrbench.leaderboard import layout
from cxrbench.leaderboard.build import DisplayColumn, RealDataSize, sort_value
from cxrbench.leaderboard.table_html import DETAIL, badge, group_head, legend, toggle

_HERE = Path(__file__).parent
#: the HTML filter selects, in order: a row field each (real_data only when a row has a size)
FILTERS = ("dataset", "protocol", "classifier", "size")
REAL_DATA_FILTER = "real_data"


def format_value(fmt: str, value) -> str:
    """A cell as text: ``-`` for a missing value; see the formats in default-schema.yaml."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    kind, _, digits = fmt.partition(":")
    n = int(digits or 0)
    if kind == "mean_sd_ci":
        if not isinstance(value, dict) or value.get("mean") is None:
            return "-"
        text = f"{value['mean']:.{n}f}"
        if value.get("sd") is not None:
            text += f" +/- {value['sd']:.{n}f}"
        if value.get("ci"):
            text += f" [{value['ci'][0]:.{n}f}, {value['ci'][1]:.{n}f}]"
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float)) or kind == "text":
        return str(value).lower() if isinstance(value, bool) else str(value)
    return {"int": lambda: str(int(round(value))), "fixed": lambda: f"{value:.{n}f}",
            "signed": lambda: f"{value:+.{n}f}", "sig": lambda: f"{value:.{n}g}",
            "percent": lambda: f"{100 * value:.{n}f}%"}[kind]()


def table_cells(rows: list[dict], columns: list[DisplayColumn]) -> list[list[str]]:
    return [[format_value(c.column.format, c.value(r)) for c in columns] for r in rows]


def arrange(rows: list[dict], columns: list[DisplayColumn]) -> tuple[list[DisplayColumn], set[str], str]:
    """The columns as every table shows them (cxrbench.leaderboard.layout): the key ones first,
    then the rest in schema order; the ids of those behind the page's details toggle; the caption
    line naming the settings that are the same in every row."""
    plan = layout.plan([c.id for c in columns], [c.column.format for c in columns], table_cells(rows, columns),
                       layout.HEADLINE)
    line = layout.caption([c.id for c in columns], [c.header for c in columns], plan.constants)
    return [columns[i] for i in plan.order], {columns[i].id for i in plan.details}, line


#: what the main table's place says when the records hold no classification cell
NO_CLASSIFICATION = ("No classification cells in these records, so no AUROC table: the tables are in the "
                     "sections and files the notes name (segmentation: segmentation.md).")


def render_markdown(rows: list[dict], columns: list[DisplayColumn], notes: list[str]) -> str:
    from tabulate import tabulate

    if not rows:  # e.g. a segmentation-only leaderboard: no AUROC table to show, not an empty one
        lines = ["# cxrbench leaderboard", "", NO_CLASSIFICATION, ""]
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] if notes else []
        return "\n".join(lines).rstrip() + "\n"
    columns, _, constant = arrange(rows, columns)  # the page's column order; nothing hidden here
    cells = [[v.replace("|", "\\|").replace("\n", " ") for v in line] for line in table_cells(rows, columns)]
    cells = [[markdown_links(v, r) if c.column.source == "row.generator" else v for v, c in zip(line, columns)]
             for line, r in zip(cells, rows)]  # a learned generator's row links to its card (cards.py)
    table = tabulate(cells, headers=[c.header for c in columns], tablefmt="github", disable_numparse=True)
    lines = ["# cxrbench leaderboard", ""] + ([f"In every row: {constant}.", ""] if constant else []) + [table, ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] if notes else []
    return "\n".join(lines).rstrip() + "\n"


def render_latex(rows: list[dict], columns: list[DisplayColumn]) -> str:
    from tabulate import tabulate

    columns = arrange(rows, columns)[0]  # the Markdown's order: key columns first
    return tabulate(table_cells(rows, columns), headers=[c.header for c in columns], tablefmt="latex_booktabs",
                    disable_numparse=True) + "\n"


def csv_header(columns: list[DisplayColumn]) -> list[str]:
    out = []
    for c in columns:
        if c.column.format.startswith("mean_sd_ci"):
            out += [f"{c.id}_mean", f"{c.id}_sd", f"{c.id}_ci_low", f"{c.id}_ci_high"]
        else:
            out.append(c.id)
    return out + ["records"]


def render_csv(rows: list[dict], columns: list[DisplayColumn]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_header(columns))
    for r in rows:
        line = []
        for c in columns:
            v = c.value(r)
            if c.column.format.startswith("mean_sd_ci"):
                v = v if isinstance(v, dict) else {}
                ci = v.get("ci") or [None, None]
                line += [_raw(v.get("mean")), _raw(v.get("sd")), _raw(ci[0]), _raw(ci[1])]
            else:
                line.append(_raw(v))
        writer.writerow(line + [";".join(r["records"])])
    return buf.getvalue()


def _raw(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    return repr(float(v)) if isinstance(v, float) else str(v)  # float(): numpy's repr is np.float64(...)


# --------------------------------------------------------------------------- HTML


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _href(rel_path: str) -> str:
    return _e(quote(rel_path, safe="/"))


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render_html(rows: list[dict], columns: list[DisplayColumn], notes: list[str], plots: list[dict],
                sources: list[str], sections: list[str] | None = None) -> str:
    """The page. ``plots``: [{"png", "svg", "title"}] relative paths; ``sources``: results folder names;
    ``sections``: HTML lines (already escaped) put between the table and the plots."""
    css = (_HERE / "page.css").read_text()
    js = (_HERE / "page.js").read_text()
    csp = (f"default-src 'none'; img-src 'self' file: data:; style-src {_csp_hash(css)}; "
           f"script-src {_csp_hash(js)}")
    n_records = sum(len(r["records"]) for r in rows)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>cxrbench leaderboard</title>", f"<style>{css}</style>", "</head>", "<body>",
           "<h1>cxrbench leaderboard</h1>"]
    if not rows:  # nothing to sort or filter: the sections hold the tables
        out.append(f"<p>No classification cells in the records of {_e(', '.join(sources))}, so no AUROC table: "
                   "the tables are in the sections below.</p>")
        out += list(sections or [])
        return _page_end(out, plots, notes, js)
    out += [f"<p>{len(rows)} rows from {n_records} cell records in {_e(', '.join(sources))}, grouped by protocol. "
            "Click a column header to sort within each group (again to reverse); AUROC is the mean over seeds +/- sd "
            "with its 95% CI (Rubin's rules). The caption names what every row shares; Details shows every column.</p>",
            '<div class="filters">']
    filters = _filters(rows)
    for key in filters:
        values = sorted({_filter_value(r, key) for r in rows}, key=lambda v: (len(v) if key == "size" else 0, v))
        if key == REAL_DATA_FILTER:  # by real training images, smallest first
            sizes = {_filter_value(r, key): r.get(key) for r in rows}
            values = sorted(values, key=lambda v: (sizes[v] is None, sizes[v].order if sizes[v] is not None else ()))
        options = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
        out.append(f'<label>{_e(key)}<select data-filter="{_e(key)}" id="filter-{_e(key)}">'
                   f'<option value="">all</option>{options}</select></label>')
    out.append('<span id="row-count"></span></div>')
    out += _main_table(rows, columns, filters) + list(sections or [])
    return _page_end(out, plots, notes, js)


def _page_end(out: list[str], plots: list[dict], notes: list[str], js: str) -> str:
    """Plots, notes and the script after the tables."""
    if plots:
        out.append("<h2>Plots</h2>")
        for p in plots:
            out.append(f'<figure><a href="{_href(p["svg"])}"><img src="{_href(p["png"])}" alt="{_e(p["title"])}">'
                       f'</a><figcaption>{_e(p["title"])} (<a href="{_href(p["svg"])}">SVG</a>)</figcaption></figure>')
    if notes:
        out += ["<h2>Notes</h2>", '<ul class="notes">'] + [f"<li>{_e(n)}</li>" for n in notes] + ["</ul>"]
    out += [f"<script>{js}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def _main_table(rows: list[dict], columns: list[DisplayColumn], filters: tuple[str, ...]) -> list[str]:
    """The sortable table (table_html's conventions): key columns first, constant settings in the
    caption, the rest behind the details toggle; one tbody per protocol group, which the page's
    script sorts within; the contact sheet and record links are details too."""
    columns, details, constant = arrange(rows, columns)
    out = legend(r.get("reference") for r in rows) + toggle(len(details) + 2)
    out += ['<div class="table-wrap">', '<table id="leaderboard">']
    out += [f"<caption>{_e(constant)}</caption>"] if constant else []
    out.append("<thead><tr>")
    numeric_columns = [_numeric(c, rows) for c in columns]
    for c, numeric in zip(columns, numeric_columns):
        first = "descending" if c.column.higher_is_better else "ascending"
        klass = DETAIL if c.id in details else ("headline" if c.id == layout.HEADLINE else "")
        out.append(f'<th scope="col"{f" class={chr(34)}{klass}{chr(34)}" if klass else ""} tabindex="0" '
                   f'data-col="{_e(c.id)}" data-type="{"number" if numeric else "text"}" data-first="{first}">'
                   f"{_e(c.header)}</th>")
    out += [f'<th scope="col" class="{DETAIL}" tabindex="0" data-col="contact_sheet" data-type="text" '
            'data-first="ascending">Contact sheet</th>',
            f'<th scope="col" class="{DETAIL}" tabindex="0" data-col="records" data-type="text" '
            'data-first="ascending">Records</th>', "</tr></thead>"]
    for start, end in layout.groups(rows):
        out.append('<tbody class="group">' + group_head(layout.group_heading(rows, rows[start]), len(columns) + 2))
        out += [_html_row(i, rows[i], columns, filters, numeric_columns, details) for i in range(start, end)]
        out.append("</tbody>")
    return out + ["</table></div>"]


def _filters(rows: list[dict]) -> tuple[str, ...]:
    return FILTERS + ((REAL_DATA_FILTER,) if any(r.get(REAL_DATA_FILTER) is not None for r in rows) else ())


def _numeric(column: DisplayColumn, rows: list[dict]) -> bool:
    """Sorted as numbers: a column with a number format, or one of real-data sizes (by real images)."""
    return column.column.format != "text" or any(isinstance(column.value(r), RealDataSize) for r in rows)


def _filter_value(row: dict, key: str) -> str:
    return "-" if row.get(key) is None else str(row[key])


def _html_row(index: int, row: dict, columns: list[DisplayColumn], filters: tuple[str, ...],
              numeric_columns: list[bool], details: set[str]) -> str:
    status = row["status"]
    cls = "status-ok" if status == "ok" else ("status-failed" if status.startswith("failed") else "status-warn")
    role = row.get("reference")  # ceiling / floor / baseline: marked by a class and a badge, not colour alone
    cls += f" ref ref-{role}" if role else ""
    attrs = "".join(f' data-f-{key}="{_e(_filter_value(row, key))}"' for key in filters)
    attrs += f' data-reference="{_e(role)}"' if role else ""
    cells = []
    for c, numeric in zip(columns, numeric_columns):
        value = c.value(row)
        text = format_value(c.column.format, value).replace(" +/- ", " \u00b1 ")
        key = sort_value(value)
        if numeric:  # a number or nothing: the page sorts this column with parseFloat
            data = repr(key) if isinstance(key, float) else ""
        else:
            data = "" if key is None else str(key)
        klass = "num" if numeric else ("status" if c.column.source == "row.status" else "")
        klass = f"{klass} {DETAIL}".strip() if c.id in details else klass
        shown = html_links(_e(text), row) if c.column.source == "row.generator" else _e(text)  # its card
        shown += badge(role) if c.column.source == "row.generator" else ""
        cells.append(f'<td{f" class={chr(34)}{klass}{chr(34)}" if klass else ""} data-value="{_e(data)}">'
                     f"{shown}</td>")
    assets = row.get("assets") or {}
    sheet = assets.get("contact_sheet")
    if sheet:
        cells.append(f'<td class="sheet {DETAIL}" data-value="{_e(sheet)}"><a href="{_href(sheet)}">'
                     f'<img src="{_href(sheet)}" alt="contact sheet of {_e(row["generator"])}"></a>'
                     + (f' <a href="{_href(assets["worst_pairs"])}">worst pairs</a>'
                        if assets.get("worst_pairs") else "") + "</td>")
    else:
        cells.append(f'<td class="sheet {DETAIL}" data-value="">-</td>')
    links = " ".join(f'<a href="{_href("records/" + p)}">{_e(_seed_name(p))}</a>' for p in row["records"])
    first = row["records"][0] if row["records"] else ""
    cells.append(f'<td class="records {DETAIL}" data-value="{_e(first)}">{links}</td>')
    return f'<tr class="{cls}" data-order="{index}"{attrs}>' + "".join(cells) + "</tr>"


def _seed_name(path: str) -> str:
    """``seed3`` for ``.../<protocol>__..__seed3__<context>.json``; else the file name."""
    name = path.rsplit("/", 1)[-1]
    parts = [p for p in name.split("__") if p.startswith("seed")]
    return parts[-1] if parts else name
