"""Leaderboard figures (matplotlib, Agg canvas, no pyplot state), each as PNG and SVG.

* ``auroc-vs-ratio``: AUROC against the supplementation ratio r per generator, with the 95% CI
  as a band (Khosravi et al.'s figure), from ``supplemented*`` rows; a matching real-only row is
  drawn at r = 0. One panel per dataset / size / classifier / protocol / schedule / test set and
  real-data size (the spec's ``real_data:``; smallest first).
* ``fd-vs-auroc``: domain FD against AUROC (CI as error bars), one point per row with both.
* ``cost-vs-auroc``: generation seconds per image against AUROC.
* ``learning-curve`` (:mod:`cxrbench.leaderboard.curve_plot`, only with the real-data axis): AUROC
  against the number of real training images.

Both scatters draw each group's references as horizontal lines (the ``real`` row: the ceiling;
``noise``: the floor; real-only for supplemented rows), since a generator's AUROC means little
without them; a floor far below every point is named under the axes instead of drawn. Each point
is named beside it, placed so that no two names overprint (:mod:`cxrbench.leaderboard.labels`).

A figure without data is not written; :func:`write_plots` returns a note saying why instead.
Files are byte-for-byte reproducible: fixed size and dpi, a fixed SVG hash salt, no dates or
software tags in the metadata, everything drawn in the rows' (deterministic) order.
"""

from __future__ import annotations

import re
from pathlib import Path

from cxrbench.leaderboard.labels import annotate_apart

FIGSIZE = (7.0, 5.0)
DPI = 100
_RC = {"svg.hashsalt": "cxrbench-leaderboard", "svg.fonttype": "path", "font.family": "DejaVu Sans",
       "path.simplify": True, "axes.grid": True, "grid.alpha": 0.3}
#: AUROC lies in [0, 1]; a few-seed t interval can reach past it and would flatten the plot
AUROC_LIMITS = (-0.02, 1.02)


def auroc_limits(values) -> tuple[float, float]:
    """The y range of an AUROC plot: the data's (CI ends included) padded by 0.02 and widened to a
    0.05 grid, inside :data:`AUROC_LIMITS`, so differences of 0.01-0.05 between generators stay
    visible instead of being pressed against 0.9 on a 0-1 axis."""
    import math

    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return AUROC_LIMITS
    lo = max(AUROC_LIMITS[0], math.floor((min(vals) - 0.02) / 0.05) * 0.05)
    hi = min(AUROC_LIMITS[1], math.ceil((max(vals) + 0.02) / 0.05) * 0.05)
    return (lo, hi) if hi - lo >= 0.1 else (max(AUROC_LIMITS[0], hi - 0.1), hi)
_PNG_META = {"Software": None}
_SVG_META = {"Date": None, "Creator": None}
#: matplotlib names a clip path "p" + 10 hex digits of a hash of its rectangle's full-precision
#: floats, whose last bits follow the CPU (numpy's SIMD sums): the same figure got other ids on
#: another machine. :func:`save_figure` renumbers them in order of first use.
_CLIP_ID = re.compile(r'(?<=id=")p[0-9a-f]{10}(?=")|(?<=url\(#)p[0-9a-f]{10}(?=\))')


def save_figure(fig, out_dir: Path, name: str) -> None:
    """``name``.png and ``name``.svg in ``out_dir``, byte for byte the same on every machine that
    draws the same figure (no dates or versions; clip-path ids numbered, not hashed)."""
    fig.savefig(out_dir / f"{name}.png", dpi=DPI, metadata=_PNG_META)
    svg = out_dir / f"{name}.svg"
    fig.savefig(svg, metadata=_SVG_META)
    ids: dict[str, str] = {}
    text = _CLIP_ID.sub(lambda m: ids.setdefault(m.group(0), f"clip{len(ids)}"), svg.read_text())
    svg.write_text(text)
#: row fields that keep comparisons apart (a panel / a series each); real_data is None without
#: the real-data axis, and a None is left out of every title and label
_CONTEXT = ("dataset", "size", "classifier", "schedule", "real_data", "test_set")


def write_plots(rows: list[dict], out_dir: Path, fd_column: str = "domain_fd",
                cost_column: str = "seconds_per_image") -> tuple[list[dict], list[str]]:
    """Write the figures into ``out_dir``; return ([{name, title, png, svg}], notes). Paths in
    the result are relative to ``out_dir``'s parent (the leaderboard folder)."""
    import matplotlib

    out_dir = Path(out_dir)
    written, notes = [], []
    with matplotlib.rc_context(_RC):
        for name, title, draw in (
            ("auroc-vs-ratio", "AUROC vs supplementation ratio", _auroc_vs_ratio),
            ("fd-vs-auroc", "Domain FD vs AUROC", lambda fig, rows: _scatter(fig, rows, fd_column, "domain FD")),
            ("cost-vs-auroc", "Generation cost vs AUROC",
             lambda fig, rows: _scatter(fig, rows, cost_column, "seconds per image")),
        ):
            fig = _figure()
            why_not = draw(fig, rows)
            if why_not:
                notes.append(f"plot {name} skipped: {why_not}")
                continue
            fig.suptitle(title)
            out_dir.mkdir(parents=True, exist_ok=True)
            save_figure(fig, out_dir, name)
            rel = out_dir.name
            written.append({"name": name, "title": title, "png": f"{rel}/{name}.png", "svg": f"{rel}/{name}.svg"})
    return written, notes


def _plain(value) -> str:
    """Plugin-given text as literal text: an unescaped ``$`` pair would start matplotlib's mathtext."""
    return str(value).replace("$", r"\$")


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _auroc(row: dict):
    a = ((row.get("aggregate") or {}).get("metrics") or {}).get("auroc")
    return a if a and a.get("mean") is not None else None


def _context(row: dict) -> tuple:
    return tuple(row.get(k) for k in _CONTEXT)


def _auroc_vs_ratio(fig, rows: list[dict]) -> str | None:
    supplemented = [r for r in rows if str(r.get("protocol") or "").startswith("supplemented") and _auroc(r)]
    if not supplemented:
        return "no supplemented rows with an AUROC (run a `supplemented` protocol with several ratios)"
    panels: dict[tuple, list[dict]] = {}
    for r in supplemented:
        panels.setdefault(_context(r) + (r["protocol"],), []).append(r)
    at = _CONTEXT.index("real_data")
    # real-data sizes (None without the axis) smallest first, then as text
    keys = sorted(panels, key=lambda k: (k[at].order if k[at] is not None else (), tuple(str(x) for x in k)))
    sized = any(k[at] is not None for k in keys)
    if sized:  # a panel per size: room for each, and the size on a line of its own in the title
        fig.set_size_inches(max(FIGSIZE[0], 4.5 * len(keys)), FIGSIZE[1])
    axes = fig.subplots(1, len(keys), squeeze=False, sharey=True)[0]
    shown = []
    for ax, key in zip(axes, keys):
        baseline = next((r for r in rows if r.get("protocol", "").startswith("real-only") and _auroc(r)
                         and _context(r) == key[:-1]), None)
        series: dict[tuple, list[dict]] = {}
        for r in panels[key]:
            series.setdefault((r["generator"], r["chain"]), []).append(r)
        for (label, chain), members in sorted(series.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            pts = sorted(((float(r["ratio"]), _auroc(r)) for r in members), key=lambda p: p[0])
            if baseline:
                pts.insert(0, (0.0, _auroc(baseline)))
            x = [p[0] for p in pts]
            y = [p[1]["mean"] for p in pts]
            lo = [(p[1].get("ci") or [p[1]["mean"]] * 2)[0] for p in pts]
            hi = [(p[1].get("ci") or [p[1]["mean"]] * 2)[1] for p in pts]
            name = label if chain in (None, "-") else f"{label} ({chain})"
            shown += y + lo + hi
            (line,) = ax.plot(x, y, marker="o", label=_plain(name))
            ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color(), linewidth=0)
        ax.set_xlabel("synthetic-to-real ratio r" + (" (r = 0: real-only)" if baseline else ""))
        title = " / ".join(str(k) for i, k in enumerate(key) if k is not None and not (sized and i == at))
        ax.set_title(_plain(title + (f"\nreal data: {key[at]}" if sized else "")), fontsize=8)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("AUROC (mean over seeds, 95% CI)")
    axes[0].set_ylim(*auroc_limits(shown))
    return None


def _references(rows: list[dict], key: tuple) -> list[tuple[str, float]]:
    """The reference AUROCs a group of points (``key``: context + protocol) is read against: the
    rows the builder marks as ceiling and floor (``real`` and ``noise``) of the same protocol,
    or, for a supplemented group, the real-only baseline it supplements."""
    context, protocol = key[:-1], str(key[-1])
    wanted = ("baseline",) if protocol.startswith("supplemented") else ("ceiling", "floor")
    refs = [(_REFERENCE_NAMES[r["reference"]], _auroc(r)["mean"])
            for r in rows if _context(r) == context and _auroc(r) and r.get("reference") in wanted
            and (r["reference"] == "baseline" or r.get("protocol") == protocol)]
    return sorted(set(refs), key=lambda ref: -ref[1])


#: how each kind of reference row is named in the legend
_REFERENCE_NAMES = {"ceiling": "real (ceiling)", "floor": "noise (floor)", "baseline": "real-only"}


def _point_label(row: dict) -> str:
    ratio = row.get("ratio")
    extra = f" r={float(ratio):g}" if str(row.get("protocol")).startswith("supplemented") and ratio is not None else ""
    return _plain(f"{row['generator']}{extra}")


def _scatter(fig, rows: list[dict], column: str, xlabel: str) -> str | None:
    pts = []
    for r in rows:
        x, a = (r.get("values") or {}).get(column), _auroc(r)
        if isinstance(x, (int, float)) and not isinstance(x, bool) and a:
            pts.append((float(x), a, r))
    if not pts:
        return f"no row has both {column!r} and an AUROC (older records have no quality/cost report)"
    ax = fig.subplots()
    groups: dict[tuple, list] = {}
    for p in pts:
        groups.setdefault(_context(p[2]) + (p[2]["protocol"],), []).append(p)
    xs = [p[0] for p in pts]
    if min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")  # FD and seconds per image span orders of magnitude between generators
    shown = [v for p in pts for v in (p[1]["mean"], *(p[1].get("ci") or []))]
    lines, labels = [], []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        g = groups[key]
        ys = [p[1]["mean"] for p in g]
        err = [[p[1]["mean"] - (p[1].get("ci") or [p[1]["mean"]])[0] for p in g],
               [(p[1].get("ci") or [0, p[1]["mean"]])[1] - p[1]["mean"] for p in g]]
        bars = ax.errorbar([p[0] for p in g], ys, yerr=err, fmt="o", capsize=3,
                           label=_plain(" / ".join(str(k) for k in key if k is not None)))
        color = bars.lines[0].get_color()
        labels += [(p[0], p[1]["mean"], _point_label(p[2]), color) for p in g]
        lines += [(name, y, color, key[-1]) for name, y in _references(rows, key)]
    lo, hi = auroc_limits(shown + [y for _, y, _, _ in lines if y >= min(shown) - 0.1])
    ax.set_ylim(lo, hi)
    below, drawn = [], []
    for name, y, color, protocol in lines:
        if y < lo:  # the noise floor far below every generator: named, not drawn (it would flatten the rest)
            below.append(f"{name} {y:.3f} ({protocol})")
            continue
        # in the legend, not beside the line: ceilings of different groups lie within 0.01 of each other
        ax.axhline(y, color=color, linestyle=":" if "floor" in name else "--", linewidth=1,
                   label=_plain(f"{name} {y:.3f}"))
        drawn.append(y)
    if below:
        ax.annotate(_plain("below the axis: " + ", ".join(below)), xy=(1, 0), xycoords="axes fraction",
                    xytext=(-3, 3), textcoords="offset points", ha="right", va="bottom", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("AUROC (mean over seeds, 95% CI)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=7)
    # last: it measures the final layout; names stay off error bars and reference lines where there is room
    annotate_apart(ax, labels, [(p[0], *(p[1].get("ci") or [p[1]["mean"]] * 2)) for p in pts], drawn)
    return None
