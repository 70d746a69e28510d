"""Content keys: a stable hash of everything that determines an artifact."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def content_key(data: Any, length: int = 20) -> str:
    """sha256 of the canonical JSON of ``data`` (dict order never matters)."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:length]


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed derived from parts, e.g. (run seed, replica, image index).

    Hash-derived so seeds of different replicas never collide by arithmetic accident.
    """
    digest = hashlib.sha256(canonical_json(list(parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
