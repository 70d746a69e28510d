"""Cache integrity: checksummed entries, corrupt ones moved aside and rebuilt, one builder at a
time, and no leftovers from killed writes.

A cache that is trusted blindly turns one bad file (a disk error, a killed copy, a tampered
checkpoint) into a permanent failure of every later run. Here every entry written by the harness
carries a manifest (size and sha256 of each file); an entry that fails its check, or that cannot
be loaded, is renamed ``<name>.corrupt-<time>`` (kept for inspection, never read again) and
rebuilt, with a warning naming the file. Builders hold an exclusive lock on ``<entry>.lock`` so
two runs that need the same entry build it once; the second waits, then reads the finished one.
Locks are ``filelock`` locks (an OS lock on the file: flock on POSIX, msvcrt on Windows), which the
operating system releases when the holder dies, so a killed run never leaves a stuck lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

#: temporary names left by interrupted writes (atomic_write_* and the dataset cache), cleaned
#: up when older than STALE_AFTER_S (a live write of a cache entry takes seconds, not an hour)
TEMP_PATTERNS = (".*.tmp-*", "*.tmp", "*.tmp.npy", "*.tmp.json", ".*.json.*", "*.json.tmp")
STALE_AFTER_S = 3600.0


logger = logging.getLogger(__name__)


def warn(message: str) -> None:
    logger.warning(message)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def manifest(paths: list[Path], root: Path) -> dict[str, list]:
    """``{relative path: [size, sha256]}`` of ``paths`` (for a DONE record or a sidecar)."""
    return {str(Path(p).relative_to(root)): [Path(p).stat().st_size, sha256_file(p)] for p in sorted(paths)}


def verify(entries: dict[str, list], root: Path) -> str | None:
    """None when every file matches its manifest entry, else what is wrong (one line)."""
    for rel, (size, digest) in sorted(entries.items()):
        p = Path(root) / rel
        if not p.is_file():
            return f"{p} is missing"
        if p.stat().st_size != size:
            return f"{p} has {p.stat().st_size} bytes, expected {size}"
        if sha256_file(p) != digest:
            return f"{p} does not match its checksum"
    return None


#: the checksum sidecar of a single-file cache entry: ``<file>.sha256.json``
CHECKSUM_SUFFIX = ".sha256.json"


def checksum_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + CHECKSUM_SUFFIX)


def write_checksum(path: Path) -> None:
    """Record the size, sha256 and modification time of ``path`` in its sidecar (atomically)."""
    import json
    import tempfile

    path = Path(path)
    st = path.stat()
    side = checksum_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{side.name}.", suffix=".tmp", dir=side.parent)  # *.tmp: cleaned if killed
    with os.fdopen(fd, "w") as fh:
        json.dump({"size": st.st_size, "sha256": sha256_file(path), "mtime_ns": st.st_mtime_ns}, fh)
    os.replace(tmp, side)


def check_file(path: Path, *, missing_ok: bool = False) -> str | None:
    """None when ``path`` matches its checksum sidecar, else what is wrong (one line).

    The content is re-hashed only when the file's modification time differs from the one
    recorded when it was last verified (any write changes it), so a large cache that nobody
    touched loads without reading it twice. ``missing_ok``: a file without a sidecar (made
    before checksums existed) is trusted once and given one - for entries that are costly to
    rebuild (decoded datasets, paid images); elsewhere a missing sidecar is a problem."""
    import json

    path, side = Path(path), checksum_path(path)
    if not side.is_file():
        if missing_ok and path.is_file():
            write_checksum(path)
            return None
        return f"{path.name} has no checksum"
    try:
        meta = json.loads(side.read_text())
        size, digest = int(meta["size"]), str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"the checksum of {path.name} is unreadable"
    st = path.stat()
    if st.st_size != size:
        return f"{path.name} has {st.st_size} bytes, expected {size}"
    if st.st_mtime_ns == meta.get("mtime_ns"):
        return None
    if sha256_file(path) != digest:
        return f"{path.name} does not match its checksum"
    write_checksum(path)  # the same bytes under a new time (a copy): verified, hash once
    return None


def quarantine(path: Path, why: str, *, also: tuple[Path, ...] = ()) -> Path:
    """Rename a bad cache entry (and its sidecars ``also``) aside, kept for inspection and never
    read again, and say so in one line."""
    path = Path(path)
    stamp = f"corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    target = path.with_name(f"{path.name}.{stamp}")
    os.replace(path, target)
    for side in also:
        if Path(side).exists():
            os.replace(side, Path(side).with_name(f"{Path(side).name}.{stamp}"))
    warn(f"cache entry {path} is corrupt ({why}); moved aside to {target.name} and rebuilding it")
    return target


def _file_lock(lock_file: Path) -> FileLock:
    """A fresh lock object on ``lock_file`` (never shared: two holders in one process, threads
    for instance, exclude each other as two processes do)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(lock_file, thread_local=False)


@contextmanager
def entry_lock(path: Path, what: str = "") -> Iterator[None]:
    """Exclusive lock on ``<path>.lock`` while an entry is checked or built; a second builder says
    it waits, then waits as long as the first one builds."""
    lock = _file_lock(Path(f"{path}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info(f"waiting: another process is building {what or path}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class CellLock:
    """Non-blocking-first exclusive lock on ``<record>.lock``: a run that finds a cell being
    computed by another run goes on with other cells and comes back to it later."""

    def __init__(self, path: Path):
        self.path = Path(f"{path}.lock")
        self.lock: FileLock | None = None

    def acquire(self, blocking: bool) -> bool:
        lock = _file_lock(self.path)
        try:
            lock.acquire(timeout=-1 if blocking else 0)
        except Timeout:
            return False
        self.lock = lock
        return True

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def clean_stale_temps(*roots: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete what interrupted writes left under ``roots`` (files and ``.tmp-`` folders older
    than ``older_than_s``); returns what was removed."""
    import shutil

    now, removed = time.time(), []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for pattern in TEMP_PATTERNS:
            for p in root.rglob(pattern):
                if ".corrupt-" in p.name or p.name.endswith(".lock"):
                    continue
                try:
                    if now - p.stat().st_mtime < older_than_s:
                        continue
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                    removed.append(p)
                except OSError:
                    pass  # raced with another cleaner, or not ours to delete: leave it
    return removed
