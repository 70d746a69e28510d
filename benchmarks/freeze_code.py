"""Freeze the cxrbench code a long benchmark runs, so edits to the checkout cannot reach it.

    python benchmarks/freeze_code.py DEST
    PYTHONPATH=DEST cxrbench run --spec ... --out ...

Copies harness/ to ``DEST/cxrbench`` and plugins/ to ``DEST/cxrbench/plugins`` (the installed
layout) and writes ``DEST/cxrbench/GIT_REVISION``: the commit of the checkout, ``+dirty`` when it
has uncommitted changes. A copy is no git checkout, so without that file its records (published
ones included) would say ``git_revision: null``; with it they name the commit they came from
(cxrbench.store.git_revision). ``versions.code_fingerprint`` tells the exact files either way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "GIT_REVISION")


def main(argv: list[str] | None = None) -> int:
    from cxrbench.store import REVISION_FILE, git_revision

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dest", help="folder to hold the frozen package (DEST/cxrbench must not exist)")
    args = p.parse_args(argv)
    target = Path(args.dest) / "cxrbench"
    if target.exists():
        print(f"freeze_code: {target} exists; give a new folder (a frozen copy is never updated in place)",
              file=sys.stderr)
        return 2
    revision = git_revision(REPO / "harness")  # the checkout copied, whichever cxrbench is installed
    if revision is None:
        print(f"freeze_code: {REPO} is not a git checkout; freeze from one", file=sys.stderr)
        return 2
    shutil.copytree(REPO / "harness", target, ignore=SKIP)
    shutil.copytree(REPO / "plugins", target / "plugins", ignore=SKIP)
    (target / REVISION_FILE).write_text(revision + "\n")
    print(f"{target}: cxrbench at {revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
