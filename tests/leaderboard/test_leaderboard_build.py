"""The leaderboard folder: byte-identical on a rebuild, the same numbers in every format as the
aggregate rows, relative links only, plots written (or a note why not), and the command."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from cxrbench.aggregate import aggregate
from cxrbench.leaderboard import build_leaderboard
from cxrbench.leaderboard.build import build_rows, display_columns
from cxrbench.leaderboard.render import format_value
from cxrbench.leaderboard.schema import load_schema


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(mixed_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "lb"
    summary = build_leaderboard([mixed_run], out)
    return out, summary


def test_building_twice_gives_byte_identical_files(built, mixed_run, tmp_path):
    out, summary = built
    first = tree(out)
    again = build_leaderboard([mixed_run], tmp_path / "elsewhere")
    assert tree(tmp_path / "elsewhere") == first and again == {**summary}
    build_leaderboard([mixed_run], out)  # over an earlier leaderboard: the same files, none left over
    assert tree(out) == first
    expected = {"index.html", "leaderboard.md", "leaderboard.csv", "leaderboard.tex"} | {
        f"plots/{n}.{ext}" for n in ("auroc-vs-ratio", "fd-vs-auroc", "cost-vs-auroc") for ext in ("png", "svg")}
    assert expected <= set(first) and set(first) == set(summary["files"])
    assert sum(f.startswith("records/") for f in first) == summary["records"] == 19
    assert any(f.startswith("assets/") and f.endswith("contact-sheet.png") for f in first)


def test_generated_files_hold_no_absolute_path_or_date(built, mixed_run):
    out, _ = built
    for name, data in tree(out).items():
        if name.startswith(("records/", "assets/")) or name.endswith(".png"):
            continue  # verbatim copies of the inputs; PNG: binary (metadata checked below)
        text = data.decode()
        assert str(mixed_run) not in text and str(out) not in text and "/tmp/" not in text, name
        assert not re.search(r"20\d\d-\d\d-\d\d", text), name
    assert b"Software" not in (out / "plots" / "fd-vs-auroc.png").read_bytes()


def test_csv_markdown_and_latex_hold_the_aggregate_numbers(built, mixed_run):
    out, _ = built
    records = [(f"mixed-run/cells/{p.name}", json.loads(p.read_text()))
               for p in sorted((mixed_run / "cells").glob("*.json"))]
    schema = load_schema()
    rows = build_rows(records, schema)
    table = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert len(table) == len(rows) == 9
    md, tex = (out / "leaderboard.md").read_text(), (out / "leaderboard.tex").read_text()
    for row, line in zip(rows, table):
        assert line["records"].split(";") == row["records"] and line["status"] == row["status"]
        # the row's numbers are cxrbench.aggregate's, run here on the row's records alone
        (direct,) = [a for a in aggregate([r for p, r in records if p in row["records"]])
                     if a["test_set"] == row["test_set"]]
        assert direct["metrics"] == row["aggregate"]["metrics"]
        auroc, aupr = direct["metrics"].get("auroc"), direct["metrics"].get("aupr")
        if auroc is None:
            assert line["auroc_mean"] == line["aupr"] == ""
            continue
        assert float(line["auroc_mean"]) == auroc["mean"]
        assert float(line["auroc_ci_low"]) == auroc["ci"][0] and float(line["auroc_ci_high"]) == auroc["ci"][1]
        assert float(line["auroc_sd"]) == auroc["sd"] and float(line["aupr"]) == aupr["mean"]
        text = format_value("mean_sd_ci:3", auroc)
        assert text in md and text in tex and f"{aupr['mean']:.3f}" in md
        if row["values"]["domain_fd"] is not None:
            assert float(line["domain_fd"]) == row["values"]["domain_fd"]
            assert format_value("sig:3", row["values"]["domain_fd"]) in md
    headers = [c.header for c in display_columns(rows, schema)]
    assert all(h in md for h in headers)


def test_latex_escapes_special_characters(mixed_records):
    import copy

    from cxrbench.leaderboard.render import render_latex

    records = copy.deepcopy(mixed_records)
    for _, rec in records:
        if (rec["cell"].get("generator") or {}).get("label") == "trunc":
            rec["cell"]["generator"]["label"] = "gan_v2 50% & #1"
    schema = load_schema()
    rows = build_rows(records, schema)
    tex = render_latex(rows, display_columns(rows, schema))
    assert "\\toprule" in tex and "95\\% CI" in tex and "gan\\_v2 50\\% \\& \\#1" in tex


def test_markdown_rows_and_escaped_html(built, script_label):
    out, _ = built
    md = (out / "leaderboard.md").read_text()
    assert md.count("\n| ") == 10  # header + 9 rows
    html = (out / "index.html").read_text()
    assert script_label not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html), "an external asset"
    assert html.count("<script>") == 1 and html.count("<style>") == 1


def test_plots_are_written_or_skipped_with_a_note(mixed_records, tmp_path):
    from cxrbench.leaderboard.plots import write_plots

    rows = build_rows([(p, r) for p, r in mixed_records if not r["cell"]["protocol"].startswith("supplemented")],
                      load_schema())
    with_fd = next(r for r in rows if r["values"]["domain_fd"] is not None)
    with_fd["generator"] = "a $x^$ b"  # a plugin's label is drawn as text: as mathtext it would raise
    written, notes = write_plots(rows, tmp_path / "plots")
    assert [w["name"] for w in written] == ["fd-vs-auroc", "cost-vs-auroc"]
    assert len(notes) == 1 and "auroc-vs-ratio skipped: no supplemented rows" in notes[0]
    assert (tmp_path / "plots" / "fd-vs-auroc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plots" / "cost-vs-auroc.svg").read_text().lstrip().startswith("<?xml")


def test_scatter_plots_draw_each_groups_floor_and_ceiling_and_keep_names_apart(mixed_records):
    """A generator's point is read against references of its own group: real-only for a
    supplemented row, the noise floor (and the real ceiling, when run) for a synthetic-only one;
    two points at the same place get names on different lines, not one overprinted word."""
    import copy

    from cxrbench.leaderboard.plots import _context, _figure, _point_label, _references, _scatter

    rows = build_rows(mixed_records, load_schema())
    mean = lambda r: r["aggregate"]["metrics"]["auroc"]["mean"]  # noqa: E731
    real_only = next(r for r in rows if r["protocol"].startswith("real-only"))
    supplemented = next(r for r in rows if r["protocol"].startswith("supplemented") and mean(r) is not None)
    assert _references(rows, _context(supplemented) + (supplemented["protocol"],)) == [("real-only", mean(real_only))]
    floor = next(r for r in rows if r["protocol"] == "synthetic-only.v2" and r["generator"] == "noise")
    assert _references(rows, _context(floor) + ("synthetic-only.v2",)) == [("noise (floor)", mean(floor))]

    with_fd = [r for r in rows if r["values"].get("domain_fd") is not None and mean(r) is not None]
    twin = copy.deepcopy(with_fd[0])
    twin["generator"] = "twin"  # the same FD and AUROC as the row it copies
    fig = _figure()
    assert _scatter(fig, rows + [twin], "domain_fd", "domain FD") is None
    ax = fig.axes[0]
    drawn = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() in ("--", ":")]
    named = " ".join(t.get_text() for t in ax.texts)
    for ref in (real_only, floor):  # each reference is a line, or named under the axes when far below
        assert mean(ref) in drawn or f"{mean(ref):.3f}" in named
    offsets = {t.get_text(): t.xyann for t in ax.texts}
    assert offsets[_point_label(twin)] != offsets[_point_label(with_fd[0])]


def test_the_command_builds_the_folder(mixed_run, tmp_path, capsys):
    from cxrbench.cli import main

    assert main(["leaderboard", str(mixed_run), "--out", str(tmp_path / "lb")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("9 row(s) from 19 record(s)") and "1 failed" in printed
    assert (tmp_path / "lb" / "index.html").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["leaderboard", str(mixed_run), "--out", str(tmp_path / "other")]) == 2
    assert "not empty and not an earlier leaderboard" in capsys.readouterr().err
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_auroc_axes_fit_the_data_inside_zero_one():
    """Differences of a few hundredths stay visible: the axis spans the data (CI ends included)
    padded to a 0.05 grid, never wider than [-0.02, 1.02] and never narrower than 0.1."""
    from cxrbench.leaderboard.plots import AUROC_LIMITS, auroc_limits

    assert auroc_limits([0.881, 0.93, 0.85, 0.961]) == pytest.approx((0.8, 1.0))
    assert auroc_limits([0.23, 0.477, 0.954]) == pytest.approx((0.2, 1.0))
    assert auroc_limits([-0.3, 1.2]) == AUROC_LIMITS  # a few-seed t interval past [0, 1]
    lo, hi = auroc_limits([0.9, 0.905])
    assert hi - lo == pytest.approx(0.1) and lo <= 0.88 and hi >= 0.925
    assert auroc_limits([]) == AUROC_LIMITS


def test_a_figure_saves_to_the_same_bytes_when_its_floats_differ_in_the_last_bits(tmp_path):
    """matplotlib hashes each clip rectangle's full-precision floats into its SVG id, and those
    last bits follow the CPU: the published kermany-small cost plot rebuilt with other ids on an
    AVX512 machine. save_figure numbers the ids, so such a figure is the same file everywhere."""
    import matplotlib
    from matplotlib.figure import Figure

    from cxrbench.leaderboard.plots import _RC, save_figure

    def draw(offset: float, name: str, save) -> bytes:
        with matplotlib.rc_context(_RC):
            fig = Figure(figsize=(3, 2))
            ax = fig.add_axes((0.1 + offset, 0.1, 0.8, 0.8))
            ax.plot([0, 1], [0, 1])
            save(fig, name)
        return (tmp_path / f"{name}.svg").read_bytes()

    def plain(fig, name):
        fig.savefig(tmp_path / f"{name}.svg", metadata={"Date": None, "Creator": None})

    assert draw(0.0, "a", plain) != draw(1e-15, "b", plain)  # the hash sees the last bit
    numbered = draw(0.0, "c", lambda fig, name: save_figure(fig, tmp_path, name))
    assert numbered == draw(1e-15, "d", lambda fig, name: save_figure(fig, tmp_path, name))
    assert b'id="clip0"' in numbered and b"url(#clip0)" in numbered
