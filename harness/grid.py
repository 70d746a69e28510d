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

from cxrbench.config import BenchmarkSpec


def is_grid(spec: BenchmarkSpec) -> bool:
    return any(getattr(spec, axis) is not None for axis in ("datasets", "classifiers", "chains"))


def grid_slices(spec: BenchmarkSpec) -> list[BenchmarkSpec]:
    """Every (dataset, classifier, chain) combination as a one-of-each spec, in a fixed order."""
    if not is_grid(spec):
        return [spec]
    datasets = spec.datasets if spec.datasets is not None else [spec.dataset]
    classifiers = spec.classifiers if spec.classifiers is not None else [spec.classifier]
    chains = spec.chains if spec.chains is not None else [spec.postprocess]
    return [
        dataclasses.replace(spec, dataset=d, classifier=c, postprocess=list(chain),
                            datasets=None, classifiers=None, chains=None)
        for d, c, chain in itertools.product(datasets, classifiers, chains)
    ]


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
