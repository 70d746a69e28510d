"""Records name the git revision of the code that made them (issue #32), also when a benchmark
runs from a frozen copy of the code (benchmarks/freeze_code.py), which is no git checkout; and
sealing a record keeps the revision it was written with."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cxrbench.store import REVISION_FILE, record_digest, seal

REPO = Path(__file__).resolve().parents[2]


def test_a_frozen_copy_names_the_revision_it_was_copied_from(tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.skip(f"{REPO} is no git checkout here (a source archive): nothing to freeze from")
    made = subprocess.run([sys.executable, str(REPO / "benchmarks" / "freeze_code.py"), str(tmp_path / "frozen")],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    frozen = tmp_path / "frozen" / "cxrbench"
    revision = (frozen / REVISION_FILE).read_text().strip()
    # the checkout's commit (others may commit or edit meanwhile: checked as a commit of this repository)
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", revision), revision
    assert subprocess.run(["git", "cat-file", "-e", revision.split("+")[0] + "^{commit}"], cwd=REPO).returncode == 0
    probe = ("import cxrbench, cxrbench.plugins; from cxrbench.store import git_revision; "
             "print(cxrbench.__file__); print(cxrbench.plugins.__file__); print(git_revision())")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "frozen")}
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    package, plugins, seen = ran.stdout.split()
    assert Path(package).parent == frozen and Path(plugins).parent == frozen / "plugins"  # the copy ran
    assert seen == revision
    again = subprocess.run([sys.executable, str(REPO / "benchmarks" / "freeze_code.py"), str(tmp_path / "frozen")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.strip().startswith("freeze_code: ")  # never updated in place


def test_freezing_asks_the_checkout_not_the_installed_package(tmp_path):
    """CI installs cxrbench with ``pip install .`` (a site-packages copy, no git behind it) and
    runs this checkout's benchmarks/freeze_code.py: the revision must be the checkout's."""
    from cxrbench.store import git_revision
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.skip(f"{REPO} is no git checkout here")
    assert git_revision(REPO / "harness").split("+")[0] == subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert git_revision(tmp_path) is None  # a folder with neither git nor a revision file


def test_a_copy_without_the_file_says_it_does_not_know(tmp_path):
    bare = tmp_path / "bare" / "cxrbench"
    bare.mkdir(parents=True)
    (bare / "__init__.py").write_text("")
    (bare / "store.py").write_text((REPO / "harness" / "store.py").read_text())
    ran = subprocess.run([sys.executable, "-c", "from cxrbench.store import git_revision; print(git_revision())"],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path / "bare")},
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "None", ran.stderr


def test_sealing_keeps_the_revision_a_record_was_written_with():
    record = {"cell": {"protocol": "real-only.v1"}, "git_revision": "0123abcd", "versions": {"cxrbench": "0.1.0"}}
    sealed = seal(record)
    assert sealed["git_revision"] == "0123abcd"
    assert sealed["digest"]["sha256"] == record_digest(record)  # the revision is part of what the digest covers
