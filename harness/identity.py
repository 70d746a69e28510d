"""What a cell's number depends on beyond its id: the plugins' identities (issue #29: never a
stale number).

A cell id names a generator row by its label and the run's settings by a context hash; it does
not change when a plugin's code does. So every record also stores, for each plugin the cell
used (dataset, generator, post-processors, classifier): its name, the package and class
``version``, a generator's ``sampling_version``, and a fingerprint of the plugin's own source
(its module file; for a plugin from another distribution, every Python file of its top-level
package). A finished cell is reused only while all of these are unchanged: editing a plugin and
re-running re-runs its cells, with or without a version bump. ``--keep-stale`` keeps the old
numbers instead, shown marked stale. Records written before identities were stored have none to
compare and are reused as before.

Shared harness and kit code is not part of a plugin's identity (editing the harness would
otherwise invalidate every result); each record names it with ``versions.code_fingerprint``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from pathlib import Path
from typing import Any


def source_fingerprint(module_name: str) -> str:
    """16 hex digits over the plugin's source: its module file, and for a module outside cxrbench
    every ``.py`` file of its top-level package (a plugin spread over helper modules). Read from
    disk (an edit is seen at once), hashed again only when a file's size or mtime changed."""
    files = _source_files(module_name)
    return _hash_files(tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.lru_cache(maxsize=256)
def _hash_files(stamped: tuple) -> str:
    digest = hashlib.sha256()
    for path, _, _ in stamped:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()[:16]


def _source_files(module_name: str) -> list[Path]:
    module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
    files: list[Path] = []
    path = inspect.getsourcefile(module)
    if path:
        files.append(Path(path))
    top = module_name.split(".")[0]
    if top != "cxrbench":
        root = sys.modules[top] if top in sys.modules else __import__(top)
        base = getattr(root, "__file__", None)
        if base and Path(base).name == "__init__.py":
            files += sorted(p for p in Path(base).parent.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(set(files))


def plugin_identity(plugins, kind: str, name: str) -> dict[str, Any]:
    """name, version (package/class), sampling_version (generators), source fingerprint."""
    entry = plugins.registry(kind).get(name)
    cls = plugins.load(kind, name)
    out = {"name": name, "version": entry.version, "source": source_fingerprint(cls.__module__)}
    if kind == "generator":
        out["sampling_version"] = str(getattr(cls, "sampling_version", None))
    return out


def cell_identity(runner, cell) -> dict[str, Any]:
    """The identities of every plugin ``cell`` uses under ``runner``'s spec."""
    spec, plugins = runner.spec, runner.plugins
    out = {"dataset": [plugin_identity(plugins, "dataset", r.name) for r in [spec.dataset, *spec.external]],
           "classifier": plugin_identity(plugins, "classifier", spec.classifier.name)}
    if cell.generator is not None and cell.protocol.uses_generator:
        out["generator"] = plugin_identity(plugins, "generator", cell.generator.name)
        chain = [*cell.generator.postprocess, *spec.postprocess]
        out["postprocessors"] = [plugin_identity(plugins, "postprocessor", p.name) for p in chain]
    return out


def stale_reasons(stored: dict | None, now: dict) -> list[str]:
    """What changed between a record's identities and today's (empty: nothing, or no record of
    them), e.g. ``generator 'mean-noise': source changed``."""
    if not stored:
        return []
    reasons = []
    for role in sorted(set(stored) | set(now)):
        before, after = stored.get(role), now.get(role)
        pairs = list(zip(before, after)) if isinstance(before, list) and isinstance(after, list) \
            and len(before) == len(after) else [(before, after)]
        for b, a in pairs:
            if b == a:
                continue
            if not isinstance(b, dict) or not isinstance(a, dict) or b.get("name") != a.get("name"):
                reasons.append(f"{role} changed")
                continue
            what = [k.replace("_", " ") + (" changed" if k != "source" else " code changed")
                    for k in ("version", "sampling_version", "source") if b.get(k) != a.get(k)]
            reasons.append(f"{role} {a['name']!r}: " + ", ".join(what))
    return reasons
