"""The external-validity and subgroup sections of a leaderboard: ``external.md`` and its part of
``index.html``, and the subgroup figure.

Written only when a record has a transfer section (a spec with ``external:`` test sets) or a
subgroup report (``evaluation: {subgroups: [...]}``). Per external test set: the transfer table
(internal and external AUROC, transfer gap, gap vs real-only, utility between that set's own
floor and ceiling), the set's floor and ceiling, Kendall's tau of the rankings with the rank
changes, and a plain reading. Per test set, field and metric: the subgroup table with "too few"
where the minimum counts withhold a value. Strings only, except :func:`write_subgroup_plot`.
"""

from __future__ import annotations

from pathlib import Path

FILE = "external.md"
#: the page's headline of an external table: what survives on the other hospitals' images
EXTERNAL_HEADLINE = "External AUROC [95% CI]"
PLOT = "subgroups"
INTRO = ("How much of each model's AUROC survives a test set from other hospitals, and for whom it works. "
         "Transfer gap = external - internal AUROC (same classifier); gap vs real-only = that gap minus "
         "real-only's at the same seeds, from the same bootstrap resamples (positive: the synthetic data "
         "narrows the generalisation gap). Every external number is read against that set's own floor "
         "(noise) and ceiling (real), never 0.5. Seeds pooled with Rubin's rules; 95% intervals.")
SUBGROUP_INTRO = ("Per subgroup of each test set: the metric with its patient-level bootstrap interval (seeds "
                  "pooled), at the operating threshold chosen on the tuning data for the rates. \"too few\": "
                  "the group has fewer positives or negatives than the stated minimum, so no number is shown.")


def sections(records: list[dict], predictions, *, n_resamples: int = 1000, cards_of=None) -> dict:
    """{"external": [...], "subgroups": [...]} analysed from ``records`` (empty lists: no section).
    ``cards_of(records)``: the card paths a row's generator cell links to (cxrbench.cards.card_finder)."""
    from cxrbench.external_validity import external_groups, plain_reading, rankings, transfer_rows
    from cxrbench.subgroup_summary import subgroup_tables

    ext = []
    for g in external_groups(records):
        rows = transfer_rows(g, cards_of)
        ranks = rankings(g, predictions, n_resamples=n_resamples)
        ext.append({"group": g, "rows": rows, "rankings": ranks, "reading": plain_reading(g, rows, ranks)})
    return {"external": ext, "subgroups": subgroup_tables(records, cards_of)}


def _heading(group: dict) -> str:
    dataset, size, classifier, schedule, real = group["key"]
    extra = f", real data {real}" if real is not None else ""
    return (f"{group['external']} (trained on {dataset}, {size} px, {classifier} {schedule}{extra}; internal: "
            f"{group['internal']})")


def _refs(entry: dict) -> list[str]:
    out = []
    pairs = sorted({(r["protocol"], r["ratio"], r["floor"], r["ceiling"]) for r in entry["rows"]
                    if r["floor"] is not None or r["ceiling"] is not None}, key=lambda x: (str(x[0]), x[1] or 0))
    for protocol, ratio, floor, ceiling in pairs:
        where = protocol + (f" r = {ratio:g}" if ratio else "")
        out.append(f"{where}: floor (noise) {_num(floor)}, ceiling (real) {_num(ceiling)} on this set")
    return out


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _rank_lines(entry: dict) -> list[str]:
    out = []
    for k in entry["rankings"]:
        where = k["protocol"] + (f" r = {k['ratio']:g}" if k["ratio"] else "")
        if k.get("tau") is None:
            out.append(f"{where}: {k.get('note', 'no ranking')}")
            continue
        ci = k.get("tau_ci")
        ranks = ", ".join(f"{m} {k['internal_rank'][m]:g}->{k['external_rank'][m]:g}" for m in
                          sorted(k["internal_rank"], key=lambda m: k["internal_rank"][m]))
        out.append(f"{where}: Kendall's tau {k['tau']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
                   + f" over {k['n_models']} generators, seeds {','.join(str(s) for s in k['seeds'])} "
                   f"({k['agreement'] or 'undetermined'}); rank internal->external: {ranks}")
    return out


def render_markdown(data: dict, plot: dict | None) -> str:
    from tabulate import tabulate

    from cxrbench.cards import markdown_generator_links as linked
    from cxrbench.external_validity import TABLE_HEADERS, table_rows
    from cxrbench.subgroup_summary import METRICS, headers
    from cxrbench.subgroup_summary import plain_reading as subgroup_reading
    from cxrbench.subgroup_summary import table_rows as subgroup_rows

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["# cxrbench external validity and subgroups", ""]
    if data["external"]:
        lines += ["## External test sets", "", INTRO, ""]
    for entry in data["external"]:
        lines += [f"### {cell(_heading(entry['group']))}", "",
                  tabulate(linked([[cell(v) for v in r] for r in table_rows(entry["rows"])], entry["rows"]),
                           headers=TABLE_HEADERS, tablefmt="github", disable_numparse=True), ""]
        lines += [f"- {cell(x)}" for x in _refs(entry) + _rank_lines(entry)]
        lines += [""] + [f"- {cell(x)}" for x in entry["reading"]] + [""]
    if data["subgroups"]:
        lines += ["## Subgroups", "", SUBGROUP_INTRO, ""]
        if plot:
            lines += [f"![{plot['title']}]({plot['png']}) ([SVG]({plot['svg']}))", ""]
    for t in data["subgroups"]:
        lines += [f"### {cell(t['test_set'])}: {cell(METRICS[t['metric']])} of {cell(t['label'])} by {cell(t['field'])}",
                  "", tabulate(linked([[cell(v) for v in r] for r in subgroup_rows(t)], t["rows"]),
                               headers=[cell(h) for h in headers(t)], tablefmt="github", disable_numparse=True), ""]
        lines += [f"- {cell(x)}" for x in subgroup_reading(t)] + [""]
    return "\n".join(lines).rstrip() + "\n"


def render_html(data: dict) -> list[str]:
    """The page's external-validity and subgroup sections, as lines (every value escaped)."""
    from cxrbench.external_validity import TABLE_HEADERS, table_rows
    from cxrbench.leaderboard.render import _e
    from cxrbench.leaderboard.table_html import role_of, section_table
    from cxrbench.subgroup_summary import METRICS, headers
    from cxrbench.subgroup_summary import plain_reading as subgroup_reading
    from cxrbench.subgroup_summary import table_rows as subgroup_rows

    def bullets(items):
        return ['<ul class="notes">'] + [f"<li>{_e(x)}</li>" for x in items] + ["</ul>"] if items else []

    out = []
    if data["external"]:
        out += ['<h2 id="external">External test sets</h2>', f"<p>{_e(INTRO)} Also in <a href=\"{FILE}\">{FILE}</a>.</p>"]
    for entry in data["external"]:
        roles = [role_of(r["protocol"], r["generator"], r["plugin"]) for r in entry["rows"]]
        out += [f"<h3>{_e(_heading(entry['group']))}</h3>"]
        out += section_table(TABLE_HEADERS, table_rows(entry["rows"]), cls="external",
                             key=[h for h in TABLE_HEADERS if h != "Seeds"], headline=EXTERNAL_HEADLINE, roles=roles,
                             linked=entry["rows"])
        out += bullets(_refs(entry) + _rank_lines(entry)) + bullets(entry["reading"])
    if data["subgroups"]:
        out += ['<h2 id="subgroups">Subgroups</h2>', f"<p>{_e(SUBGROUP_INTRO)}</p>"]
    for t in data["subgroups"]:
        out += [f"<h3>{_e(t['test_set'])}: {_e(METRICS[t['metric']])} of {_e(t['label'])} by {_e(t['field'])}</h3>"]
        head = headers(t)  # every group's metric is key; the first group's is the headline
        out += section_table(head, subgroup_rows(t), cls="subgroups", key=[h for h in head if h != "Seeds"],
                             headline=head[4], roles=[role_of(r["protocol"], r["generator"]) for r in t["rows"]],
                             linked=t["rows"])
        out += bullets(subgroup_reading(t))
    return out


def write_subgroup_plot(tables: list[dict], out_dir: Path) -> dict | None:
    """``subgroups.png`` / ``.svg``: per (test set, field) with AUROC values (else the FNR), each
    generator row's value per group as points with its interval, real-only in black, so a
    generator's subgroup profile reads beside real-only's. None without a table."""
    import matplotlib

    from cxrbench.leaderboard.plots import _RC, DPI, _plain, save_figure

    panels = _panels(tables)
    if not panels:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    title = "Subgroups: each model's metric per group (95% CI), real-only in black"
    out_dir = Path(out_dir)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(min(4.2 * len(panels) + 1.0, 22.0), 5.0), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        handles = {}
        for ax, t in zip(axes, panels):
            groups = list(t["groups"])
            rows = [r for r in t["rows"] if any(isinstance(v, dict) for v in r["values"].values())]
            width = 0.8 / max(1, len(rows))
            for i, r in enumerate(rows):
                base = str(r["protocol"]).startswith("real-only")
                label = _plain(r["generator"] if base or r["protocol"] is None else
                               f"{r['generator']}, {r['protocol']}" + (f" r={r['ratio']:g}" if r["ratio"] else ""))
                label = "real-only" if base else label
                xs, ys, lo, hi = [], [], [], []
                for j, g in enumerate(groups):
                    v = r["values"].get(g)
                    if isinstance(v, dict) and v.get("mean") is not None:
                        xs.append(j - 0.4 + width * (i + 0.5))
                        ys.append(v["mean"])
                        ci = v.get("ci") or [v["mean"], v["mean"]]
                        lo.append(v["mean"] - ci[0])
                        hi.append(ci[1] - v["mean"])
                if xs:
                    h = ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", markersize=4, capsize=2,
                                    color="0.0" if base else f"C{i % 10}", zorder=4 if base else 2)
                    handles.setdefault(label, h)
            ax.set_xticks(range(len(groups)), [_plain(g) for g in groups], rotation=30, fontsize=7, ha="right")
            ax.set_title(_plain(f"{t['test_set']} / {t['field']}"), fontsize=8)
            ax.set_ylabel({"auroc": "AUROC", "fnr": "false-negative rate", "fpr": "false-positive rate"}[t["metric"]])
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=3 if len(handles) > 4 else 1, fontsize=7)
        fig.suptitle(title, fontsize=11)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_figure(fig, out_dir, PLOT)
    rel = out_dir.name
    return {"name": PLOT, "title": title, "png": f"{rel}/{PLOT}.png", "svg": f"{rel}/{PLOT}.svg"}


def _panels(tables: list[dict]) -> list[dict]:
    """AUROC tables, plus the FNR table of a (test set, label, field) that has no AUROC one."""
    with_auroc = {(t["test_set"], t["label"], t["field"]) for t in tables if t["metric"] == "auroc"}
    return [t for t in tables if t["metric"] == "auroc" or
            (t["metric"] == "fnr" and (t["test_set"], t["label"], t["field"]) not in with_auroc)][:6]
