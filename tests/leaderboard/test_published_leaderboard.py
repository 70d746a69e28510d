"""The committed leaderboard (leaderboard/<name>/) is reproducible: rebuilding it from its own
committed records (and the images beside them) gives byte-identical tables, page and plots."""

import shutil
from pathlib import Path

import pytest

from cxrbench.leaderboard import build_leaderboard

PUBLISHED = sorted(p for p in (Path(__file__).resolve().parents[2] / "leaderboard").glob("*/records") if p.is_dir())


def test_a_leaderboard_is_published():
    assert PUBLISHED, "leaderboard/<name>/records/ is missing: build it with `cxrbench leaderboard`"


@pytest.mark.parametrize("records", PUBLISHED, ids=[p.parent.name for p in PUBLISHED])
def test_rebuilding_from_the_committed_records_reproduces_every_file(records, tmp_path):
    published = records.parent
    sources = []
    for folder in sorted(p for p in records.iterdir() if p.is_dir()):
        run = tmp_path / "runs" / folder.name  # the results folder as `cxrbench run` left it
        shutil.copytree(folder, run)
        assets = published / "assets" / folder.name
        if assets.is_dir():
            shutil.copytree(assets, run, dirs_exist_ok=True)
        sources.append(run)
    out = tmp_path / "rebuilt"
    build_leaderboard(sources, out)
    committed = sorted(p.relative_to(published) for p in published.rglob("*") if p.is_file())
    rebuilt = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert rebuilt == committed
    for rel in committed:
        assert (out / rel).read_bytes() == (published / rel).read_bytes(), rel


def test_the_readme_tables_are_what_the_summary_script_prints_from_the_published_csv():
    """leaderboard/README.md carries no number typed by hand: its kermany-small tables are the
    output of benchmarks/leaderboard_summary.py on the committed leaderboard.csv."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    csv = root / "leaderboard" / "kermany-small" / "leaderboard.csv"
    if not csv.is_file():
        pytest.skip("no kermany-small leaderboard published")
    printed = subprocess.run([sys.executable, str(root / "benchmarks" / "leaderboard_summary.py"), str(csv)],
                             capture_output=True, text=True, check=True).stdout
    readme = (root / "leaderboard" / "README.md").read_text()
    for table in printed.strip().split("\n\n"):
        assert table in readme, table.splitlines()[0]


def test_the_readme_learning_curve_tables_are_the_built_ones():
    """leaderboard/README.md's learning-curve tables are copied from each built learning-curves.md
    (by benchmarks/readme_curves.py, links re-rooted at the leaderboard's folder), never typed by hand."""
    import re
    import runpy

    root = Path(__file__).resolve().parents[2] / "leaderboard"
    tool = runpy.run_path(str(root.parent / "benchmarks" / "readme_curves.py"))
    readme = (root / "README.md").read_text()
    blocks = re.findall(tool["BLOCK"], readme, re.S)
    built = sorted(p.parent.name for p in root.glob("*/learning-curves.md"))
    assert sorted(name for name, _ in blocks) == built
    for name, block in blocks:
        assert block == tool["readme_block"](name, (root / name / "learning-curves.md").read_text()), \
            f"{name}: run python benchmarks/readme_curves.py"
        for target in re.findall(r"\]\(([^)#:]+)\)", block):  # every relative link resolves from the README
            assert (root / target).is_file(), target
