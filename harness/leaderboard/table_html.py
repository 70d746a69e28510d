"""The pieces every table of the page shares, and the page's static section tables (learning
curves, external sets, subgroups, segmentation) built from them.

Each table reads like the main one (:mod:`cxrbench.leaderboard.layout`): the key columns first,
with the headline metric among them (``th.headline``), so it sits inside a 1,280 px window;
settings equal in every row named once in the table's caption; every other column behind a
"Details" toggle: a native ``<details>`` right before the table, whose ``[open]`` state shows the
``.col-detail`` cells through the page's CSS alone (no script); rows grouped by protocol, one
``<tbody>`` per group with a heading row; reference rows (ceiling, floor, baseline, noise control)
carry a class, a ``data-reference`` attribute and a badge with the word, explained in a legend
line above the table, so they are marked by text, not by colour alone.

Strings only; every value goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from cxrbench.cards import html_links
from cxrbench.leaderboard.layout import REFERENCE_MEANING

DETAIL = "col-detail"


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def role_of(protocol, generator, plugin=None, *, supplemented_noise: str = "floor") -> str | None:
    """What a row of a section table is for: real-only is the ``baseline``; the plain ``real``
    generator the ``ceiling``, the plain ``noise`` generator the ``floor`` (``supplemented_noise``
    under a supplemented protocol: "control" where it is read as the noise control). ``plugin``,
    when known, keeps a relabelled variant (white noise under another label) a generator row."""
    protocol = str(protocol or "")
    if protocol.startswith("real-only"):
        return "baseline"
    name = generator if plugin is None or generator == plugin else None
    if name == "real":
        return "ceiling"
    if name == "noise":
        return supplemented_noise if protocol.startswith("supplemented") else "floor"
    return None


def badge(role: str | None) -> str:
    return f' <span class="badge badge-{_e(role)}">{_e(role)}</span>' if role else ""


def row_attrs(role: str | None) -> str:
    """The class and attribute of a reference row (nothing for any other row)."""
    return f' class="ref ref-{_e(role)}" data-reference="{_e(role)}"' if role else ""


def legend(roles) -> list[str]:
    """One line naming the kinds of reference row a table has (none: no line)."""
    roles = set(roles)
    present = [r for r in REFERENCE_MEANING if r in roles]
    if not present:
        return []
    parts = "; ".join(f"{badge(r).strip()} {_e(REFERENCE_MEANING[r])}" for r in present)
    return [f'<p class="legend">Reference rows: {parts}. Read every other row against them.</p>']


def toggle(hidden: int) -> list[str]:
    """The details toggle, put right before the table's wrapper (the CSS reads ``[open] +``)."""
    if not hidden:
        return []
    return [f'<details class="columns"><summary>Details: show the {hidden} other column{"s" if hidden > 1 else ""}'
            "</summary></details>"]


def group_head(text: str, colspan: int) -> str:
    return f'<tr class="group-head"><th scope="rowgroup" colspan="{colspan}">{_e(text)}</th></tr>'


def section_table(headers: list[str], rows: list[list], *, cls: str, key: list[str], headline: str,
                  roles: list[str | None], linked: list[Mapping] | None = None) -> list[str]:
    """A section's table as lines. ``key``: the headers shown first, in table order (the first
    is the protocol, the rows' group; the second the generator, which gets the badge);
    ``headline``: the metric header; ``roles``: each row's reference role or None; ``linked``:
    the row dicts the lines were made from, whose ``cards`` the generator cell links to, as in the
    main table (cxrbench.cards.html_links). A column not in ``key`` that reads the same in every
    row is named in the caption (and kept under details)."""
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    shown = [i for i, h in enumerate(headers) if h in key]
    details = [i for i in range(len(headers)) if i not in shown]
    constants = [i for i in details if cells and len({line[i] for line in cells}) == 1 and cells[0][i] not in ("", "-")]
    order = shown + details
    gen = shown[1] if len(shown) > 1 else None
    out = legend(roles) + toggle(len(details)) + [f'<div class="table-wrap"><table class="{_e(cls)}">']
    if constants:
        out.append("<caption>" + _e(" · ".join(f"{headers[i]} {cells[0][i]}" for i in constants)) + "</caption>")
    out.append("<thead><tr>" + "".join(
        f'<th scope="col"{_cls(i in details, headers[i] == headline)}>{_e(headers[i])}</th>' for i in order)
        + "</tr></thead>")
    sources = linked if linked is not None else [{}] * len(cells)  # {}: no cards, the cell stays text
    start = 0
    while start < len(cells):  # one tbody per run of rows of the same protocol
        end = start + 1
        while end < len(cells) and cells[end][shown[0]] == cells[start][shown[0]]:
            end += 1
        out.append('<tbody class="group">' + group_head(cells[start][shown[0]], len(order)))
        for line, role, source in zip(cells[start:end], roles[start:end], sources[start:end]):
            out.append(f"<tr{row_attrs(role)}>" + "".join(
                f"<td{_cls(i in details, False)}>"
                + (html_links(_e(line[i]), source) + badge(role) if i == gen else _e(line[i])) + "</td>"
                for i in order) + "</tr>")
        out.append("</tbody>")
        start = end
    return out + ["</table></div>"]


def _cls(detail: bool, headline: bool) -> str:
    names = ([DETAIL] if detail else []) + (["headline"] if headline else [])
    return f' class="{" ".join(names)}"' if names else ""

