"""What a synthetic set cost: fitting and generating, in seconds, device-hours, memory and money.

Figures come from when the work was done, not from this cell: a fit loaded from the cache
reports the seconds its training took (stored with its checkpoint), a synthetic set reused from
the cache the seconds its generation took (stored beside it). Device-hours are wall hours on the
device that did the work (one process; on a CPU with ``torch_threads`` threads).

A post-processing chain that drops images makes the generator draw replacements (top-ups), so an
image that reaches the classifier costs more than one drawn: ``seconds_per_image_delivered`` adds
the chain's seconds on this cell's sets (filtering, top-up generation; not its one-off ``prepare``,
e.g. training proxy-filter's classifier) spread over the images delivered. Measured on Kermany:
ldm seed 0: 0.19 s per image drawn, 0.60 s per image delivered through proxy-filter (22% rejected,
30 top-up rounds).
"""

from __future__ import annotations

from typing import Any


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 5)


def per_delivered_image(per_image: float | None, postprocess_seconds: float | None,
                        delivered: int | None) -> float | None:
    """Seconds per image delivered: drawing one (``per_image``) plus the chain's seconds spread
    over the ``delivered`` images. Without a chain (``postprocess_seconds`` None) it is ``per_image``."""
    if per_image is None or not postprocess_seconds or not delivered:
        return per_image
    return round(per_image + postprocess_seconds / delivered, 5)


def images_delivered(synthetic_stats: dict) -> int:
    """The synthetic images a cell handed on: its training set plus its tuning slice (v2)."""
    return int(synthetic_stats.get("n") or 0) + int((synthetic_stats.get("tuning_slice") or {}).get("n") or 0)


def seconds_per_delivered_image(record: dict) -> float | None:
    """A cell record's seconds per delivered image: its ``cost`` block's figure, or for records
    made before that figure existed, the same sum from what they stored (generation seconds per
    image, the cell's ``postprocess_s``; their chains' ``prepare`` loaded a cached proxy)."""
    gen = record.get("generator") or {}
    cost = gen.get("cost") or {}
    if "seconds_per_image_delivered" in cost:
        return cost["seconds_per_image_delivered"]
    return per_delivered_image(cost.get("generate_seconds_per_image"),
                               chain_seconds(gen.get("postprocessing"), record.get("timings")),
                               images_delivered(gen.get("synthetic") or {}))


def chain_seconds(postprocessing: dict | None, timings: dict | None) -> float | None:
    """A chain's seconds on a cell's sets (top-up draws included): the cell's ``postprocess_s``
    less its one-off ``postprocess_prepare_s``; None for a cell without a chain."""
    if not postprocessing:
        return None
    timings = timings or {}
    return round(timings.get("postprocess_s", 0.0) - timings.get("postprocess_prepare_s", 0.0), 3)


def redrawn(postprocessing: dict | None) -> int:
    """Images a chain made the generator draw again (top-ups of the training set and tuning slice)."""
    pp = postprocessing or {}
    return sum(int((pp.get(k) or {}).get("generated") or 0) for k in ("topup", "tuning_topup"))


def usd_per_delivered_image(record: dict) -> float | None:
    """A hosted model's price per image delivered: every top-up draw is billed too."""
    gen = record.get("generator") or {}
    cost = gen.get("cost") or {}
    if "usd_per_image_delivered" in cost:
        return cost["usd_per_image_delivered"]
    return _usd_delivered(cost.get("usd_per_image"), images_delivered(gen.get("synthetic") or {}),
                          redrawn(gen.get("postprocessing")))


def _usd_delivered(price: float | None, delivered: int, extra_draws: int) -> float | None:
    if price is None or not delivered or not extra_draws:
        return price
    return round(price * (delivered + extra_draws) / delivered, 6)


def cost_record(gen_info: dict, synthetic_stats: dict, device: str, postprocessing: dict | None = None,
                timings: dict | None = None) -> dict[str, Any]:
    """The ``cost`` block of a cell's generator record. ``postprocessing``: the record's block of
    that name (None: no chain); ``timings``: the cell's, whose ``postprocess_s`` less its
    ``postprocess_prepare_s`` is the chain's time on this cell's sets, top-ups included."""
    import torch

    from cxrbench.kit.images import peak_memory_mb

    fit = gen_info.get("fit_stats") or {}
    fit_s = fit.get("train_seconds")
    per_image = synthetic_stats.get("seconds_per_image_made") or synthetic_stats.get("seconds_per_image")
    api = synthetic_stats.get("generator") or {}
    price = api.get("price_per_image_usd")
    kind = "cuda" if str(device).startswith("cuda") else str(device)
    postprocess_seconds = chain_seconds(postprocessing, timings)
    return {
        "device": kind,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if kind == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "fit_seconds": fit_s,
        "fit_device_hours": _hours(fit_s),
        "fit_peak_memory_mb": fit.get("peak_memory_mb"),
        "generate_seconds_per_image": per_image,
        "generate_device_hours_per_1000": _hours(per_image * 1000) if per_image is not None else None,
        "postprocess_seconds": postprocess_seconds,
        "seconds_per_image_delivered": per_delivered_image(per_image, postprocess_seconds,
                                                           images_delivered(synthetic_stats)),
        # the process's peak so far (CPU: max resident set; CUDA: max allocated by torch)
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "usd_per_image": price,
        "usd_per_image_delivered": _usd_delivered(price, images_delivered(synthetic_stats), redrawn(postprocessing)),
    }
