"""The learning-curve figure: AUROC against the number of real training images.

One panel per curve group of :func:`cxrbench.learning_curves.learning_curves` (dataset, image
size, classifier, schedule, context, test set) and *view* within it: supplemented at each ratio
r, and synthetic-only. Each panel reads one question (does r x this generator's images beat
real-only, and the same number of noise images?), so a grid of generators, ratios and
protocols never piles a dozen overlapping bands into one axis. Every panel repeats the group's
real-only curve (black) - the curve each other one is read against - and shares the AUROC
axis with the others. x: the real training images a real-data size gave, on a log axis with a
tick at every measured size. A generator keeps its colour in every panel; the noise control
(and the noise floor) is grey, `real` (the ceiling) keeps its own colour. Every curve carries its
95% interval (seeds pooled with Rubin's rules) as a band. A group with only real-only points
(the convergence check's longer schedule) gets a single panel. Every size is scored on the
same full test set, which the title says.

The conventions of :mod:`cxrbench.leaderboard.plots`: Agg canvas, fixed size and dpi, a fixed
SVG hash salt, no dates or software tags, drawn in a fixed order: byte-identical on a rebuild.
"""

from __future__ import annotations

from pathlib import Path

from cxrbench.leaderboard.plots import _RC, DPI, FIGSIZE, _plain, auroc_limits, save_figure

NAME = "learning-curve"
TITLE = "Learning curves: AUROC vs real training images (same test set at every size)"
MAX_COLUMNS = 3
_GREY, _BLACK = "0.55", "0.0"


def write_curve_plot(groups: list[dict], out_dir: Path) -> dict | None:
    """Write ``learning-curve.png`` / ``.svg`` into ``out_dir``; None (nothing written) without
    a curve group. Returns {name, title, png, svg}, paths relative to ``out_dir``'s parent."""
    import matplotlib

    if not groups:
        return None
    out_dir = Path(out_dir)
    with matplotlib.rc_context(_RC):
        fig = _figure(len(panels(groups)))
        draw(fig, groups)
        fig.suptitle(TITLE, fontsize=11)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_figure(fig, out_dir, NAME)
    rel = out_dir.name
    return {"name": NAME, "title": TITLE, "png": f"{rel}/{NAME}.png", "svg": f"{rel}/{NAME}.svg"}


def _grid(n: int) -> tuple[int, int]:
    """(rows, columns): at most three panels side by side, so each stays readable."""
    cols = min(n, MAX_COLUMNS)
    return -(-n // cols), cols


def _figure(n_panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = _grid(n_panels)
    width = FIGSIZE[0] if cols == 1 else 4.6 * cols + 0.6
    fig = Figure(figsize=(width, 4.2 * rows + 0.6), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def view_title(protocol: str, ratio: float) -> str:
    """A panel's view: "supplemented.v1, r = 3" (real + 3 x synthetic) or "synthetic-only.v2"."""
    return f"{protocol}, r = {ratio:g}" if protocol.startswith("supplemented") else protocol


def panels(groups: list[dict]) -> list[tuple[dict, str, list[dict]]]:
    """(group, view title, the view's points) in drawing order: per group, its supplemented views
    by ratio, then the other protocols; one real-only panel for a group without other points."""
    out = []
    for group in groups:
        views = sorted({(p["protocol"], float(p["ratio"])) for p in group["points"]},
                       key=lambda v: (not v[0].startswith("supplemented"), v[0], v[1]))
        for protocol, ratio in views:
            pts = [p for p in group["points"] if p["protocol"] == protocol and float(p["ratio"]) == ratio]
            out.append((group, view_title(protocol, ratio), pts))
        if not views:
            out.append((group, "real-only", []))
    return out


def series_label(protocol: str, generator: str) -> str:
    """How a curve is named in its panel's legend: the reference curves say what they are."""
    if generator == "noise":
        return "noise (noise control)" if protocol.startswith("supplemented") else "noise (floor)"
    if generator == "real":
        return "real (ceiling)" if protocol.startswith("synthetic-only") else "real (own images again)"
    return generator


def _style(generator: str, colours: dict) -> dict:
    return {"color": _GREY if generator == "noise" else colours[generator], "linestyle": "-",
            "marker": "s" if generator in ("noise", "real") else "o"}


def _curve(ax, pts: list[dict], label: str, style: dict, shown: list) -> None:
    pts = sorted(pts, key=lambda p: p["n"])
    x = [p["n"] for p in pts]
    y = [p["auroc"] for p in pts]
    lo = [(p.get("ci") or [p["auroc"]] * 2)[0] for p in pts]
    hi = [(p.get("ci") or [p["auroc"]] * 2)[1] for p in pts]
    shown += y + lo + hi
    ax.plot(x, y, markersize=4, linewidth=1.5, label=_plain(label), **style)
    ax.fill_between(x, lo, hi, alpha=0.12, color=style["color"], linewidth=0)


def draw(fig, groups: list[dict]) -> None:
    """Draw a panel per (group, view) into ``fig``, each with its own legend."""
    from matplotlib.ticker import FixedLocator, NullLocator

    palette = [f"C{i}" for i in range(10)]
    generators = sorted({p["generator"] for g in groups for p in g["points"]} - {"noise"})
    colours = {name: palette[i % len(palette)] for i, name in enumerate(generators)}
    todo = panels(groups)
    rows, cols = _grid(len(todo))
    grid = fig.subplots(rows, cols, squeeze=False, sharey=True)
    axes = [ax for row in grid for ax in row]
    shown: list = []
    for ax, (group, view, pts) in zip(axes, todo):
        # real-only first and on top: the curve every other one in the panel is read against
        _curve(ax, group["real_only"], "real-only", {"color": _BLACK, "linestyle": "-", "marker": "o",
                                                     "zorder": 4}, shown)
        for generator in sorted({p["generator"] for p in pts}, key=lambda g: (g in ("noise", "real"), g)):
            mine = [p for p in pts if p["generator"] == generator]
            _curve(ax, mine, series_label(mine[0]["protocol"], generator), _style(generator, colours), shown)
        sizes = sorted({p["n"] for p in group["real_only"] + group["points"]})
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes], fontsize=7)
        if len(sizes) == 1:
            ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
        ax.set_xlabel("real training images (log scale)", fontsize=8)
        ax.set_title(_plain(f"{view}\n{group['dataset']} / {group['image_size']} px / {group['classifier']} / "
                            f"{group['schedule']} / {group['test_set']}"), fontsize=8)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(todo):]:
        ax.set_visible(False)
    for row in grid:
        row[0].set_ylabel("AUROC (mean over seeds, 95% CI)", fontsize=8)
    axes[0].set_ylim(*auroc_limits(shown))
