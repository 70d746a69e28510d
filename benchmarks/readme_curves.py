"""Copy each built learning-curve table into leaderboard/README.md, never by hand.

    python benchmarks/readme_curves.py

README.md holds, between ``<!-- learning-curves:NAME -->`` and ``<!-- /learning-curves:NAME -->``,
the table and plain reading of ``leaderboard/NAME/learning-curves.md``. The README sits one folder
above the built file, so the copy's relative links (a row's generator card, ``cards/...``) are
re-rooted at ``NAME/``; tests/leaderboard/test_published_leaderboard.py checks the copy with the
same rule (:func:`readme_block`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "leaderboard"
BLOCK = r"<!-- learning-curves:([\w.-]+) -->\n(.*?)\n<!-- /learning-curves:\1 -->"


def readme_block(name: str, built: str) -> str:
    """The README's copy of ``built`` (a learning-curves.md): from the first table to the end of
    its plain reading, links re-rooted at the leaderboard's folder."""
    start = built.index("| protocol")
    end = built.find("\n\nEvery size is tested", start)
    text = built[start:end if end >= 0 else len(built)].rstrip()
    return re.sub(r"\]\((?![a-z]+:|/|#)", f"]({name}/", text)


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")

    def fresh(match: re.Match) -> str:
        name = match.group(1)
        built = (ROOT / name / "learning-curves.md").read_text(encoding="utf-8")
        return f"<!-- learning-curves:{name} -->\n{readme_block(name, built)}\n<!-- /learning-curves:{name} -->"

    new = re.sub(BLOCK, fresh, text, flags=re.S)
    if new != text:
        readme.write_text(new, encoding="utf-8")
    print(f"{readme}: {'updated' if new != text else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
