"""Results store: one self-describing JSON record per cell, written atomically.

Layout of a run directory::

    <out>/spec.resolved.json        the resolved spec of the last invocation
    <out>/cells/<cell_id>.json      one record per cell (status "ok" or "failed")
    <out>/cells/<cell_id>/...       its artifacts (predictions CSV, contact sheet, manifest)
    <out>/summary.json              comparisons against the baseline, Bonferroni-corrected

A record with status "ok" is never recomputed; a "failed" one is retried on the next run.
"""

from __future__ import annotations

import json
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
        path = self.record_path(cell_id)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None  # a corrupt record is recomputed, never trusted

    def is_finished(self, cell_id: str) -> bool:
        record = self.load(cell_id)
        return bool(record) and record.get("status") == "ok"

    def write(self, cell_id: str, record: dict) -> Path:
        path = self.record_path(cell_id)
        atomic_write_json(path, record)
        return path

    def records(self) -> list[dict]:
        if not self.cells_dir.is_dir():
            return []
        out = []
        for path in sorted(self.cells_dir.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except json.JSONDecodeError:
                continue
        return out


def git_revision() -> str | None:
    """The git revision of the cxrbench checkout, when it is one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
