"""Names beside scatter points that never overprint one another: a deterministic greedy placement.

Points of equal cost or FD otherwise stack their names into one unreadable word. Each name goes
to the first free candidate place: right of its point and a little above (the default), right
and below, left above, left below, then the same four one name-height further up and down, and
so on to the edges of the axes. "Free": inside the axes, overlapping no name placed before it
and covering no point's marker (nor, where there is room, an error bar or a reference line).
Names are placed from the top of the plot down (then left to right, then by their order), so
the result depends only on the inputs. When nothing is free (more names
than room), a place overlapping no other name is taken even if it covers a marker, and only when
even that is impossible the least-overlapping place. A name that had to move away from its point
gets a thin leader line back to it (see :func:`annotate_apart`).

Geometry is in display units (pixels, y up); a box is ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

Box = tuple[float, float, float, float]

#: pixels between a point and its name, and between stacked names
GAP = 3.0
#: half the size of the box a marker occupies (6 pt markers at 100 dpi: about 8 px across)
MARKER_HALF = 4.5


def overlap(a: Box, b: Box) -> float:
    """The area two boxes share (0 when they only touch)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def inside(box: Box, bounds: Box) -> bool:
    return box[0] >= bounds[0] and box[1] >= bounds[1] and box[2] <= bounds[2] and box[3] <= bounds[3]


def candidates(anchor: tuple[float, float], size: tuple[float, float], bounds: Box) -> list[Box]:
    """Places for a name of ``size`` beside ``anchor``, most natural first (see the module doc)."""
    (x, y), (w, h) = anchor, size
    right, left = x + GAP, x - GAP - w
    above, below, step = y + 1.0, y - 1.0 - h, h + 1.0
    out: list[Box] = []
    k = 0
    while True:
        up, down = above + k * step, below - k * step
        if up > bounds[3] and down + h < bounds[1]:  # both directions left the axes: nothing further
            break
        for x0, y0 in ((right, up), (right, down), (left, up), (left, down)):
            out.append((x0, y0, x0 + w, y0 + h))
        k += 1
    return out


def place(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], bounds: Box,
          obstacles: list[Box] = ()) -> list[Box]:
    """The box of each name (in the order of ``anchors``): no two overlap whenever the axes have
    room for them. ``bounds``: the axes. Every anchor's marker is an obstacle; ``obstacles`` (error
    bars, reference lines) are avoided where a place free of them exists, second to the markers."""
    markers = [(x - MARKER_HALF, y - MARKER_HALF, x + MARKER_HALF, y + MARKER_HALF) for x, y in anchors]
    order = sorted(range(len(anchors)), key=lambda i: (-anchors[i][1], anchors[i][0], i))
    placed: dict[int, Box] = {}
    for i in order:
        options = candidates(anchors[i], sizes[i], bounds) or [_default(anchors[i], sizes[i])]

        def clashes(box: Box) -> float:
            return sum(overlap(box, other) for other in placed.values())

        def hits(box: Box, things) -> bool:
            return any(overlap(box, t) > 0 for t in things)

        others = markers[:i] + markers[i + 1:]  # its own point: the candidates sit beside it by design
        free = [b for b in options if inside(b, bounds) and not clashes(b)]
        # the most natural free place that covers nothing, else no other marker, else any free one
        placed[i] = (next((b for b in free if not hits(b, others) and not hits(b, obstacles)), None)
                     or next((b for b in free if not hits(b, others)), None)
                     or (free[0] if free else min(options, key=lambda b: (clashes(b), not inside(b, bounds)))))
    return [placed[i] for i in range(len(anchors))]


def _default(anchor: tuple[float, float], size: tuple[float, float]) -> Box:
    x0, y0 = anchor[0] + GAP, anchor[1] + 1.0
    return (x0, y0, x0 + size[0], y0 + size[1])


def annotate_apart(ax, labels: list[tuple[float, float, str, str]], bars: list[tuple[float, float, float]] = (),
                   hlines: list[float] = (), fontsize: float = 7) -> None:
    """Name each point ``(x, y, text, colour)`` (data coordinates) of ``ax`` beside it without
    overprinting. Where there is room, names also stay off ``bars`` (error bars ``(x, low, high)``)
    and ``hlines`` (reference lines at y, across the axes). The figure's layout must be final
    (legend added, limits set): positions are measured on it. The names are left out of the
    layout, so placing them cannot move the axes."""
    if not labels:
        return
    fig = ax.figure
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    sizes = []
    for _, _, text, _ in labels:  # the real extent of each name in this font, not an estimate
        probe = fig.text(0, 0, text, fontsize=fontsize)  # figure coordinates: valid on a log axis too
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
        probe.remove()
    anchors = [tuple(ax.transData.transform((x, y))) for x, y, _, _ in labels]
    bb = ax.bbox
    blocked = []  # in pixels, 1.5 px wider each way than the line drawn
    for x, low, high in bars:
        (a, b), (_, d) = ax.transData.transform((x, low)), ax.transData.transform((x, high))
        blocked.append((a - 1.5, min(b, d) - 1.5, a + 1.5, max(b, d) + 1.5))
    for y in hlines:
        py = ax.transData.transform((ax.get_xlim()[0], y))[1]
        blocked.append((bb.x0, py - 1.5, bb.x1, py + 1.5))
    boxes = place(anchors, sizes, (bb.x0 + 1, bb.y0 + 1, bb.x1 - 1, bb.y1 - 1), blocked)
    to_points = 72.0 / fig.dpi
    for (x, y, text, colour), (px, py), box, (_, h) in zip(labels, anchors, boxes, sizes):
        # farther than the default place (a gap to the side, a line up or down): lead the eye back
        moved = max(box[0] - px, px - box[2], 0.0) > GAP + 1 or max(box[1] - py, py - box[3], 0.0) > h
        note = ax.annotate(text, (x, y), textcoords="offset points", ha="left", va="bottom", fontsize=fontsize,
                           color=colour, xytext=((box[0] - px) * to_points, (box[1] - py) * to_points),
                           arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.5, "shrinkA": 0,
                                       "shrinkB": 3} if moved else None)
        note.set_in_layout(False)
