"""What the rest of a run will cost, priced from the finished records of the same results folder.

`cxrbench run --dry-run` lists the cells, generator fits and synthetic replicas left to do; this
module prices them with what the same folder already measured on the same kind of device (the
records' own timings; only those of this very CPU or GPU model when there are any: in one
published folder, a classifier cell took a median 172 s on one CPU and 75 s on another), so that
before starting, a user sees whether the rest of a grid is an hour or a week on their machine:

- a cell to run: the median, over finished records with the same classifier (or segmenter) and
  schedule, of a
  cell's own time (its total minus generator fit and generation, which cells share and which are
  priced apart below);
- a fit to run: the median fit time of the records of the same generator and options (a
  step-defined fit costs the same at every real-data size, which is why it is not matched on
  size);
- a replica to generate: its images x the median seconds per generated image of that generator.

Only the fits and replicas a cell still to run needs are priced (a finished cell's fit may be
missing from this machine's cache: that costs nothing until a cell needs it).

The result is serial time in one process. On a CPU, several processes sharing the cores do not
divide it by their number (they compete for the same cores and memory bandwidth). Work that no
finished record of this folder can price (a generator never fitted here, another classifier) is
named, never guessed.
"""

from __future__ import annotations

import statistics


def estimate(plan: dict, records: list[dict], device: str, machine: str | None = None) -> dict:
    """Price ``plan`` (:func:`cxrbench.plan.plan`'s output) with ``records`` measured on
    ``device``'s kind (cpu, cuda); of those, only the ones made on ``machine`` (this CPU's or
    GPU's model name, :func:`machine_name`) when there are any: two CPUs can differ twofold.
    Returns {device, machine (the model the basis was measured on, or None: any), basis (records
    used), cells: {n, seconds}, fits: [(name, seconds)], images: {n, seconds}, unpriced: [what
    (how many)], total_s}."""
    kind = device.split(":")[0]
    mine = [r for r in records if r.get("status") == "ok" and r.get("timings")
            and str((r.get("hardware") or {}).get("device", "")).split(":")[0] == kind]
    here = [r for r in mine if machine and _machine_of(r) == machine]
    mine, machine = (here, machine) if here else (mine, None)
    cell_s = _cell_seconds(mine)
    fit_s = _by_generator(mine, lambda r: ((r.get("generator") or {}).get("cost") or {}).get("fit_seconds"))
    image_s = _by_generator(mine, lambda r: ((r.get("generator") or {}).get("cost") or {}).get("generate_seconds_per_image"))
    out = {"device": kind, "machine": machine, "basis": len(mine), "cells": {"n": 0, "seconds": 0.0}, "fits": [],
           "images": {"n": 0, "seconds": 0.0}, "unpriced": []}
    unpriced: dict[str, int | None] = {}  # what cannot be priced -> how many cells / images (a fit: None)
    for c in plan["cells"]:
        if not c["status"].startswith("to run"):
            continue
        seconds = cell_s.get((c.get("model"), c.get("schedule")))
        if seconds is None:
            what = f"cells of {c.get('model')} ({c.get('schedule')})"
            unpriced[what] = unpriced.get(what, 0) + 1
            continue
        out["cells"]["n"] += 1
        out["cells"]["seconds"] += seconds
    for name, f in plan["fits"].items():
        if not f["status"].startswith("to fit") or not f.get("needed", True):
            continue
        seconds = fit_s.get(_generator_key(f["generator"], f.get("options")))
        if seconds is None:
            unpriced[f"fit {name}"] = None
        else:
            out["fits"].append((name, seconds))
    for rep in plan["replicas"].values():
        if rep["status"] != "to generate" or not rep.get("needed", True):
            continue
        fit = plan["fits"].get(rep.get("fit"), {})
        each = image_s.get(_generator_key(fit.get("generator"), fit.get("options")))
        if each is None:
            what = f"images of {rep.get('fit')}"
            unpriced[what] = unpriced.get(what, 0) + rep["images"]
            continue
        out["images"]["n"] += rep["images"]
        out["images"]["seconds"] += rep["images"] * each
    out["unpriced"] = [what if n is None else f"{what} ({n:,})" for what, n in sorted(unpriced.items())]
    out["total_s"] = out["cells"]["seconds"] + sum(s for _, s in out["fits"]) + out["images"]["seconds"]
    return out


def machine_name(device: str) -> str | None:
    """This machine's model name for ``device``: the GPU's for CUDA, else the CPU's."""
    from cxrbench.device import cpu_model

    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device).index or 0) if torch.cuda.is_available() else None
    return cpu_model()


def _machine_of(record: dict) -> str | None:
    hw = record.get("hardware") or {}
    return hw.get("gpu") if str(hw.get("device", "")).startswith("cuda") else hw.get("cpu")


def _cell_seconds(records: list[dict]) -> dict:
    """{(classifier or segmenter, schedule): median seconds of a cell's own work}."""
    times: dict[tuple, list[float]] = {}
    for r in records:
        t = r["timings"]
        own = t.get("total_s", 0.0) - t.get("generator_fit_s", 0.0) - t.get("generate_s", 0.0)
        model = r.get("segmenter") or r.get("classifier") or {}
        key = (model.get("name"), (r.get("cell") or {}).get("schedule"))
        times.setdefault(key, []).append(own)
    return {k: statistics.median(v) for k, v in times.items()}


def _by_generator(records: list[dict], value) -> dict:
    """{(generator, options): median of ``value(record)``} over the records that have it."""
    values: dict[tuple, list[float]] = {}
    for r in records:
        v = value(r)
        gen = (r.get("cell") or {}).get("generator") or {}
        if v is not None and gen.get("name"):
            values.setdefault(_generator_key(gen["name"], gen.get("options")), []).append(float(v))
    return {k: statistics.median(v) for k, v in values.items()}


def _generator_key(name, options) -> tuple:
    return name, tuple(sorted((str(k), repr(v)) for k, v in (options or {}).items()))


def duration(seconds: float) -> str:
    """'40 s', '12 min', '3.4 h', '2.1 days': what a person planning a run reads."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def render(est: dict) -> str:
    """The dry run's estimate line(s); empty when nothing is left to do."""
    cells, images, fits = est["cells"], est["images"], est["fits"]
    if not (cells["n"] or fits or images["n"] or est["unpriced"]):
        return ""
    parts = []
    if cells["n"]:
        parts.append(f"{cells['n']} cell(s) x {duration(cells['seconds'] / cells['n'])} = {duration(cells['seconds'])}")
    if fits:
        parts.append(f"{len(fits)} fit(s) = {duration(sum(s for _, s in fits))} "
                     f"({', '.join(f'{n} {duration(s)}' for n, s in fits)})")
    if images["n"]:
        parts.append(f"{images['n']:,} image(s) to generate = {duration(images['seconds'])}")
    where = f"this {est['device']} ({est['machine']})" if est.get("machine") else est["device"]
    lines = [f"estimate, one process, from {est['basis']} finished record(s) on {where} in this folder: "
             + "; ".join(parts) + f"; total {duration(est['total_s'])}"] if parts else []
    if est["unpriced"]:
        lines.append(f"not priced (no finished record of it on {est['device']} here): " + "; ".join(est["unpriced"]))
    return "\n".join(lines)
