"""Results store: one self-describing JSON record per cell, written atomically.

Layout of a run directory::

    <out>/spec.resolved.json        the resolved spec of the last invocation
    <out>/cells/<cell_id>.json      one record per cell (status "ok" or "failed")
    <out>/cells/<cell_id>/...       its artifacts (predictions CSV, contact sheet, manifest)
    <out>/summary.json              comparisons against the baseline, Bonferroni-corrected

A record with status "ok" is never recomputed; a "failed" one is retried on the next run.

Every record is **sealed**: ``record["digest"]`` holds the sha256 of its canonical JSON (sorted
keys, no whitespace, the digest itself left out). Reuse, ``show`` and the leaderboard verify it: a
record edited or cut short is reported in one line naming the file, never shown as a number,
and recomputed by the next run. Records written before sealing existed carry no digest; they
are reused and shown (their numbers cannot be checked), and the leaderboard refuses them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


DIGEST_KEY = "digest"


def record_digest(record: dict) -> str:
    """sha256 of a record's canonical JSON, its digest left out."""
    import hashlib

    body = {k: v for k, v in record.items() if k != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(record: dict) -> dict:
    """The record as it will read back from JSON, with its digest."""
    plain = json.loads(json.dumps({k: v for k, v in record.items() if k != DIGEST_KEY}, default=str))
    return {**plain, DIGEST_KEY: {"sha256": record_digest(plain)}}


def check_record(record: Any) -> str | None:
    """What is wrong with a parsed record (None: it is sound, or unsealed)."""
    if not isinstance(record, dict) or "cell" not in record:
        return "not a cell record"
    digest = record.get(DIGEST_KEY)
    if digest is None:
        return None
    if not isinstance(digest, dict) or digest.get("sha256") != record_digest(record):
        return "its content does not match its digest (edited or damaged)"
    return None


class BadRecord(Exception):
    """A record file that cannot be trusted (unreadable, cut short, or failing its digest)."""


def read_record(path: Path) -> dict:
    """A record file, verified; :class:`BadRecord` says in one line what is wrong with it."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRecord(f"{path}: unreadable or cut short ({type(exc).__name__}): not trusted; a re-run "
                        "recomputes it") from None
    problem = check_record(record)
    if problem:
        raise BadRecord(f"{path}: {problem}: not trusted; a re-run recomputes it")
    return record


def _warn(message: str) -> None:
    logging.getLogger(__name__).warning(message)


class RunStore:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.cells_dir = self.out / "cells"

    def record_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def artifact_dir(self, cell_id: str) -> Path:
        d = self.cells_dir / cell_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def load(self, cell_id: str) -> dict | None:
        """The verified record of ``cell_id``; None when there is none or it cannot be trusted
        (then recomputed, never reused)."""
        path = self.record_path(cell_id)
        if not path.is_file():
            return None
        try:
            return read_record(path)
        except BadRecord as exc:
            _warn(str(exc))
            return None

    def is_finished(self, cell_id: str) -> bool:
        record = self.load(cell_id)
        return bool(record) and record.get("status") == "ok"

    def write(self, cell_id: str, record: dict) -> Path:
        """Seal and write ``record``; with ``CXRBENCH_CHECK_RECORDS=1`` (the test suite sets it) a
        record that does not conform to record.schema.json raises instead (record_schema.py)."""
        path = self.record_path(cell_id)
        sealed = seal(record)
        if os.environ.get("CXRBENCH_CHECK_RECORDS") == "1":
            from cxrbench.record_schema import check_written_record

            check_written_record(sealed, path)
        atomic_write_json(path, sealed)
        return path

    def checked_records(self) -> tuple[list[dict], list[str]]:
        """(every trustworthy record, one line per record file that is not)."""
        if not self.cells_dir.is_dir():
            return [], []
        out, problems = [], []
        for path in sorted(self.cells_dir.glob("*.json")):
            try:
                out.append(read_record(path))
            except BadRecord as exc:
                problems.append(str(exc))
        return out, problems

    def records(self) -> list[dict]:
        """Every trustworthy record; one warning line for each that is not."""
        records, problems = self.checked_records()
        for line in problems:
            _warn(line)
        return records


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the code that made a record: every ``.py`` / ``.yaml`` / ``.js`` / ``.css`` file of
    the ``cxrbench.plugins`` and ``cxrbench`` packages (name + bytes), so records made by a
    pip-installed copy or a copied folder, where :func:`git_revision` is None, still say whether
    they came from the same code (a checkout and a wheel of it give the same value)."""
    import cxrbench.plugins

    return fingerprint_files({"cxrbench.plugins": Path(cxrbench.plugins.__file__).parent,
                              "cxrbench": Path(__file__).parent})


def fingerprint_files(packages: dict[str, Path]) -> str:
    """16 hex digits of sha256 over the code files of ``packages`` (name -> folder), each file
    named by its package and relative path; a file is counted under the first package holding it."""
    import hashlib

    files: dict[Path, str] = {}
    for name, root in packages.items():
        root = Path(root).resolve()
        for f in sorted(root.rglob("*")):
            if f.suffix in (".py", ".yaml", ".js", ".css") and "__pycache__" not in f.parts:
                files.setdefault(f.resolve(), f"{name}/{f.resolve().relative_to(root).as_posix()}")
    digest = hashlib.sha256()
    for f, label in sorted(files.items(), key=lambda item: item[1]):
        digest.update(f"{label}\n".encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


#: the file a frozen copy of the package carries instead of a .git folder (benchmarks/freeze_code.py)
REVISION_FILE = "GIT_REVISION"


def git_revision(where: Path | None = None) -> str | None:
    """The git revision of the cxrbench checkout (``+dirty`` with uncommitted changes); in a frozen
    copy, which long benchmark runs use so that edits to the checkout cannot reach them, the
    revision it was copied from (its :data:`REVISION_FILE`); else None (a wheel, a bare copy).

    ``where`` asks about another folder (default: the folder this module runs from). A tool that
    copies a checkout's sources must ask about that checkout, not about the installed package,
    which after ``pip install .`` is a site-packages copy with no git behind it."""
    here = Path(where).resolve() if where is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is None or out.returncode != 0:
        frozen = here / REVISION_FILE
        return (frozen.read_text().strip() or None) if frozen.is_file() else None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
