"""`cxrbench run --executor ray`: the same cells as a local run, as Ray tasks.

The driver expands the spec (every grid slice) exactly as the local runner does and submits
three kinds of task, wired by object references so Ray, not polling, orders them:

    fit(generator, dataset)                 one per distinct fit key not yet cached
      -> shard(generator, seed, replica, k)  one per missing shard of a missing synthetic set
        -> cell(slice, cell)                 one per unfinished cell; assembles its sets from the
                                             shards, trains and evaluates, writes its record

Every task rebuilds its state from plain data (the slice spec, the run folder, the cache root)
and calls the same functions a local run calls, so records are the same except timing and host
fields. Fitted generators, shards and synthetic sets travel through the content-addressed cache,
which must be on storage every node sees (for a cluster: --cache-dir on a shared filesystem).
A task that raises or whose worker dies is retried ``max_retries`` times; a cell whose task (or a
task it depends on) still fails is recorded as a failed cell, and finished cells never rerun.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: retries of a failed or lost task before its cell is recorded as failed
DEFAULT_MAX_RETRIES = 2

logger = logging.getLogger(__name__)


@dataclass
class RayOptions:
    address: str | None = None  # None: start a local cluster for this run; "auto" or host:port: join one
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0  # 0: decided from the run's device (1 when it is CUDA)
    max_retries: int = DEFAULT_MAX_RETRIES
    num_cpus: int | None = None  # of a local cluster started for this run (None: all)


def job_of(runner) -> dict[str, Any]:
    """What a task needs to rebuild the runner of one slice (plain data, pickled to workers)."""
    from cxrbench import generation
    from cxrbench.device import compile_enabled
    from cxrbench.logs import console_level, run_log_folder

    import torch

    return {"out": str(runner.store.out), "data_root": runner.data_root,
            "cache_dir": str(runner.cache_root), "device": runner.device_request, "spec_source": runner.spec_source,
            "compile": compile_enabled(),
            # the thread count a local run would train with (--threads, else torch's default): it
            # changes floating-point reduction order, so tasks must use the same to give the same
            # numbers (Ray starts workers with 1 thread per CPU slot)
            "torch_threads": torch.get_num_threads(),
            "keep_stale": runner.keep_stale,
            # the driver's shard size: shard tasks and the cells that assemble them must agree
            "shard_size": generation.SHARD_SIZE,
            # the driver's console level (-q / -v), so a worker's lines (a fit loaded, a seed check) are
            # shown as a local run shows them; None: the driver's caller configures logging itself
            "log_level": console_level(),
            # workers append their lines to the driver's run.log when it writes one (cxrbench run)
            "run_log": run_log_folder() is not None}


def _slice_runner(job: dict, slice_data: dict):
    """In a worker: the runner of one slice, device and cache resolved, no progress bars."""
    from cxrbench import generation
    from cxrbench.device import COMPILE_ENV

    generation.SHARD_SIZE = int(job["shard_size"])
    if job.get("log_level") is not None:  # a worker process starts with logging unconfigured
        from cxrbench.logs import log_to_stderr

        log_to_stderr(job["log_level"])
    if job.get("run_log"):
        from cxrbench.logs import log_worker_to_run_log

        log_worker_to_run_log(Path(job["out"]))
    if job.get("torch_threads"):
        import torch

        torch.set_num_threads(int(job["torch_threads"]))
    os.environ["CXRBENCH_PROGRESS"] = "0"
    os.environ[COMPILE_ENV] = "1" if job.get("compile") else "0"
    from cxrbench.config import spec_from_data
    from cxrbench.device import resolve_device
    from cxrbench.runner import Runner

    runner = Runner(spec_from_data(slice_data, job["spec_source"]), out=Path(job["out"]), data_root=job["data_root"],
                    cache_dir=Path(job["cache_dir"]), device=job["device"], progress=False,
                    spec_source=job["spec_source"], preflight=False, keep_stale=job.get("keep_stale", False),
                    verify_data=False)  # the driver verified the data before any task ran
    runner.device = resolve_device(runner.device_request)
    runner.cache_root = Path(job["cache_dir"])
    runner._in_grid = True  # the driver wrote the run's resolved spec
    return runner


def _generator_of(runner, variant, real_data=None):
    """The fitted (or loaded) generator of ``variant`` on the slice's training split (cut to
    ``real_data`` on the real-data axis)."""
    source = runner.training_source(real_data)
    return runner.fitted_generator(variant, source.train, source.fingerprint), source


def fit_task(job: dict, slice_data: dict, variant, real_data=None) -> str:
    """Fit (or find cached) one generator; returns its fit key."""
    runner = _slice_runner(job, slice_data)
    (_, info), _ = _generator_of(runner, variant, real_data)
    return info["fit_key"]


def shard_task(job: dict, slice_data: dict, variant, ratio: float, seed: int, replica: int, shard: int,
               _fit_key: str, real_data=None) -> str:
    """One shard of one replica of a cell's synthetic set (runs after its fit: ``_fit_key``)."""
    from cxrbench.generation import generate_shard, replica_path, replica_plan

    runner = _slice_runner(job, slice_data)
    (generator, info), source = _generator_of(runner, variant, real_data)
    plan = {r: (conds, key) for r, _, conds, key in
            replica_plan(generator, info, ratio=ratio, seed=seed, source_train=source.train, mix=variant.conditions)}
    conditions, key = plan[replica]
    path = replica_path(runner.cache_root, variant.name, key)
    generate_shard(generator, conditions, path=path, shard=shard, size=runner.spec.size,
                   label=f"{variant.label} replica {replica}", progress=False)
    return f"{path.name}#{shard}"


def cell_task(job: dict, slice_data: dict, index: int, *_dependencies) -> tuple[str, str]:
    """Run (or reuse) cell ``index`` of the slice, exactly as a local run; returns (id, outcome)."""
    from cxrbench.cells import expand_cells
    from cxrbench.runner import RunSummary

    runner = _slice_runner(job, slice_data)
    cells = expand_cells(runner.spec)
    summary = RunSummary(runner.store.out)
    runner._run_locked(index + 1, len(cells), cells[index], summary, blocking=True)
    outcome = "ok" if summary.ok else "failed" if summary.failed else "skipped"
    return (summary.ok + summary.failed + summary.skipped)[0], outcome


def run_on_ray(runner, options: RayOptions):
    """Run ``runner``'s spec on Ray; returns the same RunSummary as Runner.run()."""
    try:
        import ray
    except ImportError:
        from cxrbench.errors import CxrbenchError

        raise CxrbenchError("--executor ray needs Ray: pip install 'cxrbench[ray]' (or pip install ray)") from None
    from cxrbench.cells import expand_cells
    from cxrbench.checking import preflight
    from cxrbench.config import spec_dict, to_dict
    from cxrbench.device import resolve_device
    from cxrbench.grid import grid_slices, slice_label, slice_runner
    from cxrbench.runner import RunSummary, _default_cache_root
    from cxrbench.store import atomic_write_json

    runner.device = resolve_device(runner.device_request)
    runner.cache_root = runner.cache_dir or _default_cache_root()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, num_cpus=options.num_cpus if options.address is None else None,
                 include_dashboard=False, log_to_driver=True, configure_logging=False)
    gpus = options.gpus_per_task or (1.0 if runner.device.startswith("cuda") else 0.0)
    task = dict(num_cpus=options.cpus_per_task, num_gpus=gpus, max_retries=options.max_retries,
                retry_exceptions=True)
    remote_fit = ray.remote(fit_task).options(**task)
    remote_shard = ray.remote(shard_task).options(**task)
    # a cell records its own exceptions as a failed cell; retries are for lost workers
    remote_cell = ray.remote(cell_task).options(**{**task, "retry_exceptions": False})
    job = job_of(runner)
    atomic_write_json(runner.store.out / "spec.resolved.json", spec_dict(runner.spec))
    summary = RunSummary(runner.store.out)
    fits: dict[str, Any] = {}
    shards: dict[tuple[str, int], Any] = {}
    pending: list[tuple[Any, Any, Any, str]] = []  # (ref, slice runner, cell, cell id)
    seen: set[str] = set()
    slices = grid_slices(runner.spec)
    for sub in slices:
        part = slice_runner(runner, sub)
        part.device, part.cache_root = runner.device, runner.cache_root
        sub_data = to_dict(sub)
        cells = expand_cells(sub)
        ids = [f"{c.id}__{part._context_key(c)}" for c in cells]
        finished = {cid for c, cid in zip(cells, ids) if part.cell_status(c)[0] == "finished"}
        part.refuse_relabelled(cells)
        todo = [c for c, cid in zip(cells, ids) if cid not in finished]
        if todo:  # as a local run: a broken plugin or dataset file stops the run here, in one line
            if part.preflight:
                preflight(part, todo)
            part.dataset(sub.dataset)  # decoded once into the shared cache before any task reads it
        for index, (cell, cell_id) in enumerate(zip(cells, ids)):
            if cell_id in seen:
                continue  # a real-only baseline shared by the slices of one (dataset, classifier)
            seen.add(cell_id)
            if cell_id in finished:
                summary.skipped.append(cell_id)
                continue
            deps = []
            if cell.generator is not None and cell.protocol.uses_generator:
                deps = _generation_tasks(part, cell, sub_data, job, fits, shards, remote_fit, remote_shard)
            pending.append((remote_cell.remote(job, sub_data, index, *deps), part, cell, cell_id))
    logger.info(f"ray: {len(pending)} cell task(s), {len(fits)} fit task(s), {len(shards)} shard task(s) over "
                f"{len(slices)} slice(s) ({len(summary.skipped)} cell(s) finished before); "
                f"cluster {ray.cluster_resources()}")
    try:
        remaining = {ref: (part, cell, cell_id) for ref, part, cell, cell_id in pending}
        done_count = 0
        while remaining:
            ready, _ = ray.wait(list(remaining), num_returns=1)
            part, cell, cell_id = remaining.pop(ready[0])
            done_count += 1
            try:
                _, outcome = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - the task or one it needed failed after its retries
                outcome = "failed"
                _record_task_failure(part, cell, cell_id, exc)
            {"ok": summary.ok, "failed": summary.failed}.get(outcome, summary.skipped).append(cell_id)
            logger.info(f"ray: [{done_count}/{len(pending)}] {slice_label(part.spec)} | {cell.id}: {outcome}")
    finally:
        if started_here:
            ray.shutdown()
    runner._write_summary()
    return summary


def _generation_tasks(part, cell, sub_data, job, fits, shards, remote_fit, remote_shard) -> list:
    """The fit and shard tasks a generator cell depends on (shared with every other cell that
    needs the same fit or the same synthetic set); returns their refs. The cache is read the
    way `--dry-run` reads it (cxrbench.plan)."""
    from cxrbench.generation import DONE_FILE, fit_dir, replica_path, replica_plan, shard_count
    from cxrbench.plan import unfitted_generator

    variant = cell.generator
    source = part.training_source(cell.real_data)
    generator, key = unfitted_generator(part, variant, source)
    fit_id = f"{variant.name}-{key}"
    if fit_id not in fits:  # a fit already in the cache needs no task: its key stands in for the ref
        cached = (fit_dir(part.cache_root, variant.name, key) / DONE_FILE).is_file()
        fits[fit_id] = key if cached else remote_fit.remote(job, sub_data, variant, cell.real_data)
    deps = [fits[fit_id]] if not isinstance(fits[fit_id], str) else []
    for replica, _, conditions, rkey in replica_plan(generator, {"fit_key": key}, ratio=cell.ratio, seed=cell.seed,
                                                      source_train=source.train, mix=variant.conditions):
        path = replica_path(part.cache_root, variant.name, rkey)
        if path.is_file():
            continue
        for k in range(shard_count(len(conditions))):
            if (path.name, k) not in shards:
                shards[(path.name, k)] = remote_shard.remote(job, sub_data, variant, cell.ratio, cell.seed, replica, k,
                                                             fits[fit_id], cell.real_data)
            deps.append(shards[(path.name, k)])
    return deps


def _record_task_failure(part, cell, cell_id: str, exc: BaseException) -> None:
    """A cell whose task never ran to completion: recorded as failed (unless it finished after all)."""
    if part.store.is_finished(cell_id):
        return
    cause = getattr(exc, "cause", None) or exc
    record = part._failed_record(cell, cell_id, cause if isinstance(cause, BaseException) else exc)
    record["error"]["executor"] = "ray"
    record["timings"]["total_s"] = 0.0
    part.store.write(cell_id, record)
    first_line = (str(cause).splitlines() or [""])[0][:200]
    logger.error(f"ray: {cell.id}: FAILED after retries: {type(cause).__name__}: {first_line}")
