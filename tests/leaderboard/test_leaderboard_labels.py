"""Point names on the scatter plots never overprint: the placement itself on crowded points, and
the names as matplotlib actually draws them on a scatter of leaderboard rows stacked on one spot."""

from __future__ import annotations

import copy
import itertools

from cxrbench.leaderboard.build import build_rows
from cxrbench.leaderboard.labels import GAP, overlap, place
from cxrbench.leaderboard.schema import load_schema

BOUNDS = (0.0, 0.0, 500.0, 350.0)


def crowded() -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """14 points in a 12 x 12 px patch (equal FD and AUROC, as rows of one generator often are),
    and 6 along a line, names 30-90 px wide and 10 px high."""
    anchors = [(200.0 + (i % 4) * 4, 150.0 + (i // 4) * 4) for i in range(14)]
    anchors += [(60.0 + 8 * i, 300.0) for i in range(6)]
    sizes = [(30.0 + 12 * (i % 6), 10.0) for i in range(len(anchors))]
    return anchors, sizes


def test_no_two_names_overlap_and_all_stay_inside_the_axes():
    anchors, sizes = crowded()
    boxes = place(anchors, sizes, BOUNDS)
    assert len(boxes) == len(anchors)
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert overlap(a, b) == 0, (i, j, a, b)
    for box, (w, h) in zip(boxes, sizes):
        assert BOUNDS[0] <= box[0] and box[2] <= BOUNDS[2] and BOUNDS[1] <= box[1] and box[3] <= BOUNDS[3]
        assert (box[2] - box[0], box[3] - box[1]) == (w, h)
    assert place(anchors, sizes, BOUNDS) == boxes  # deterministic


def test_a_lone_name_sits_right_of_its_point_and_one_at_the_edge_moves_inside():
    (box,) = place([(100.0, 100.0)], [(40.0, 10.0)], BOUNDS)
    assert box == (100.0 + GAP, 101.0, 140.0 + GAP, 111.0)
    (edge,) = place([(495.0, 345.0)], [(40.0, 10.0)], BOUNDS)
    assert edge[2] <= 495.0 and edge[3] <= 350.0  # left of it, below it: still readable


def test_names_keep_off_other_markers_and_obstacles_when_there_is_room():
    anchors = [(100.0, 100.0), (106.0, 104.0)]  # the second point's marker sits where the first name would go
    line = (0.0, 105.0, 500.0, 106.0)  # a reference line through where both names would go first
    boxes = place(anchors, [(40.0, 10.0)] * 2, BOUNDS, obstacles=[line])
    markers = [(x - 4.5, y - 4.5, x + 4.5, y + 4.5) for x, y in anchors]
    assert overlap(boxes[0], markers[1]) == 0 and overlap(boxes[1], markers[0]) == 0
    assert overlap(*boxes) == 0 and all(overlap(b, line) == 0 for b in boxes)


def test_a_scatter_of_rows_on_one_spot_draws_names_that_do_not_overprint(mixed_records):
    """Eight copies of a row at the same FD and AUROC: each name is drawn, measured by the
    renderer, inside the axes and clear of every other name; those moved away get a leader line."""
    import matplotlib

    from cxrbench.leaderboard.plots import _RC, _figure, _point_label, _scatter

    rows = build_rows(mixed_records, load_schema())
    base = next(r for r in rows if r["values"].get("domain_fd") is not None
                and r["aggregate"]["metrics"].get("auroc"))
    twins = []
    for i in range(8):
        twin = copy.deepcopy(base)
        twin["generator"] = f"twin-generator-{i}"
        twins.append(twin)
    with matplotlib.rc_context(_RC):
        fig = _figure()
        assert _scatter(fig, rows + twins, "domain_fd", "domain FD") is None
        fig.draw_without_rendering()
        ax = fig.axes[0]
        names = {_point_label(r) for r in rows + twins if r["values"].get("domain_fd") is not None}
        renderer = fig.canvas.get_renderer()
        drawn = [t for t in ax.texts if t.get_text() in names]
        assert {t.get_text() for t in drawn} >= {_point_label(t) for t in twins}
        # the text's own box (an Annotation's extent includes its leader line)
        boxes = [matplotlib.text.Text.get_window_extent(t, renderer) for t in drawn]
        for a, b in itertools.combinations(boxes, 2):
            assert overlap((a.x0, a.y0, a.x1, a.y1), (b.x0, b.y0, b.x1, b.y1)) < 1.0, (a, b)
        frame = ax.bbox
        assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
        assert any(t.arrow_patch is not None for t in drawn)  # stacked names point back to their spot
