"""Records that can be edited or broken unnoticed (issue #28 point 2): every record is sealed with
a digest of its content; reuse and `show` verify it; an edited or truncated record is reported
in one line naming the file, never shown as a number, and a re-run recomputes it."""

import json

import pytest

from cxrbench.cli import main
from cxrbench.store import RunStore, check_record, record_digest, seal

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("digests")
    args = ["run", "--protocol", "real-only", "--schedule", "quick", "--size", "16", "--bootstrap", "20",
            "--no-progress", "--out", str(root / "run"), "--cache-dir", str(root / "cache")]
    assert main(args) == 0
    (path,) = (root / "run" / "cells").glob("*.json")
    return args, path, path.read_text()


def test_a_record_is_sealed_and_its_digest_covers_every_field():
    record = seal({"cell": {"id": "x"}, "metrics": {"auroc": 0.587, "nan": float("nan")}, "path": [1, (2, 3)]})
    assert check_record(record) is None and record["digest"]["sha256"] == record_digest(record)
    edited = json.loads(json.dumps(record))
    edited["metrics"]["auroc"] = 0.987
    assert "does not match its digest" in check_record(edited)
    assert check_record(json.loads(json.dumps(record))) is None  # survives a JSON round trip


def _edit_auroc(text: str) -> str:
    record = json.loads(text)
    (m,) = record["metrics"].values()
    m["macro"]["auroc"] = 0.987
    return json.dumps(record, indent=2, sort_keys=True)


@pytest.mark.parametrize("damage", ["edited", "truncated"])
def test_a_damaged_record_is_not_shown_and_a_rerun_recomputes_it(damage, finished, capsys):
    args, path, original = finished
    assert "digest" in json.loads(original)
    path.write_text(_edit_auroc(original) if damage == "edited" else original[: len(original) // 2])
    capsys.readouterr()
    assert main(["show", str(path.parent.parent)]) == 0
    out = capsys.readouterr().out
    assert "0.987" not in out and f"NOT SHOWN: {path}" in out
    (line,) = [x for x in out.splitlines() if x.startswith("NOT SHOWN")]
    assert ("does not match its digest" if damage == "edited" else "cut short") in line
    assert main(args) == 0  # recomputed, not reused
    captured = capsys.readouterr()
    assert "not trusted; a re-run recomputes it" in captured.err and "1 cell(s) ran, 0 reused" in captured.out
    again = json.loads(path.read_text())
    assert check_record(again) is None and json.loads(original)["metrics"] == again["metrics"]
    records, problems = RunStore(path.parent.parent).checked_records()
    assert problems == [] and len(records) == 1


def test_an_unsealed_record_is_shown_with_a_note(finished, capsys):
    args, path, original = finished
    record = json.loads(original)
    record.pop("digest")
    path.write_text(json.dumps(record))
    capsys.readouterr()
    main(["show", str(path.parent.parent)])
    assert "carry no digest" in capsys.readouterr().out
    path.write_text(original)


PUBLISHED = sorted((__import__("pathlib").Path(__file__).resolve().parents[2] / "leaderboard").glob("*/records/*"))


@pytest.mark.parametrize("damage", ["edited", "unsealed"])
def test_the_leaderboard_build_refuses_a_record_it_cannot_verify(damage, tmp_path, capsys):
    import shutil

    src = PUBLISHED[0]
    run = tmp_path / src.name
    shutil.copytree(src, run)
    path = sorted((run / "cells").glob("*.json"))[0]
    record = json.loads(path.read_text())
    if damage == "edited":
        m = next(iter(record["metrics"].values()))  # a record may hold several test sets
        m["macro"]["auroc"] = 0.999
    else:
        record.pop("digest")
    path.write_text(json.dumps(record, indent=2, sort_keys=True))
    assert main(["leaderboard", str(run), "--out", str(tmp_path / "board")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(path) in line
    assert ("does not match its digest" if damage == "edited" else "benchmarks/seal_records.py") in line
    assert not (tmp_path / "board" / "leaderboard.md").exists()


def test_every_published_record_is_sealed_and_verifies():
    assert PUBLISHED
    for folder in PUBLISHED:
        records, problems = RunStore(folder).checked_records()
        assert problems == [] and records and all("digest" in r for r in records)
