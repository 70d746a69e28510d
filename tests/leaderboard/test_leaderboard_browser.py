"""index.html in a real browser (headless Chromium through Playwright), from a file:// URL:
no console or page error, no request leaves the folder, headers sort (and reverse), filters hide
rows, images load, and a generator label that is a script tag shows as text and never runs.

Needs Chromium and Playwright; without them this FAILS (CI installs both):
``apt-get install chromium`` and ``pip install playwright`` (no ``playwright install``: the
system Chromium is used through ``executable_path``).
"""

from __future__ import annotations

import shutil

import pytest

from cxrbench.leaderboard import build_leaderboard

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


@pytest.fixture
def page(browser, board):
    """The page, loaded; fails the test on a console error, a page error, a dialog (an alert)
    or any request that is not a file inside the leaderboard folder."""
    problems, foreign = [], []
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
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
    yield page
    page.close()
    assert not problems, problems
    assert not foreign, f"requests outside the folder: {foreign}"


def column_values(page, col_id: str) -> list[str]:
    """data-value of column ``col_id`` in the visible rows, top to bottom."""
    return page.evaluate(
        """(col) => {
            const index = [...document.querySelectorAll('#leaderboard thead th')]
                .findIndex(th => th.dataset.col === col);
            return [...document.querySelectorAll('#leaderboard tbody tr')]
                .filter(tr => !tr.hidden).map(tr => tr.cells[index].getAttribute('data-value'));
        }""", col_id)


def test_clicking_a_numeric_header_sorts_and_a_second_click_reverses(page):
    before = column_values(page, "auroc")
    header = page.locator('#leaderboard th[data-col="auroc"]')
    header.click()
    first = column_values(page, "auroc")
    scored = [float(v) for v in first if v]
    assert scored == sorted(scored, reverse=True), "first click: best (highest AUROC) first"
    assert first[len(scored):] == [""] * (len(first) - len(scored)), "rows without an AUROC last"
    assert first != before and header.get_attribute("aria-sort") == "descending"
    header.click()
    second = column_values(page, "auroc")
    assert [float(v) for v in second if v] == sorted(scored) and second[-1] == ""
    assert header.get_attribute("aria-sort") == "ascending"
    page.locator('#leaderboard th[data-col="domain_fd"]').click()  # lower is better: ascending first
    fds = [float(v) for v in column_values(page, "domain_fd") if v]
    assert fds == sorted(fds) and len(fds) >= 5


def test_a_filter_hides_the_other_rows(page):
    total = len(column_values(page, "protocol"))
    page.select_option("#filter-protocol", "synthetic-only.v1")
    assert column_values(page, "protocol") == ["synthetic-only.v1"]
    assert page.locator("#row-count").inner_text() == f"1 of {total} rows shown"
    page.select_option("#filter-protocol", "synthetic-only.v2")
    page.select_option("#filter-size", "16")
    v2 = column_values(page, "protocol")
    assert v2 == ["synthetic-only.v2"] * 5  # noise, broken, trunc, flaky, the script label
    page.select_option("#filter-protocol", "")
    assert len(column_values(page, "protocol")) == total


def test_a_script_label_shows_as_text_and_never_runs(page, script_label):
    cell = page.locator("#leaderboard tbody td", has_text=script_label)
    assert cell.count() == 1 and cell.inner_text() == script_label
    assert page.locator("#leaderboard script").count() == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # the page's own


def test_contact_sheets_and_records_are_linked_relatively(page):
    loaded = page.evaluate("""[...document.querySelectorAll('td.sheet img')]
        .map(img => img.complete && img.naturalWidth > 0)""")
    assert loaded and all(loaded), loaded
    hrefs = page.evaluate("[...document.querySelectorAll('td.records a')].map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("records/") and h.endswith(".json") for h in hrefs)


def test_a_screenshot_is_a_png(page, tmp_path):
    shot = tmp_path / "leaderboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
