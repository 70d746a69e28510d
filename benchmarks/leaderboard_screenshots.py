"""Screenshots of published leaderboard pages as a 1,280 px laptop screen shows them (issue #32).

    python benchmarks/leaderboard_screenshots.py leaderboard/kermany-small docs/screenshots/leaderboard-1280.png
        [leaderboard/kermany-scarce docs/screenshots/leaderboard-scarce-1280.png ...]

Opens each folder's index.html from disk in headless Chromium (Playwright with the system
Chromium, as tests/leaderboard/test_leaderboard_browser.py does), 1,280 x 900 px, and saves the
first screen: what a reader sees before scrolling. Prints where the main table's headline (AUROC)
header ends, so the note that shows a screenshot can say it is on screen.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

WIDTH, HEIGHT = 1280, 900


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    if not argv or len(argv) % 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for folder, png in zip(argv[::2], argv[1::2]):
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto((Path(folder).resolve() / "index.html").as_uri())
            right = page.evaluate("document.querySelector('#leaderboard th.headline').getBoundingClientRect().right")
            Path(png).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=png)
            print(f"{png}: {folder} at {WIDTH} px, AUROC header ends at {right:.0f} px")
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
