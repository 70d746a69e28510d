"""What a synthetic set cost: fitting and generating, in seconds, device-hours, memory and money.

Figures come from when the work was done, not from this cell: a fit loaded from the cache
reports the seconds its training took (stored with its checkpoint), a synthetic set reused from
the cache the seconds its generation took (stored beside it). Device-hours are wall hours on the
device that did the work (one process; on a CPU with ``torch_threads`` threads).
"""

from __future__ import annotations

from typing import Any


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 5)


def cost_record(gen_info: dict, synthetic_stats: dict, device: str) -> dict[str, Any]:
    """The ``cost`` block of a cell's generator record."""
    import torch

    from cxrbench.kit.images import peak_memory_mb

    fit = gen_info.get("fit_stats") or {}
    fit_s = fit.get("train_seconds")
    per_image = synthetic_stats.get("seconds_per_image_made") or synthetic_stats.get("seconds_per_image")
    api = synthetic_stats.get("generator") or {}
    price = api.get("price_per_image_usd")
    kind = "cuda" if str(device).startswith("cuda") else str(device)
    return {
        "device": kind,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if kind == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "fit_seconds": fit_s,
        "fit_device_hours": _hours(fit_s),
        "fit_peak_memory_mb": fit.get("peak_memory_mb"),
        "generate_seconds_per_image": per_image,
        "generate_device_hours_per_1000": _hours(per_image * 1000) if per_image is not None else None,
        # the process's peak so far (CPU: max resident set; CUDA: max allocated by torch)
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "usd_per_image": price,
    }
