"""Progress bars for every long step (tqdm on stderr; silent when disabled)."""

from __future__ import annotations

import os
import sys


def progress_enabled(flag: bool | None = None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("CXRBENCH_PROGRESS", "1") not in ("0", "false", "no")


def bar(iterable=None, *, total=None, desc: str = "", unit: str = "it", enabled: bool | None = None, **kw):
    """A tqdm bar writing to stderr; ``enabled=False`` (or CXRBENCH_PROGRESS=0) hides it."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=not progress_enabled(enabled),
        file=sys.stderr,
        dynamic_ncols=True,
        # In a log file (not a terminal) every refresh is a new chunk of text: refresh rarely.
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        **kw,
    )
