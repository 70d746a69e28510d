"""Device, precision and progress bars: what the harness decides for every plugin.

A plugin receives its device as a string (``"cpu"``, ``"cuda:0"``; ``"auto"`` is resolved with
:func:`resolve_device`), wraps its forward passes in :func:`autocast` (bf16 on CUDA, float32
on CPU) instead of choosing a precision itself, and shows long loops with :func:`bar` (a tqdm
bar on stderr that ``CXRBENCH_PROGRESS=0`` or ``enabled=False`` silences), so every plugin
behaves like the harness. These are the harness's own functions, re-exported here so that a
plugin imports only ``cxrbench.kit``.
"""

from __future__ import annotations

from cxrbench.device import autocast, resolve_device
from cxrbench.progress import bar, progress_enabled

__all__ = ["autocast", "bar", "progress_enabled", "resolve_device"]
