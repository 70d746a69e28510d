"""The malformed-spec corpus (tests/faults/specs/): every file is refused by `cxrbench validate`
and by `cxrbench run` with exactly its expected one-line error (expected.json), never a
traceback, a hang or a silent acceptance; and a refused run writes nothing anywhere."""

import json
from pathlib import Path

import pytest

from cxrbench.cli import main

pytestmark = pytest.mark.faults

CORPUS = Path(__file__).parent / "specs"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def test_the_corpus_is_complete():
    files = sorted(p.name for p in CORPUS.glob("*.yaml"))
    assert files == sorted(EXPECTED) and len(files) >= 40


def _one_line_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, (rc, err)
    assert err[0].startswith("cxrbench: error: ")
    return err[0][len("cxrbench: error: "):]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_refuses_in_one_exact_line(name, capsys):
    path = str(CORPUS / name)
    assert _one_line_error(capsys, ["validate", path]) == EXPECTED[name].replace("{file}", path)


@pytest.mark.parametrize("name", ["01-name-traversal.yaml", "02-name-absolute.yaml", "03-name-empty.yaml",
                                  "06-alias-bomb.yaml", "07-deep-nesting.yaml", "13-resize-squash.yaml",
                                  "34-phantom-n-train.yaml", "47-binary.yaml"])
def test_run_refuses_the_same_way_and_writes_nothing(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run folder would be under ./runs
    path = str(CORPUS / name)
    assert _one_line_error(capsys, ["run", "--spec", path, "--cache-dir", str(tmp_path / "cache")]) == \
        EXPECTED[name].replace("{file}", path)
    assert list(tmp_path.iterdir()) == []
