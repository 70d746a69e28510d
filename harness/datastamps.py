"""Is the decoded dataset cache still what the source files say? (issue #28 point 3)

The dataset *fingerprint* (datasets.py) names the data: file names, labels, patients, metadata
and sizes. It is what fit keys and records hold, and it stays the same when the same files are
copied to another machine, so fits and packed generators can be matched across machines.

It cannot see an image replaced by another file of the same size. That is what these stamps
are for: the decoded cache's ``index.json`` holds each source file's size and modification time
(and, after ``--verify-data``, the sha256 of its bytes). On every load the files' current stats
are compared with them; a file whose stat changed (any write changes its mtime) is decoded
again, and only those - the others' pixels are copied from the cache. ``--verify-data`` also
hashes every file's content, which catches a replacement that kept the old mtime (``cp -p``,
``touch -r``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cxrbench.contracts import ImageRecord
from cxrbench.integrity import sha256_file


def _path(record: ImageRecord) -> str | None:
    from cxrbench.datasets import source_path

    return source_path(record.source)


def file_stats(records: Sequence[ImageRecord]) -> dict[str, list[int]]:
    """{record key: [size, mtime_ns]} of every record whose source is a file that exists."""
    out = {}
    for r in records:
        p = _path(r)
        if p is None:
            continue
        try:
            st = os.stat(p)
        except OSError:
            continue
        out[r.key] = [st.st_size, st.st_mtime_ns]
    return out


def content_hashes(records: Sequence[ImageRecord], progress: bool | None = None) -> dict[str, str]:
    """{record key: sha256 of the source file's bytes} (reads every file once)."""
    from cxrbench.progress import bar

    out = {}
    for r in bar(records, desc="verifying data (sha256 of every file)", unit="file", enabled=progress):
        p = _path(r)
        if p is None:
            continue
        try:
            out[r.key] = sha256_file(p)
        except OSError:
            continue
    return out


def changed_keys(index: dict, stats: dict[str, list[int]], hashes: dict[str, str] | None = None) -> list[str]:
    """Keys of the cached records whose source file changed since it was decoded: another size or
    modification time, or (when ``hashes`` is given) other bytes. A cache made before stamps
    existed has none to compare: nothing is reported (its stats are recorded from now on)."""
    old_stats = index.get("stats") or {}
    old_hashes = index.get("sha256") or {}
    changed = []
    for rec in index.get("records", []):
        key = rec["key"]
        if key in old_stats and key in stats and list(old_stats[key]) != list(stats[key]):
            changed.append(key)
        elif hashes is not None and key in old_hashes and key in hashes and old_hashes[key] != hashes[key]:
            changed.append(key)
    return sorted(changed)
