"""The learning-curve figure: AUROC against the number of real training images.

One panel per curve group of :func:`cxrbench.learning_curves.learning_curves` (dataset, image
size, classifier, schedule, context, test set), sharing the AUROC axis. x: the real training
images a real-data size gave, on a log axis with a tick at every measured size. The real-only
curve is black, each (protocol, generator, ratio) a curve of its own colour (one colour per
generator, one marker per ratio): supplemented solid, synthetic-only dashed, the noise control
(and the noise floor) grey. Every curve carries its 95% interval (seeds pooled with Rubin's
rules) as a band. Every size is scored on the same full test set, which the title says.

The conventions of :mod:`cxrbench.leaderboard.plots`: Agg canvas, fixed size and dpi, a fixed
SVG hash salt, no dates or software tags, drawn in a fixed order: byte-identical on a rebuild.
"""

from __future__ import annotations

from pathlib import Path

from cxrbench.leaderboard.plots import _PNG_META, _RC, _SVG_META, DPI, FIGSIZE, _plain, auroc_limits

NAME = "learning-curve"
TITLE = "Learning curves: AUROC vs real training images (same test set at every size)"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_GREY, _BLACK = "0.55", "0.0"


def write_curve_plot(groups: list[dict], out_dir: Path) -> dict | None:
    """Write ``learning-curve.png`` / ``.svg`` into ``out_dir``; None (nothing written) without
    a curve group. Returns {name, title, png, svg}, paths relative to ``out_dir``'s parent."""
    import matplotlib

    if not groups:
        return None
    out_dir = Path(out_dir)
    with matplotlib.rc_context(_RC):
        fig = _figure(len(groups))
        draw(fig, groups)
        fig.suptitle(TITLE, fontsize=11)
        out_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_dir / f"{NAME}.png", dpi=DPI, metadata=_PNG_META)
        fig.savefig(out_dir / f"{NAME}.svg", metadata=_SVG_META)
    rel = out_dir.name
    return {"name": NAME, "title": TITLE, "png": f"{rel}/{NAME}.png", "svg": f"{rel}/{NAME}.svg"}


def _figure(panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = FIGSIZE[0] if panels == 1 else min(4.5 * panels + 1.0, 22.0)
    fig = Figure(figsize=(width, FIGSIZE[1] + 1.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def series_label(protocol: str, generator: str, ratio: float) -> str:
    """How a curve is named in the legend: the reference curves say what they are."""
    role = ""
    if generator == "noise":
        role = " (noise control)" if protocol.startswith("supplemented") else " (floor)"
    elif generator == "real" and protocol.startswith("synthetic-only"):
        role = " (ceiling)"
    ratio_text = f" r={ratio:g}" if protocol.startswith("supplemented") else ""
    return f"{generator}{role}, {protocol}{ratio_text}"


def _style(protocol: str, generator: str, ratio: float, colours: dict, markers: dict) -> dict:
    dashed = protocol.startswith("synthetic-only")
    return {"color": _GREY if generator == "noise" else colours[generator],
            "linestyle": "--" if dashed else "-", "marker": markers[ratio]}


def draw(fig, groups: list[dict]) -> None:
    """Draw one panel per group into ``fig`` and the legend below them."""
    from matplotlib.ticker import FixedLocator, NullLocator

    palette = [f"C{i}" for i in range(10)]
    generators = sorted({p["generator"] for g in groups for p in g["points"]} - {"noise"})
    colours = {name: palette[i % len(palette)] for i, name in enumerate(generators)}
    ratios = sorted({float(p["ratio"]) for g in groups for p in g["points"]})
    markers = {r: _MARKERS[i % len(_MARKERS)] for i, r in enumerate(ratios)}
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    shown, handles = [], {}
    for ax, group in zip(axes, groups):
        # real-only drawn above the rest: the curve every other one is read against
        curves = [("real-only", {"color": _BLACK, "linestyle": "-", "marker": "o", "zorder": 4}, group["real_only"])]
        configs = sorted({(p["protocol"], p["generator"], float(p["ratio"])) for p in group["points"]})
        for config in configs:
            pts = [p for p in group["points"] if (p["protocol"], p["generator"], float(p["ratio"])) == config]
            curves.append((series_label(*config), _style(*config, colours, markers), pts))
        for label, style, pts in curves:
            if not pts:
                continue
            pts = sorted(pts, key=lambda p: p["n"])
            x = [p["n"] for p in pts]
            y = [p["auroc"] for p in pts]
            lo = [(p.get("ci") or [p["auroc"]] * 2)[0] for p in pts]
            hi = [(p.get("ci") or [p["auroc"]] * 2)[1] for p in pts]
            shown += y + lo + hi
            (line,) = ax.plot(x, y, markersize=4, linewidth=1.5, label=_plain(label), **style)
            ax.fill_between(x, lo, hi, alpha=0.12, color=style["color"], linewidth=0)
            handles.setdefault(_plain(label), line)
        sizes = sorted({p["n"] for p in group["real_only"] + group["points"]})
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes], fontsize=7)
        if len(sizes) == 1:
            ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
        ax.set_xlabel("real training images (log scale)")
        ax.set_title(_plain(f"{group['dataset']} / {group['image_size']} px / {group['classifier']} / "
                            f"{group['schedule']} / {group['test_set']}"), fontsize=8)
    axes[0].set_ylabel("AUROC (mean over seeds, 95% CI)")
    axes[0].set_ylim(*auroc_limits(shown))
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=2 if len(handles) > 3 else 1,
               fontsize=7)
