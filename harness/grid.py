"""The every-combination grid: a spec's axes -> slices -> cells.

A spec names one training dataset, one classifier and one post-processing chain, or lists
several (``datasets:``, ``classifiers:``, ``chains:``). Each combination of those three is a
*slice*: an ordinary one-of-each spec that the runner expands into cells (generators x protocols x
ratios x seeds) exactly as before. Slices share nothing but the content-addressed cache, which is
what makes sharing free and safe: a generator fitted for one classifier is the same fit for the
next (its key holds the dataset fingerprint and the generator's options, not the classifier), and
a real-only baseline does not depend on the chain, so it runs once per (dataset, classifier).

The order is dataset-major (one dataset's decoded images stay in memory while its slices run).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

from cxrbench.config import GRID_AXES, BenchmarkSpec

logger = logging.getLogger(__name__)


def is_grid(spec: BenchmarkSpec) -> bool:
    return any(getattr(spec, axis) is not None for axis in GRID_AXES)


def grid_slices(spec: BenchmarkSpec) -> list[BenchmarkSpec]:
    """Every (dataset, classifier, chain) combination as a one-of-each spec, in a fixed order."""
    if not is_grid(spec):
        return [spec]
    # each axis's values: the list it gives, else its single key's one value
    axes = {single: getattr(spec, axis) if getattr(spec, axis) is not None else [getattr(spec, single)]
            for axis, single in GRID_AXES.items()}
    cleared = {axis: None for axis in GRID_AXES}
    return [dataclasses.replace(spec, **dict(zip(axes, combo)), **cleared)
            for combo in itertools.product(*axes.values())]


def slice_label(spec: BenchmarkSpec) -> str:
    """`kermany | resnet18 | proxy-filter` (the three grid coordinates of a one-of-each spec)."""
    chain = " > ".join(p.name for p in spec.postprocess) or "no chain"
    return f"{spec.dataset.name} | {spec.classifier.name} | {chain}"


def describe_grid(spec: BenchmarkSpec) -> dict:
    """The axes and their sizes, for `validate` and `--dry-run` (no plugin is loaded)."""
    slices = grid_slices(spec)
    return {
        "slices": len(slices),
        "axes": {
            "datasets": sorted({s.dataset.name for s in slices}),
            "classifiers": sorted({s.classifier.name for s in slices}),
            "chains": [[p.name for p in c] for c in (spec.chains if spec.chains is not None else [spec.postprocess])],
        },
    }


def slice_runner(runner, sub: BenchmarkSpec):
    """A runner for one slice of ``runner``'s (grid) spec, sharing its in-memory memos (decoded
    datasets; loaded generators, keyed by dataset fingerprint and size)."""
    from cxrbench.runner import Runner

    child = Runner(sub, out=runner.store.out, data_root=runner.data_root, cache_dir=runner.cache_dir,
                   device=runner.device_request, progress=runner.progress, plugins=runner.plugins,
                   spec_source=runner.spec_source, preflight=runner.preflight, verify_data=runner.verify_data,
                   keep_stale=runner.keep_stale)
    child._datasets, child._generators, child._in_grid = runner._datasets, runner._generators, True
    return child


def run_grid(runner):
    """Every slice of a grid spec in turn, into one run folder (the parent writes the resolved
    grid spec; each record holds its own slice)."""
    from cxrbench.config import spec_dict
    from cxrbench.runner import RunSummary
    from cxrbench.store import atomic_write_json

    atomic_write_json(runner.store.out / "spec.resolved.json", spec_dict(runner.spec))
    slices = grid_slices(runner.spec)
    summary = RunSummary(runner.store.out)
    for k, sub in enumerate(slices, 1):
        logger.info(f"grid slice {k}/{len(slices)}: {slice_label(sub)}")
        part = slice_runner(runner, sub).run()
        summary.ok += part.ok
        summary.failed += part.failed
        summary.skipped += part.skipped
    # a cell shared by slices (a real-only baseline: the same for every chain) counts once
    done = set(summary.ok + summary.failed)
    summary.skipped = [c for c in dict.fromkeys(summary.skipped) if c not in done]
    return summary
