"""`cxrbench run --dry-run`: the grid a spec expands to and what of it is already cached.

Nothing is fitted, generated or trained. The training dataset is loaded (from its decoded cache
when there is one) because fit keys depend on its fingerprint. For every cell: finished (its
record is stored) or to run; for every generator fit: cached, resumable from a training
checkpoint (at which step), or to fit; for every synthetic replica the cells need: cached or to
generate.
"""

from __future__ import annotations

import json


def plan(runner) -> dict:
    """The grid of ``runner``'s spec with the cache status of each cell, fit and replica (for a
    grid spec, every slice's, each row prefixed with its slice: dataset | classifier | chain)."""
    from cxrbench.device import resolve_device
    from cxrbench.estimate import estimate, machine_name
    from cxrbench.grid import grid_slices, is_grid, slice_label, slice_runner

    if not is_grid(runner.spec):
        out = _plan_slice(runner)
    else:
        out = {"cells": [], "fits": {}, "replicas": {}}
        for sub in grid_slices(runner.spec):
            part, where = _plan_slice(slice_runner(runner, sub)), slice_label(sub)
            out["cells"] += [{**c, "cell": f"{where} | {c['cell']}"} for c in part["cells"]]
            # fits and replicas are shared between the slices of one dataset: listed once, needed
            # (cxrbench.estimate) when a cell of any slice still needs them
            for k, v in part["fits"].items():
                _merge(out["fits"], f"{sub.dataset.name} | {k}", v)
            for k, v in part["replicas"].items():
                _merge(out["replicas"], f"{sub.dataset.name} | {k}", {**v, "fit": f"{sub.dataset.name} | {v['fit']}"})
    device = str(resolve_device(runner.device_request))
    out["estimate"] = estimate(out, runner.store.records(), device, machine_name(device))
    return out


def _merge(table: dict, key: str, entry: dict) -> None:
    """Add ``entry`` under ``key``; one already there stays, needed if either is."""
    kept = table.setdefault(key, entry)
    kept["needed"] = kept.get("needed", False) or entry.get("needed", False)


def _plan_slice(runner) -> dict:
    from cxrbench.cells import expand_cells
    from cxrbench.device import resolve_device
    from cxrbench.generation import DONE_FILE, fit_dir, replica_path, replica_plan
    from cxrbench.runner import _default_cache_root
    from cxrbench.subsets import size_token

    runner.device = resolve_device(runner.device_request)
    runner.cache_root = runner.cache_dir or _default_cache_root()
    spec, cache = runner.spec, runner.cache_root
    cells = expand_cells(spec)
    # the plan says what a run would do, so it refuses what a run would refuse
    runner.refuse_relabelled(cells)
    out = {"cells": [], "fits": {}, "replicas": {}}
    model = spec.segmenter.name if spec.task == "segmentation" and spec.segmenter else spec.classifier.name
    for cell in cells:
        status, reasons = runner.cell_status(cell)
        if status == "stale":
            status = f"to run (stale: {'; '.join(reasons)})"
        elif status == "outdated":
            status = f"to run ({reasons[0]})"
        elif reasons:
            status = f"finished (STALE, kept by --keep-stale: {'; '.join(reasons)})"
        # the trained model and its schedule: what cxrbench.estimate prices a cell by
        out["cells"].append({"cell": cell.id, "status": status, "model": model, "schedule": cell.schedule})
    users = [c for c in cells if c.generator is not None and c.protocol.uses_generator]
    if not users:
        return out
    # a fit or replica counts as work (cxrbench.estimate) only when a cell still to run needs it
    to_run = {c["cell"] for c in out["cells"] if c["status"].startswith("to run")}
    for cell in users:
        v = cell.generator
        needed = cell.id in to_run
        source = runner.training_source(cell.real_data)
        generator, key = unfitted_generator(runner, v, source)
        ckpt = fit_dir(cache, v.name, key)
        if not getattr(type(generator).capabilities, "needs_training", True):
            status = "no fit needed"
        elif (ckpt / DONE_FILE).is_file():
            status = "cached"
        elif v.fit_from is not None:  # installed from the pack when the run starts, never trained
            status = f"cached (from pack {v.fit_from})"
        elif (ckpt / "resume" / "train_state.json").is_file():
            step = json.loads((ckpt / "resume" / "train_state.json").read_text()).get("step")
            status = f"to fit (resumes at step {step})"
        else:
            status = "to fit"
        fit_name = v.label if cell.real_data is None else f"{v.label} real={size_token(cell.real_data)}"
        fit = out["fits"].setdefault(fit_name, {"generator": v.name, "options": v.options, "fit_key": key,
                                                "status": status, "needed": False})
        fit["needed"] = fit["needed"] or needed
        for replica, _, conds, rkey in replica_plan(generator, {"fit_key": key}, ratio=cell.ratio, seed=cell.seed,
                                                      source_train=source.train, mix=v.conditions):
            path = replica_path(cache, v.name, rkey)
            rep = out["replicas"].setdefault(f"{fit_name} seed {cell.seed} replica {replica}", {
                "images": len(conds), "status": "cached" if path.is_file() else "to generate", "fit": fit_name,
                "needed": False})
            rep["needed"] = rep["needed"] or needed
    return out


def unfitted_generator(runner, variant, source) -> tuple:
    """(a fresh, unfitted instance of ``variant``'s generator, its fit key on ``source``'s
    training split): what is needed to find its fit and its synthetic sets in the cache."""
    from cxrbench.config import plugin_options
    from cxrbench.generation import fit_key_of

    spec = runner.spec
    cls = runner.plugins.load("generator", variant.name)
    generator = cls(plugin_options(cls, variant.options, f"generators[{variant.label}].options", runner.spec_source),
                    size=spec.size, device=runner.device)
    key, _ = fit_key_of(generator, name=variant.name, version=runner.plugins.generators.get(variant.name).version,
                        train=source.train, fingerprint=source.fingerprint, size=spec.size)
    return generator, key


def print_plan(p: dict) -> None:
    from tabulate import tabulate

    def count(rows, status):
        return sum(1 for r in rows if r["status"].startswith(status))

    print(tabulate([[c["cell"], c["status"]] for c in p["cells"]], headers=["cell", "status"]))
    if p["fits"]:
        print()
        print(tabulate([[k, v["generator"], v["status"]] for k, v in p["fits"].items()],
                       headers=["generator fit", "plugin", "status"]))
    if p["replicas"]:
        print()
        print(tabulate(_synthetic_sets(p["replicas"]), headers=["synthetic set", "replicas", "images", "status"]))
    fits, reps = list(p["fits"].values()), list(p["replicas"].values())
    print(f"\n{len(p['cells'])} cell(s): {count(p['cells'], 'finished')} finished, {count(p['cells'], 'to run')} to run; "
          f"{len(fits)} fit(s): {count(fits, 'cached')} cached, {count(fits, 'to fit')} to fit; "
          f"{len(reps)} replica(s): {count(reps, 'cached')} cached, {count(reps, 'to generate')} to generate "
          "(dry run: nothing was run)")
    from cxrbench.estimate import render

    if p.get("estimate") and render(p["estimate"]):
        print(render(p["estimate"]))


def _synthetic_sets(replicas: dict) -> list[list]:
    """One row per fit and seed (its r replicas together: a ratio-10 grid lists ten times fewer
    rows): replicas, images each, and how many are cached or still to generate."""
    sets: dict[str, list] = {}
    for name, rep in replicas.items():
        sets.setdefault(name.rsplit(" replica ", 1)[0], []).append(rep)
    rows = []
    for name, reps in sets.items():
        todo = sum(1 for r in reps if r["status"] == "to generate")
        status = ("cached" if not todo else "to generate" if todo == len(reps)
                  else f"{len(reps) - todo} cached, {todo} to generate")
        sizes = sorted({r["images"] for r in reps})
        rows.append([name, len(reps), "/".join(f"{n:,}" for n in sizes), status])
    return rows
