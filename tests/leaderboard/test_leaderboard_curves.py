"""The real-data axis on the leaderboard: one row per size showing it, the real-data columns only
when a record has the axis, and the learning curves (learning-curves.md, a plot, a page section).

Records are made from two published kermany-small records (real-only and supplemented ddpm, the
runner's exact shape) given a size: ``cell.real_data``, the top-level ``real_data`` block, AUROC
values that rise with the number of real images, comparisons with real-only and, for a
supplemented generator, with the noise control. Sizes mix fractions and a count
(0.05 -> 235 images, 1000 -> 1000, 1.0 -> 4695) so that the order by real images (235, 1000,
4695) differs from the order of the spec's values (0.05, 1.0, 1000).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from cxrbench.leaderboard import build_leaderboard
from cxrbench.leaderboard.build import RealDataSize, build_rows, display_columns
from cxrbench.leaderboard.render import render_csv, render_html, render_markdown
from cxrbench.leaderboard.schema import DEFAULT_SCHEMA, load_schema, schema_from_data
from cxrbench.store import seal

CELLS = Path(__file__).resolve().parents[2] / "leaderboard" / "kermany-small" / "records" / "k32v2" / "cells"
REAL_ONLY = "real-only.v1__none__r0__quick__seed0__cea7fcdf.json"
SUPPLEMENTED = "supplemented.v1__ddpm__r1__quick__seed0__cea7fcdf.json"
TEST = "kermany:test"
N_TRAIN = {0.05: 235, 1000: 1000, 1.0: 4695}
#: AUROC of real-only at each size, and what each configuration adds to it
REAL_AUROC = {0.05: 0.80, 1000: 0.88, 1.0: 0.93}
ADDS = {("supplemented.v1", "noise"): {0.05: 0.01, 1000: 0.0, 1.0: 0.0},
        ("supplemented.v1", "ddpm"): {0.05: 0.04, 1000: 0.02, 1.0: 0.0},
        ("synthetic-only.v2", "ddpm"): {0.05: 0.05, 1000: -0.02, 1.0: -0.08}}
AXIS_COLUMNS = {"real_data", "content_gain", "vs_noise_control"}


def _token(size) -> str:
    return "all" if size == 1.0 and isinstance(size, float) else f"{size:g}"


def make_record(protocol: str, label: str, size, seed: int) -> dict:
    """A record of ``protocol`` / generator ``label`` (None: real-only) at real-data ``size``."""
    template = REAL_ONLY if label is None else SUPPLEMENTED
    rec = copy.deepcopy(json.loads((CELLS / template).read_text()))
    ratio = 0.0 if label is None else 1.0
    gen = "none" if label is None else label
    cell_id = f"{protocol}__{gen}__r{ratio:g}__real={_token(size)}__quick__seed{seed}"
    rec["cell_id"] = f"{cell_id}__cea7fcdf"
    rec["cell"].update(id=cell_id, protocol=protocol, ratio=ratio, seed=seed, real_data=size)
    if label is not None:
        rec["cell"]["generator"] = {"label": label, "name": label, "options": {}}
        rec["generator"]["label"] = rec["generator"]["name"] = label
    rec["real_data"] = {"size": size, "size_text": "", "n_train": N_TRAIN[size], "n_val": N_TRAIN[size] // 9,
                        "fingerprint": f"subset-{_token(size)}"}
    add = 0.0 if label is None else ADDS[(protocol, label)][size]
    auroc = REAL_AUROC[size] + add + (0.004 if seed else -0.004)
    se = 0.012
    rec["metrics"] = {TEST: {"macro": {"auroc": auroc, "auroc_se": se, "auroc_ci": [auroc - 1.96 * se,
                                                                                    auroc + 1.96 * se],
                                       "aupr": auroc + 0.02, "aupr_se": se, "aupr_ci": [auroc, auroc + 0.04]}}}
    rec.pop("vs_noise_control", None)
    if label is not None:
        rec["comparisons"] = {TEST: _comparison(add, "real-only")}
        if protocol.startswith("supplemented") and label != "noise":
            noise = ADDS[(protocol, "noise")][size]
            rec["vs_noise_control"] = {TEST: _comparison(add - noise, "noise")}
    else:
        rec["comparisons"] = {}
    return rec


def _comparison(delta: float, baseline: str) -> dict:
    p = 0.001 if abs(delta) >= 0.02 else 0.5
    return {"baseline": baseline, "method": "delong", "n_tests": 1,
            "labels": {"pneumonia": {"delta": delta, "se": 0.006, "p_value": p}}}


def axis_records() -> list[tuple[str, dict]]:
    out = []
    for size in N_TRAIN:
        for seed in (0, 1):
            recs = [make_record("real-only.v1", None, size, seed)]
            recs += [make_record(protocol, label, size, seed) for protocol, label in ADDS]
            out += [(f"scarce/cells/{r['cell_id']}.json", r) for r in recs]
    return out


@pytest.fixture(scope="module")
def records():
    return axis_records()


@pytest.fixture(scope="module")
def axis_run(records, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("axis") / "scarce"
    (out / "cells").mkdir(parents=True)
    for path, rec in records:
        (out / "cells" / path.rsplit("/", 1)[-1]).write_text(json.dumps(seal(rec), indent=2, sort_keys=True) + "\n")
    return out


@pytest.fixture(scope="module")
def built(axis_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "lb"
    return out, build_leaderboard([axis_run], out)


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_real_data_size_is_its_own_row_showing_the_size(records):
    schema = load_schema()
    rows = build_rows(records, schema)
    assert len(rows) == 4 * 3  # 4 configurations x 3 sizes, seeds pooled
    for protocol, label in [("real-only.v1", "-")] + list(ADDS):
        mine = [r for r in rows if r["protocol"] == protocol and r["generator"] == label]
        # ordered by the number of real images, not by the spec's values (0.05, 1.0, 1000)
        assert [r["values"]["real_data"] for r in mine] == ["5% (235)", "1000 images", "all (4,695)"]
        assert [r["n_real"] for r in mine] == [235, 1000, 4695]
        assert all(r["seeds"] == "2/2" and len(r["records"]) == 2 for r in mine)
        assert len({tuple(r["records"]) for r in mine}) == 3  # no record in two rows
    md = render_markdown(rows, display_columns(rows, schema), [])
    assert "| Real data" in md and "5% (235)" in md and "all (4,695)" in md
    # the rows of one size are listed together, smallest size first
    sizes = [r["n_real"] for r in rows]
    assert sizes == sorted(sizes)


def test_the_content_gain_column_holds_the_pooled_gain_over_the_noise_control(records):
    rows = build_rows(records, load_schema())
    ddpm = [r for r in rows if r["protocol"] == "supplemented.v1" and r["generator"] == "ddpm"]
    assert [r["values"]["content_gain"] for r in ddpm] == pytest.approx([0.03, 0.02, 0.0])
    assert ddpm[0]["values"]["vs_noise_control"] == "worse 0/2, better 2/2"
    others = [r for r in rows if r not in ddpm]
    assert all(r["values"]["content_gain"] is None and r["values"]["vs_noise_control"] is None for r in others)


def test_the_real_data_columns_appear_exactly_when_a_record_has_the_axis(records, mixed_records):
    schema = load_schema()
    with_axis = {c.id for c in display_columns(build_rows(records, schema), schema)}
    assert AXIS_COLUMNS <= with_axis
    without = display_columns(build_rows(mixed_records, schema), schema)
    assert not AXIS_COLUMNS & {c.id for c in without}
    # (the floor column is filled: these records have a noise row; no `real` row, so no ceiling)
    assert [c.id for c in without] == [c.id for c in schema.columns if not c.hide_when_empty or c.id == "floor"]
    # a column that is not hide_when_empty stays, empty or not
    data = yaml.safe_load(DEFAULT_SCHEMA.read_text())
    next(c for c in data["columns"] if c["id"] == "real_data")["hide_when_empty"] = False
    shown = schema_from_data(data, "t")
    assert "real_data" in {c.id for c in display_columns(build_rows(mixed_records, shown), shown)}


def test_rows_with_and_without_the_axis_sort_together(records):
    """A record without the axis (None) sorts after every size; fractions and counts by images;
    a configuration whose seeds all failed takes its number of images from the others."""
    old = copy.deepcopy(json.loads((CELLS / REAL_ONLY).read_text()))
    failed = make_record("synthetic-only.v2", "ddpm", 1000, 0)
    failed["cell_id"] = failed["cell_id"].replace("__ddpm__", "__broken__")
    failed["cell"]["generator"]["label"] = "broken"
    for key in ("metrics", "comparisons", "real_data", "generator"):
        failed.pop(key, None)
    failed.update(status="failed", error={"type": "RuntimeError", "message": "boom"})
    rows = build_rows(records + [("old/cells/x.json", old), ("scarce/cells/f.json", failed)], load_schema())
    assert rows[-1]["real_data"] is None and rows[-1]["protocol"] == "real-only.v1"
    broken = next(r for r in rows if r["generator"] == "broken")
    assert broken["real_data"] == "1000 images" and broken["n_real"] == 1000
    assert broken["status"].startswith("failed")
    assert [r["n_real"] for r in rows[:-1]] == sorted(r["n_real"] for r in rows[:-1])
    html = render_html(rows, display_columns(rows, load_schema()), [], [], ["scarce"])
    # the Real data column sorts numerically on the page, by real images
    assert re.search(r'data-col="real_data" data-type="number"', html)
    assert 'data-value="235.0">5% (235)</td>' in html
    assert '<select data-filter="real_data"' in html


def test_a_size_sorts_by_its_images_and_shows_a_count_once():
    assert RealDataSize(0.05, 235) == "5% (235)" and RealDataSize(200, 200) == "200 images"
    assert RealDataSize(5000, 4695) == "5000 images (4,695)"  # a count larger than the split
    assert RealDataSize(0.05, None) == "5%"
    sizes = [RealDataSize(1.0, 4695), RealDataSize(1000, 1000), RealDataSize(0.05, 235)]
    assert [str(s) for s in sorted(sizes, key=lambda s: s.order)] == ["5% (235)", "1000 images", "all (4,695)"]


def test_learning_curves_are_written_and_byte_identical_on_a_rebuild(built, axis_run, tmp_path):
    out, summary = built
    first = tree(out)
    for name in ("learning-curves.md", "plots/learning-curve.png", "plots/learning-curve.svg"):
        assert name in first and name in summary["files"], name
    assert "learning-curve" in summary["plots"]
    assert first["plots/learning-curve.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in first["plots/learning-curve.png"]
    assert build_leaderboard([axis_run], tmp_path / "again") == summary
    assert tree(tmp_path / "again") == first
    build_leaderboard([axis_run], out)
    assert tree(out) == first


def test_the_learning_curve_markdown_has_a_table_and_a_plain_reading(built):
    from cxrbench.learning_curves import TABLE_HEADERS

    out, _ = built
    md = (out / "learning-curves.md").read_text()
    assert md.count("\n## ") == 1
    assert "## kermany, 32 px, resnet18 (quick), test set kermany:test" in md
    assert re.search(r"^\| " + r"\s+\| ".join(re.escape(h) for h in TABLE_HEADERS) + r"\s+\|$", md, re.M)
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4 * 3  # header + a line per configuration and size
    assert any("5%" in line and "235" in line and "real-only.v1" in line for line in table)
    bullets = [line for line in md.splitlines() if line.startswith("- ")]
    assert bullets and any("beats the same number of noise images" in b for b in bullets)
    assert "Every size is tested on the same full test set (kermany:test)" in md
    assert "](plots/learning-curve.png)" in md
    notes = (out / "leaderboard.md").read_text()
    assert "learning-curves.md (1 group(s))" in notes


def test_the_page_has_the_learning_curve_section_escaped(built, records, script_label):
    out, _ = built
    html = (out / "index.html").read_text()
    section = html.split('<h2 id="learning-curves">', 1)[1].split("<h2>", 1)[0]
    # the header and a row per configuration and size (the protocol groups' heading rows aside)
    assert section.count("<tr") - section.count('<tr class="group-head">') == 1 + 4 * 3
    assert "same full test set" in section and 'data-reference="baseline"' in section
    assert "<li>" in section and 'href="learning-curves.md"' in section
    assert "plots/learning-curve.png" in html

    from cxrbench.leaderboard import curves

    tagged = copy.deepcopy(records)
    for _, rec in tagged:
        if (rec["cell"].get("generator") or {}).get("label") == "ddpm":
            rec["cell"]["generator"]["label"] = script_label
    lines = curves.render_html(curves.curve_groups(r for _, r in tagged))
    text = "\n".join(lines)
    assert script_label not in text and "&lt;script&gt;" in text


def test_the_plot_draws_a_panel_per_view_on_a_log_axis(records):
    """One panel per (group, protocol, ratio), each repeating the real-only curve, on a shared
    AUROC axis; a generator keeps its colour across panels and the noise control is grey."""
    import matplotlib

    from cxrbench.leaderboard import curve_plot, curves
    from cxrbench.leaderboard.plots import _RC

    groups = curves.curve_groups(r for _, r in records)
    assert len(groups) == 1
    assert [view for _, view, _ in curve_plot.panels(groups)] == ["supplemented.v1, r = 1", "synthetic-only.v2"]
    with matplotlib.rc_context(_RC):
        fig = curve_plot._figure(2)
        curve_plot.draw(fig, groups)
    supplemented, synthetic = fig.axes
    assert supplemented.get_xscale() == synthetic.get_xscale() == "log"
    assert supplemented.get_shared_y_axes().joined(supplemented, synthetic)
    assert supplemented.get_title().startswith("supplemented.v1, r = 1\n") and "kermany" in supplemented.get_title()
    sup = {line.get_label(): line for line in supplemented.get_lines()}
    syn = {line.get_label(): line for line in synthetic.get_lines()}
    assert list(sup) == ["real-only", "ddpm", "noise (noise control)"] and list(syn) == ["real-only", "ddpm"]
    assert list(sup["real-only"].get_xdata()) == list(syn["real-only"].get_xdata()) == [235, 1000, 4695]
    # each curve its own points: ddpm supplemented at 235 images is real-only + 0.04 (seeds average out)
    assert sup["ddpm"].get_ydata()[0] == pytest.approx(0.84)
    assert syn["ddpm"].get_ydata()[0] == pytest.approx(0.85)
    assert sup["ddpm"].get_color() == syn["ddpm"].get_color()
    hex_of = matplotlib.colors.to_hex
    assert hex_of(sup["noise (noise control)"].get_color()) == hex_of("0.55")
    assert len(supplemented.collections) == 3 and len(synthetic.collections) == 2  # a CI band per curve
    assert [t.get_text() for t in supplemented.get_legend().get_texts()] == list(sup)
    assert "same test set at every size" in curve_plot.TITLE


def test_the_plot_grid_wraps_at_three_panels_and_a_group_without_points_gets_one():
    from cxrbench.leaderboard import curve_plot

    assert [curve_plot._grid(n) for n in (1, 2, 3, 4, 7)] == [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3)]
    point = {"protocol": "supplemented.v1", "generator": "ldm", "n": 47, "auroc": 0.8}
    quick = {"real_only": [], "points": [dict(point, ratio=3.0), dict(point, ratio=1.0),
                                         dict(point, protocol="synthetic-only.v2", ratio=1.0)]}
    standard = {"real_only": [{"n": 47, "auroc": 0.8}], "points": []}
    views = [view for _, view, _ in curve_plot.panels([quick, standard])]
    assert views == ["supplemented.v1, r = 1", "supplemented.v1, r = 3", "synthetic-only.v2", "real-only"]


def test_a_rebuild_without_the_axis_leaves_no_learning_curve(built, axis_run, mixed_run, tmp_path):
    out = tmp_path / "lb"
    build_leaderboard([axis_run], out)
    assert (out / "learning-curves.md").is_file()
    summary = build_leaderboard([mixed_run], out)
    fresh = tmp_path / "fresh"
    build_leaderboard([mixed_run], fresh)
    assert tree(out) == tree(fresh)
    assert not any("learning-curve" in f for f in summary["files"])
    html = (out / "index.html").read_text()
    assert "learning-curves" not in html and 'data-filter="real_data"' not in html
    csv_header = (out / "leaderboard.csv").read_text().splitlines()[0].split(",")
    assert not AXIS_COLUMNS & set(csv_header)


def test_csv_keeps_the_size_text_and_hide_when_empty_must_be_a_bool(records):
    from cxrbench.errors import ConfigError

    schema = load_schema()
    rows = build_rows(records, schema)
    text = render_csv(rows, display_columns(rows, schema))
    assert "real_data" in text.splitlines()[0] and ",5% (235)," in text
    data = yaml.safe_load(DEFAULT_SCHEMA.read_text())
    data["columns"][0]["hide_when_empty"] = "maybe"
    with pytest.raises(ConfigError, match=r"columns\[0\]\.hide_when_empty"):
        schema_from_data(data, "s.yaml")


def test_each_size_reads_a_row_between_the_floor_and_ceiling_of_that_size(monkeypatch):
    """Utility at each size uses the noise (floor) and real (ceiling) rows of the same protocol,
    ratio and SIZE: (AUROC - floor) / (ceiling - floor); none where the ceiling is not clearly above
    the floor, and a row without a measured ceiling says so."""
    from cxrbench.learning_curves import learning_curves, plain_reading, table_rows

    monkeypatch.setitem(ADDS, ("supplemented.v1", "real"), {0.05: 0.10, 1000: 0.08, 1.0: 0.0})
    recs = [rec for _, rec in axis_records()]
    (group,) = learning_curves(recs)
    ddpm = {p["real_data"]: p for p in group["points"] if p["generator"] == "ddpm" and p["protocol"] == "supplemented.v1"}
    for size, expected in ((0.05, (0.04 - 0.01) / (0.10 - 0.01)), (1000, 0.02 / 0.08)):
        p = ddpm[size]
        assert p["floor"] == pytest.approx(REAL_AUROC[size] + ADDS[("supplemented.v1", "noise")][size])
        assert p["ceiling"] == pytest.approx(REAL_AUROC[size] + ADDS[("supplemented.v1", "real")][size])
        assert p["utility"] == pytest.approx(expected)
    assert ddpm[1.0]["utility"] is None  # ceiling == floor at all the data: no scale to read on
    lines = {row[1]: row for row in table_rows(group) if row[3] == "5%" and row[0] == "supplemented.v1"}
    assert lines["ddpm"][-1] == f"{(0.03 / 0.09):.2f} (0.810 / 0.900)" and lines["noise"][-1] == ""
    reading = plain_reading(group)
    assert any("ddpm r = 1 scores 0.840, between the floor (noise) 0.810 and the ceiling (real) 0.900: "
               "utility 0.33." in line for line in reading)
    assert any("at this size and r the ceiling (real) 0.930 is not above the floor (noise) 0.930" in line
               for line in reading)  # all the data: real and noise both 0.930
    # synthetic-only has neither reference here: said, not guessed
    assert any(line.startswith("At 235 real images (5%), synthetic-only ddpm scores 0.850; its floor (noise) and "
                               "ceiling (real) at this size are not measured yet, so it has no utility.") for line in reading)
    assert not any(line.startswith("At 235 real images (5%), ddpm r = 1 scores 0.850") for line in reading)


def test_a_real_row_below_the_noise_control_is_said_to_be_no_ceiling(monkeypatch):
    """In the scarce regime repeating the real images can score below adding noise (measured on
    Kermany at 47 and 234 images): the reading must say `real` is no ceiling there, never read a
    generator "between" a floor and a lower ceiling, and not call the real images synthetic content."""
    from cxrbench.learning_curves import learning_curves, plain_reading

    monkeypatch.setitem(ADDS, ("supplemented.v1", "real"), {0.05: -0.02, 1000: 0.08, 1.0: 0.0})
    records = []
    for _, rec in axis_records():
        if (rec["cell"]["generator"] or {}).get("name") == "real":
            noise = ADDS[("supplemented.v1", "noise")][rec["cell"]["real_data"]]
            rec["vs_noise_control"] = {TEST: _comparison(ADDS[("supplemented.v1", "real")][rec["cell"]["real_data"]]
                                                         - noise, "noise")}
        records.append(rec)
    reading = plain_reading(learning_curves(records)[0])
    assert any(line.startswith("At 235 real images (5%), the size's own images added again (real r = 1) score 0.780")
               and "`real` is no ceiling at this size" in line for line in reading)
    assert any("ddpm r = 1 scores 0.840; at this size and r the ceiling (real) 0.780 is not above the floor (noise) "
               "0.810, so there is no scale to read." in line for line in reading)
    assert not any("real r = 1 (" in line and "synthetic content" in line for line in reading)


def test_the_scale_sentence_for_a_ceiling_above_the_floor_but_not_clearly():
    from cxrbench.learning_curves import _scale_sentence

    row = {"generator": "ldm", "ratio": 1.0, "auroc": 0.9, "floor": 0.88, "ceiling": 0.9, "utility": None}
    assert _scale_sentence(100, "2%", row) == (
        "At 100 real images (2%), ldm r = 1 scores 0.900, between the floor (noise) 0.880 and the ceiling (real) "
        "0.900: the ceiling is not clearly above the floor, so there is no scale to read.")
    above = dict(row, ratio=3.0, auroc=0.852, floor=0.785, ceiling=0.817)  # the published 2% ldm r = 3 row
    assert _scale_sentence(97, "2%", above).startswith(
        "At 97 real images (2%), ldm r = 3 scores 0.852, above both the floor (noise) 0.785 and the ceiling (real) 0.817:")
    below = dict(row, auroc=0.70)
    assert ", below both the floor (noise) 0.880" in _scale_sentence(100, "2%", below)


def test_a_saturation_finding_names_the_sizes_it_rests_on_when_some_are_missing():
    """ddpm's gain excludes 0 at 235 and 1,000 images and covers it at all the data: saturated from
    4,695, and measured at every size the sentence needs no list. Without its 1,000-image cells the
    same words ("from 4,695") rest on 2 of the curve's 3 sizes, and the sentence says which."""
    from cxrbench.learning_curves import learning_curves, plain_reading

    def saturation(recs):
        return [line for line in plain_reading(learning_curves(recs)[0])
                if line.startswith("ddpm (supplemented.v1, r = 1): gain over real-only saturates")]

    recs = [rec for _, rec in axis_records()]
    assert saturation(recs) == ["ddpm (supplemented.v1, r = 1): gain over real-only saturates from 4,695 real images."]
    gappy = [r for r in recs if not (r["cell"]["protocol"] == "supplemented.v1" and r["cell"]["real_data"] == 1000
                                     and r["cell"]["generator"]["name"] == "ddpm")]
    assert saturation(gappy) == ["ddpm (supplemented.v1, r = 1): gain over real-only saturates from 4,695 real "
                                 "images (measured at 2 of the 3 sizes: 235, 4,695)."]
    # synthetic-only ddpm still loses 0.08 at all the data: no saturation, and the sentence says where it ends
    (line,) = [line for line in plain_reading(learning_curves(gappy)[0]) if line.startswith("ddpm (synthetic-only.v2")]
    assert line == ("ddpm (synthetic-only.v2, r = 1): gain over real-only does not saturate within the measured sizes: "
                    "at its largest, 4,695 real images, it is still below real-only (-0.080 [-0.092, -0.068] (0+/2- of 2)).")


def test_an_unsaturated_gain_says_which_side_of_real_only_it_is_on():
    """"Still differs" after a loss reads like a gain yet to fade: the sentence names the side."""
    from cxrbench.learning_curves import plain_reading

    def reading(ci):
        gain = {"mean": sum(ci) / 2, "ci": list(ci), "seeds_better": 3 if ci[0] > 0 else 0,
                "seeds_worse": 3 if ci[1] < 0 else 0, "n_seeds": 3}
        group = {"points": [], "real_only": [{"n": 47}, {"n": 97}],
                 "saturation": [{"protocol": "supplemented.v1", "generator": "ldm", "ratio": 3.0, "saturation_n": None,
                                 "sizes": [47, 97], "gain_at_largest": gain}]}
        (line,) = plain_reading(group)
        return line

    assert reading((0.01, 0.09)).endswith("at its largest, 97 real images, it is still above real-only "
                                          "(+0.050 [+0.010, +0.090] (3+/0- of 3)).")
    assert reading((-0.054, -0.016)).endswith("at its largest, 97 real images, it is still below real-only "
                                              "(-0.035 [-0.054, -0.016] (0+/3- of 3)).")


def test_a_single_size_says_it_has_no_real_image_equivalent_instead_of_a_blank():
    """A run of one size (the 100% re-run of kermany-scarce read on its own) has a real-only curve of
    one point: nothing to interpolate, and the sentence says so (it printed "worth  real images")."""
    from cxrbench.learning_curves import learning_curves, plain_reading

    recs = [rec for _, rec in axis_records() if rec["cell"]["real_data"] == 1000]
    (group,) = learning_curves(recs)
    assert [p["n"] for p in group["real_only"]] == [1000] and all(p["equivalent"] is None for p in group["points"])
    reading = plain_reading(group)
    synthetic = [line for line in reading if line.startswith("Synthetic-only at 1,000 real images")]
    assert synthetic and all(line.endswith(", no real-image equivalent (real-only is measured at fewer than two "
                                           "sizes).") for line in synthetic)
    assert not any("worth  real" in line or "worth real" in line for line in reading)
    # with the curve's other sizes back, the same sentence gives a number
    (full,) = learning_curves([rec for _, rec in axis_records()])
    assert any(re.search(r"^Synthetic-only at 1,000 real images .*, worth \S", line) for line in plain_reading(full))
