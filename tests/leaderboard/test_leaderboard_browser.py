"""index.html in a real browser (headless Chromium through Playwright), from a file:// URL:
no console or page error, no request leaves the folder, headers sort (and reverse) within each
protocol group, filters hide rows (and emptied groups), images load, and a generator label that
is a script tag shows as text and never runs. At 1,280 px the headline metric of every table
(AUROC; Dice on a segmentation page) is on screen without scrolling, also on the published
pages; the details toggle shows the hidden columns; reference rows are marked in words.

Needs Chromium and Playwright; without them this FAILS (CI installs both):
``apt-get install chromium`` and ``pip install playwright`` (no ``playwright install``: the
system Chromium is used through ``executable_path``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cxrbench.leaderboard import build_leaderboard

PUBLISHED = sorted(p.parent for p in (Path(__file__).resolve().parents[2] / "leaderboard").glob("*/index.html"))
#: the narrowest window the page is laid out for: a 1,280 px laptop screen
NARROW = 1280
INSTALL = ("install them with `apt-get install chromium` (Debian; Ubuntu: chromium-browser) and "
           "`pip install playwright` (or `pip install -e '.[test]'`); `playwright install` is not needed")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the browser test needs Playwright, which is not installed: {INSTALL}")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail(f"the browser test needs Chromium, which is not on PATH: {INSTALL}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def board(mixed_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "lb"
    build_leaderboard([mixed_run], out)
    return out


def open_page(browser, board, width: int = 1600):
    """The page of ``board``, loaded, and a check to call at the end: it fails on a console error, a
    page error, a dialog (an alert) or any request that is not a file inside the leaderboard folder."""
    problems, foreign = [], []
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    root = board.resolve().as_uri()

    def route(r):
        if r.request.url.startswith(root + "/"):
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(f"{root}/index.html")
    page.wait_for_load_state("load")

    def check():
        page.close()
        assert not problems, problems
        assert not foreign, f"requests outside the folder: {foreign}"

    return page, check


@pytest.fixture
def page(browser, board):
    page, check = open_page(browser, board)
    yield page
    check()


@pytest.fixture
def narrow(browser, board):
    page, check = open_page(browser, board, NARROW)
    yield page
    check()


def group_values(page, col_id: str) -> list[list[str]]:
    """data-value of column ``col_id`` in the visible rows of each visible protocol group."""
    return page.evaluate(
        """(col) => {
            const index = [...document.querySelectorAll('#leaderboard thead th')]
                .findIndex(th => th.dataset.col === col);
            return [...document.querySelectorAll('#leaderboard tbody')].filter(g => !g.hidden)
                .map(g => [...g.querySelectorAll('tr[data-order]')].filter(tr => !tr.hidden)
                     .map(tr => tr.cells[index].getAttribute('data-value')));
        }""", col_id)


def column_values(page, col_id: str) -> list[str]:
    """data-value of column ``col_id`` in the visible rows, top to bottom."""
    return [v for group in group_values(page, col_id) for v in group]


def test_clicking_a_numeric_header_sorts_each_group_and_a_second_click_reverses(page):
    before = group_values(page, "auroc")
    header = page.locator('#leaderboard th[data-col="auroc"]')
    header.click()
    first = group_values(page, "auroc")
    assert len(first) == len(before) >= 3, "the protocol groups stay"
    for group, old in zip(first, before):
        scored = [float(v) for v in group if v]
        assert scored == sorted(scored, reverse=True), "first click: best (highest AUROC) first"
        assert group[len(scored):] == [""] * (len(group) - len(scored)), "rows without an AUROC last"
        assert sorted(group) == sorted(old), "a row never leaves its group"
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    second = group_values(page, "auroc")
    assert second != first and any(g[-1] == "" and len(g) > 1 for g in second)
    for group in second:
        scored = [float(v) for v in group if v]
        assert scored == sorted(scored) and group[len(scored):] == [""] * (len(group) - len(scored))
    assert header.get_attribute("aria-sort") == "ascending"
    page.locator("details.columns summary").first.click()  # FD is a detail column: shown, then sorted
    page.locator('#leaderboard th[data-col="domain_fd"]').click()  # lower is better: ascending first
    groups = [[float(v) for v in g if v] for g in group_values(page, "domain_fd")]
    assert all(g == sorted(g) for g in groups) and sum(map(len, groups)) >= 5


def test_a_filter_hides_the_other_rows(page):
    total = len(column_values(page, "protocol"))
    page.select_option("#filter-protocol", "synthetic-only.v1")
    assert column_values(page, "protocol") == ["synthetic-only.v1"]
    assert page.locator("#row-count").inner_text() == f"1 of {total} rows shown"
    assert page.locator("#leaderboard tbody:not([hidden])").count() == 1, "the emptied groups are hidden"
    page.select_option("#filter-protocol", "synthetic-only.v2")
    page.select_option("#filter-size", "16")
    v2 = column_values(page, "protocol")
    assert v2 == ["synthetic-only.v2"] * 5  # noise, broken, trunc, flaky, the script label
    page.select_option("#filter-protocol", "")
    assert len(column_values(page, "protocol")) == total
    assert page.locator("#leaderboard tbody:not([hidden])").count() == page.locator("#leaderboard tbody").count()


def test_a_script_label_shows_as_text_and_never_runs(page, script_label):
    cell = page.locator("#leaderboard tbody td", has_text=script_label)
    assert cell.count() == 1 and cell.inner_text() == script_label
    assert page.locator("#leaderboard script").count() == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # the page's own


def test_contact_sheets_and_records_are_linked_relatively(page):
    page.locator("details.columns summary").first.click()  # details: the sheets and records columns
    loaded = page.evaluate("""[...document.querySelectorAll('td.sheet img')]
        .map(img => img.complete && img.naturalWidth > 0)""")
    assert loaded and all(loaded), loaded
    hrefs = page.evaluate("[...document.querySelectorAll('td.records a')].map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("records/") and h.endswith(".json") for h in hrefs)


def test_a_screenshot_is_a_png(page, tmp_path):
    shot = tmp_path / "leaderboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def headline_edges(page) -> dict:
    """Where each table's headline header ends, and whether the document scrolls sideways."""
    return page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth, window: window.innerWidth,
        headlines: [...document.querySelectorAll('th.headline')].map(th => {
            const box = th.getBoundingClientRect();
            return {table: th.closest('table').id || th.closest('table').className, text: th.textContent,
                    right: box.right, width: box.width};
        })})""")


def assert_headlines_on_screen(page) -> dict:
    edges = headline_edges(page)
    assert edges["window"] == NARROW
    assert edges["scroll"] <= NARROW, "the document itself scrolls sideways"
    assert edges["headlines"], "no table marks its headline column"
    for h in edges["headlines"]:
        assert 0 < h["width"] and h["right"] <= NARROW, h
    return edges


def test_at_1280_px_the_auroc_of_every_table_is_on_screen(narrow):
    edges = assert_headlines_on_screen(narrow)
    main = [h for h in edges["headlines"] if h["table"] == "leaderboard"]
    assert [h["text"] for h in main] == ["AUROC mean +/- sd [95% CI]"]
    auroc = narrow.locator('#leaderboard th[data-col="auroc"]')
    assert "headline" in auroc.get_attribute("class") and auroc.is_visible()


def test_the_caption_names_the_settings_every_row_shares(narrow):
    caption = narrow.locator("#leaderboard caption").inner_text()
    assert caption.startswith("dataset phantom · 16 px · tiny-cnn · quick · test phantom:test"), caption
    # the same settings are not also columns on screen
    for col in ("dataset", "size", "classifier", "schedule", "test_set"):
        assert not narrow.locator(f'#leaderboard th[data-col="{col}"]').is_visible(), col


def test_the_details_toggle_reveals_the_hidden_columns_and_hides_them_again(narrow):
    def shown() -> list[str]:
        return narrow.evaluate("""() => [...document.querySelectorAll('#leaderboard thead th')]
            .filter(th => th.getBoundingClientRect().width > 0).map(th => th.dataset.col)""")

    every = narrow.evaluate("[...document.querySelectorAll('#leaderboard thead th')].map(th => th.dataset.col)")
    first = shown()
    assert first[:3] == ["generator", "protocol", "ratio"] and "auroc" in first
    hidden = [c for c in every if c not in first]
    assert {"dataset", "domain_fd", "records", "contact_sheet", "reference"} <= set(hidden)
    toggle = narrow.locator("details.columns summary").first
    assert f"show the {len(hidden)} other columns" in toggle.inner_text()
    toggle.click()
    assert shown() == every, "opening Details shows every column"
    cells = narrow.evaluate("""() => [...document.querySelectorAll('#leaderboard tr[data-order] td.col-detail')]
        .every(td => td.getBoundingClientRect().width > 0)""")
    assert cells, "and every cell of them"
    toggle.click()
    assert shown() == first


def test_reference_rows_are_marked_by_a_class_a_badge_and_the_legend(narrow):
    marked = narrow.evaluate("""() => [...document.querySelectorAll('#leaderboard tr[data-reference]')].map(tr => ({
        role: tr.dataset.reference, cls: tr.className, protocol: tr.dataset.fProtocol,
        badge: (tr.querySelector('td .badge') || {}).textContent}))""")
    roles = sorted((m["role"], m["protocol"]) for m in marked)
    assert roles == [("baseline", "real-only.v1"), ("floor", "synthetic-only.v1"), ("floor", "synthetic-only.v2")]
    for m in marked:
        assert f"ref-{m['role']}" in m["cls"].split() and m["badge"] == m["role"]
    legend = narrow.locator("p.legend").first.inner_text()
    assert "FLOOR" in legend.upper() and "BASELINE" in legend.upper() and "noise images" in legend
    unmarked = narrow.locator('#leaderboard tr[data-order]:not([data-reference]) .badge')
    assert unmarked.count() == 0, "a generator row carries no badge"


def test_rows_are_grouped_by_protocol_under_a_heading(narrow):
    heads = narrow.evaluate("""() => [...document.querySelectorAll('#leaderboard tbody')].map(g => [
        g.querySelector('tr.group-head').textContent,
        [...new Set([...g.querySelectorAll('tr[data-order]')].map(tr => tr.dataset.fProtocol))]])""")
    assert [h[0] for h in heads] == ["real-only.v1", "supplemented.v1", "synthetic-only.v2", "synthetic-only.v1"]
    assert all(protocols == [head] for head, protocols in heads)


@pytest.mark.parametrize("folder", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_a_published_page_shows_its_auroc_at_1280_px(browser, folder):
    """The committed pages themselves (issue #32): every table's headline inside the window."""
    page, check = open_page(browser, folder, NARROW)
    edges = assert_headlines_on_screen(page)
    if (folder / "leaderboard.csv").read_text().count("\n") > 1:  # classification rows: the AUROC table
        assert any(h["table"] == "leaderboard" and h["text"].startswith("AUROC") for h in edges["headlines"])
    else:  # a segmentation-only leaderboard has no (empty) AUROC table, its Dice tables instead
        assert page.evaluate("document.getElementById('leaderboard') === null")
        assert any(h["table"] == "segmentation" and h["text"].startswith("Dice") for h in edges["headlines"])
    check()


def test_a_segmentation_page_shows_dice_at_1280_px(browser, tmp_path):
    """A segmentation section rendered by the page's own code (its rows built here), in the browser."""
    from cxrbench.external_validity import add_references
    from cxrbench.leaderboard import render, segmentation

    def pooled(mean):
        return {"mean": mean, "sd": 0.01, "ci": [mean - 0.03, mean + 0.03], "n_seeds": 2}

    rows = []
    for protocol, label, plugin, ratio, dice in [("real-only.v1", "-", None, None, 0.81),
                                                 ("supplemented.v1", "noise", "noise", 1.0, 0.74),
                                                 ("supplemented.v1", "real", "real", 1.0, 0.83),
                                                 ("supplemented.v1", "mask-conditioned-ldm-with-a-long-label",
                                                  "ldm", 1.0, 0.80)]:
        rows.append({"protocol": protocol, "generator": label, "plugin": plugin, "ratio": ratio, "seeds": [0, 1],
                     "dice": pooled(dice), "hd95": pooled(12.5), "vs_real_only": None if plugin is None else
                     pooled(dice - 0.81), "vs_noise": pooled(0.01), "adherence": (0.71, 0.52)})
    add_references(rows, lambda r: r["dice"]["mean"])  # floor, ceiling and utility, as segmentation.groups does
    groups = [{"key": ("jsrt", 64, "tiny-unet", "budget-quick", None), "test_set": "jsrt:test", "rows": rows}]
    (tmp_path / "seg").mkdir()
    html = render.render_html([], [], [], [], ["seg"], segmentation.render_html(groups))
    (tmp_path / "seg" / "index.html").write_text(html)
    page, check = open_page(browser, tmp_path / "seg", NARROW)
    edges = assert_headlines_on_screen(page)
    assert [h["text"] for h in edges["headlines"] if h["table"] == "segmentation"] == ["Dice [95% CI]"]
    roles = page.evaluate("[...document.querySelectorAll('table.segmentation tr[data-reference]')]"
                          ".map(tr => tr.dataset.reference)")
    assert roles == ["baseline", "floor", "ceiling"]
    assert page.evaluate("document.getElementById('leaderboard') === null")  # no empty AUROC table; no script error
    check()
