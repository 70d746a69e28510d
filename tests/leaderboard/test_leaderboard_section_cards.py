"""The section tables link a learned generator's rows to its card, as the main table does: the
learning curves (learning-curves.md), external sets and subgroups (external.md) and segmentation
(segmentation.md), in the Markdown and in their part of index.html. One fit: the label is the
link; several (per-seed fits pooled in one row): the label, then "fit 1", "fit 2" links. Rows of
noise, real and real-only stay plain text, and the links are the only change to the tables.

Built from the records committed with the published leaderboards (each holds ldm rows beside
the references), through the section builders directly (no plots), and once through
build_leaderboard for the per-seed case (the card files must exist where the links point).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from cxrbench import cards
from cxrbench.leaderboard import build_leaderboard, curves, load_records, name_sources, segmentation, shift
from cxrbench.leaderboard.build import _dedupe
from cxrbench.store import seal

PUBLISHED = Path(__file__).resolve().parents[2] / "leaderboard"
REFERENCES = ("-", "noise", "real")
#: a second fit key for the per-seed case (sorts after the published one, so it is "fit 2")
OTHER_KEY = "f" * 20


def published_items(name: str) -> list[tuple[str, dict]]:
    """The verified, deduplicated (path, record) pairs of a published leaderboard, as the build reads them."""
    items, _ = load_records(name_sources(sorted((PUBLISHED / name / "records").iterdir())))
    return _dedupe(items)[0]


def expected_cards(records: list[dict], row: dict, **extra) -> list[str]:
    """``cards/<label>-<fit key>.md`` of each learned fit (any generator but the noise / real
    references) behind ``row`` (its protocol, label and ratio, and ``extra`` cell fields), worked
    out from the records without cxrbench.cards."""
    found = set()
    for rec in records:
        cell, gen = rec["cell"], rec.get("generator") or {}
        label = (cell.get("generator") or {}).get("label")
        if rec["status"] == "ok" and gen.get("name") not in (None, "noise", "real") and label == row["generator"] \
                and cell["protocol"] == row["protocol"] and cell["ratio"] == row["ratio"] \
                and all(cell.get(k) == v for k, v in extra.items()):
            found.add(f"cards/{label}-{gen['fit_key']}.md")
    return sorted(found)


def markdown_generator_cells(md: str) -> list[str]:
    """The generator cell (second column) of every data line of every table in ``md``, in order."""
    lines = md.splitlines()
    data = [line for i, line in enumerate(lines) if line.startswith("| ")
            and not (i + 1 < len(lines) and lines[i + 1].startswith("|-"))]  # not a header line
    return [re.split(r"(?<!\\)\|", line)[2].strip() for line in data]


def html_generator_cells(html: str) -> list[str]:
    """The generator cell (the second cell: protocol, generator lead every section table) of every data row."""
    return re.findall(r"<tr(?: [^>]*)?><td[^>]*>.*?</td><td[^>]*>(.*?)</td>", html)


def without_links(html: str) -> str:
    html = re.sub(r' (<a class="card" href="cards/[^"]+">fit \d+</a> ?)+', "", html)
    return re.sub(r'<a class="card" href="cards/[^"]+">(.*?)</a>', r"\1", html)


def check_links(rows: list[dict], md: str, html: str, expected) -> int:
    """Each row's generator cell, in the Markdown and the page, links to exactly ``expected(row)``;
    a reference row's is plain text. Returns the number of linked rows."""
    md_cells, html_cells = markdown_generator_cells(md), html_generator_cells(html)
    assert len(md_cells) == len(html_cells) == len(rows)
    linked = 0
    for row, md_cell, html_cell in zip(rows, md_cells, html_cells):
        want = expected(row)
        assert row["cards"] == want, row["generator"]
        if row["generator"] in REFERENCES:
            assert not want and md_cell == row["generator"] and "<a" not in html_cell
            continue
        assert want, f"{row['generator']}: a learned row without a card"
        linked += 1
        if len(want) == 1:
            assert md_cell == f"[{row['generator']}]({want[0]})"
            assert html_cell.startswith(f'<a class="card" href="{want[0]}">{row["generator"]}</a>')
        else:
            assert md_cell == f"{row['generator']} (" + ", ".join(
                f"[fit {i}]({c})" for i, c in enumerate(want, 1)) + ")"
            assert html_cell.startswith(f"{row['generator']} " + " ".join(
                f'<a class="card" href="{c}">fit {i}</a>' for i, c in enumerate(want, 1)))
    return linked


def test_learning_curve_rows_link_to_the_fit_of_their_size():
    items = published_items("kermany-scarce")
    records = [rec for _, rec in items]
    groups = curves.curve_groups(records, cards.card_finder(items))
    rows = [p for g in groups for p in g["real_only"] + g["points"]]
    md, html = curves.render_markdown(groups, None), "\n".join(curves.render_html(groups))
    # ldm is fitted on each size's subset alone: each size's rows link to that size's card
    linked = check_links(rows, md, html, lambda p: expected_cards(records, p, real_data=p["real_data"]))
    assert linked >= 2 and len({c for p in rows for c in p["cards"]}) >= 2
    assert set().union(*(p["cards"] for p in rows)) <= set(cards.card_paths(items).values())
    plain = curves.curve_groups(records)  # without cards_of: the tables as before, links aside
    assert html != "\n".join(curves.render_html(plain))
    assert without_links(html) == "\n".join(curves.render_html(plain))


def test_external_transfer_and_subgroup_rows_link_to_their_card():
    items = published_items("external")
    records = [rec for _, rec in items]
    data = shift.sections(records, lambda rec, test_set: None, n_resamples=10, cards_of=cards.card_finder(items))
    assert data["external"] and data["subgroups"]
    rows = [r for e in data["external"] for r in e["rows"]] + [r for t in data["subgroups"] for r in t["rows"]]
    md, html = shift.render_markdown(data, None), "\n".join(shift.render_html(data))
    linked = check_links(rows, md, html, lambda r: expected_cards(records, r))
    n_transfer = sum(len(e["rows"]) for e in data["external"])
    assert any(r["cards"] for r in rows[:n_transfer]) and any(r["cards"] for r in rows[n_transfer:])
    assert linked >= 2
    plain = shift.sections(records, lambda rec, test_set: None, n_resamples=10)
    assert without_links(html) == "\n".join(shift.render_html(plain))


def test_segmentation_rows_link_to_their_card():
    items = published_items("jsrt-seg")
    records = [rec for _, rec in items]
    data = segmentation.groups(segmentation.segmentation_records(records), cards.card_finder(items))
    rows = [r for g in data for r in g["rows"]]
    md, html = segmentation.render_markdown(data), "\n".join(segmentation.render_html(data))
    assert check_links(rows, md, html, lambda r: expected_cards(records, r)) >= 1
    plain = segmentation.groups(segmentation.segmentation_records(records))
    assert without_links(html) == "\n".join(segmentation.render_html(plain))


def per_seed(records: list[dict]) -> list[dict]:
    """``records`` with seed 1 of every ldm row given a fit of its own (as ``fit_seed: per-seed`` does)."""
    out = copy.deepcopy(records)
    for rec in out:
        if (rec.get("generator") or {}).get("name") == "ldm" and rec["cell"]["seed"] == 1:
            rec["generator"].update(fit_key=OTHER_KEY, fit_seed=1)
    return out


def test_a_row_over_per_seed_fits_links_each_fit_and_the_cards_exist(tmp_path):
    items = published_items("jsrt-seg")
    run = tmp_path / "jsrt-seg"
    (run / "cells").mkdir(parents=True)
    for (rel, _), rec in zip(items, per_seed([rec for _, rec in items])):
        (run / "cells" / rel.rsplit("/", 1)[-1]).write_text(json.dumps(seal(rec), indent=2, sort_keys=True) + "\n")
    out = tmp_path / "lb"
    build_leaderboard([run], out)
    md, html = (out / "segmentation.md").read_text(), (out / "index.html").read_text()
    two = "[fit 1](cards/ldm-ab655c-bca9ef9e9a8c904a6ee6.md), [fit 2](cards/ldm-ab655c-ffffffffffffffffffff.md)"
    assert f"| ldm-ab655c ({two}) |" in re.sub(r" +\|", " |", md)
    assert ('ldm-ab655c <a class="card" href="cards/ldm-ab655c-bca9ef9e9a8c904a6ee6.md">fit 1</a> '
            '<a class="card" href="cards/ldm-ab655c-ffffffffffffffffffff.md">fit 2</a>') in html
    targets = set(re.findall(r"\]\((cards/[^)]+)\)", md)) | set(re.findall(r'href="(cards/[^"]+)"', html))
    assert len(targets) == 2 and all((out / t).is_file() for t in targets)


@pytest.mark.parametrize("name", ["kermany-scarce", "external", "jsrt-seg"])
def test_a_section_links_the_card_path_write_cards_writes(name, tmp_path):
    """One naming rule: card_paths (what the sections link to) is where write_cards puts each fit's card."""
    items = published_items(name)
    cards.write_cards([], items, tmp_path)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / cards.CARDS_DIR).glob("*.md"))
    assert written and sorted(cards.card_paths(items).values()) == written


def test_a_segmentation_fits_card_lists_its_segmentation_rows_with_their_dice(tmp_path):
    """A segmentation-only fit has no row of the AUROC table; its card lists the segmentation rows
    that used it (front matter and Markdown), each Dice the mean of its records' macro Dice."""
    import yaml

    items = published_items("jsrt-seg")
    cards.write_cards([], items, tmp_path)
    (card,) = (tmp_path / cards.CARDS_DIR).glob("*.md")
    text = card.read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["used_by"] == []
    expected: dict[tuple, list[float]] = {}
    for _, rec in items:
        if (rec.get("generator") or {}).get("name") == "ldm" and rec["status"] == "ok":
            expected.setdefault((rec["cell"]["protocol"], rec["cell"]["ratio"]), []).append(
                rec["metrics"]["jsrt:test"]["macro"]["dice"])
    listed = {(r["protocol"], r["ratio"]): r for r in front["used_by_segmentation"]}
    assert set(listed) == set(expected) and len(expected) >= 3
    for key, dice in expected.items():
        assert listed[key]["dice"] == pytest.approx(sum(dice) / len(dice), abs=1e-6)
        assert len(listed[key]["seeds"]) == len(dice)
    assert "Segmentation rows (segmentation.md):" in text and "(none recorded)" not in text
    assert f"| {sum(expected[('synthetic-only.v2', 1)]) / len(expected[('synthetic-only.v2', 1)]):.3f} |" in text
