"""The post-processing chain of a cell, and topping a filtered set back up.

A spec lists post-processors in order; each may change pixels or drop images, never add,
reorder or relabel them. Steps that learn from the real training split (``needs_real_train``,
e.g. ``proxy-filter``) are prepared once per cell before the first batch. When the chain drops
images, :func:`fill_to_size` regenerates the dropped conditions with new seeds and runs them
through the chain again, so a protocol trains on the size it asked for. The rounds shrink
geometrically with the rejection rate, so the bound is a budget (``MAX_TOPUP_FACTOR`` x the
set's size generated in top-ups, ``MAX_TOPUP_ROUNDS`` rounds), not a small round count (measured
on Kermany: proxy-filter rejected 77.7% of ldm small's normal images, and filling the set took
30 rounds and 4,372 extra images for 4,695 kept). A generator that cannot fill the set within the
budget fails the cell with one line naming the labels it could not fill.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from cxrbench.config import plugin_options
from cxrbench.contracts import SyntheticBatch
from cxrbench.errors import CxrbenchError
from cxrbench.generation import check_images, plugin_call
from cxrbench.hashing import derive_seed

logger = logging.getLogger(__name__)

#: the top-up budget: at most this many rounds, and at most this factor x the set's size generated
MAX_TOPUP_ROUNDS = 40
MAX_TOPUP_FACTOR = 3.0


class Chain:
    """The generator's own post-processors, then the spec's, built once per cell (a learned step
    keeps what it learned)."""

    def __init__(self, runner, variant=None):
        self.size = runner.spec.size
        self.steps = []
        own = [(f"generators[{variant.label}].postprocess[{i}]", r) for i, r in enumerate(variant.postprocess)] if variant else []
        spec = [(f"postprocess[{i}]", r) for i, r in enumerate(runner.spec.postprocess)]
        for where, ref in own + spec:
            cls = runner.plugins.load("postprocessor", ref.name)
            options = plugin_options(cls, ref.options, f"{where}.options", runner.spec_source)
            self.steps.append((ref.name, cls(options, device=runner.device)))
        self.prepared: dict[str, Any] = {}
        #: per step (in order; a name may appear twice): the stats of every call
        self.calls: list[list[dict[str, Any]]] = [[] for _ in self.steps]

    @property
    def needs_real_train(self) -> bool:
        return any(getattr(step, "needs_real_train", False) for _, step in self.steps)

    def prepare(self, train, *, cache_dir: Path, progress: bool | None) -> None:
        for name, step in self.steps:
            if getattr(step, "needs_real_train", False):
                with plugin_call("post-processor", name, "prepare"):
                    self.prepared[name] = step.prepare(train, cache_dir=cache_dir, progress=progress) or {}

    def __call__(self, batch: SyntheticBatch) -> SyntheticBatch:
        for k, (name, step) in enumerate(self.steps):
            before = len(batch.conditions)
            with plugin_call("post-processor", name, "__call__"):
                batch = step(batch)
            check_images(batch.images, None, self.size, name)
            if len(batch.conditions) > before:
                raise CxrbenchError(f"post-processor {name!r} added images; a step may only keep or drop them")
            self.calls[k].append(dict(getattr(step, "stats", {}) or {}))
        return batch

    def record(self) -> list[dict[str, Any]]:
        """Per step: what prepare() learned and the stats of every call (first = the set itself)."""
        return [{"name": name, "prepare": self.prepared.get(name), "calls": calls}
                for (name, _), calls in zip(self.steps, self.calls)]


def fill_to_size(generator, chain: Chain, original: SyntheticBatch, kept: SyntheticBatch, *, label: str,
                 seed: int) -> tuple[SyntheticBatch, dict[str, Any]]:
    """Regenerate the conditions the chain dropped, each with a new seed derived from its old
    one and the round, until ``len(original)`` images are kept (or fail once the budget is spent)."""
    import torch

    wanted = len(original.conditions)
    info: dict[str, Any] = {"requested": wanted, "kept_first_pass": len(kept.conditions),
                            "rejected_first_pass": 1.0 - len(kept.conditions) / wanted if wanted else 0.0,
                            "rounds": 0, "generated": 0}
    images, conditions = [kept.images], list(kept.conditions)
    have = {int(c.seed) for c in conditions}
    missing = [c for c in original.conditions if int(c.seed) not in have]
    budget = int(MAX_TOPUP_FACTOR * wanted)
    rnd = 0
    while missing and rnd < MAX_TOPUP_ROUNDS and info["generated"] + len(missing) <= budget:
        rnd += 1
        if rnd == 1 or rnd % 5 == 0:
            logger.info(f"{label}: post-processing top-up round {rnd}: {len(missing)} of {wanted} image(s) to replace")
        fresh = [dataclasses.replace(c, seed=derive_seed(seed, "topup", rnd, int(c.seed))) for c in missing]
        with plugin_call("generator", type(generator).name, "generate"):
            made = generator.generate(fresh)
        passed = chain(SyntheticBatch(made, fresh))
        info["rounds"], info["generated"] = rnd, info["generated"] + len(fresh)
        images.append(passed.images)
        conditions += passed.conditions
        got = {int(c.seed) for c in passed.conditions}
        missing = [m for m, f in zip(missing, fresh) if int(f.seed) not in got]
    if missing:
        first = _count_by_labels(original.conditions)
        short = _count_by_labels(missing)
        which = "; ".join(f"labels {k}: {n} of {first[k]} still missing" for k, n in sorted(short.items()))
        raise CxrbenchError(
            f"post-processing kept {wanted - len(missing)} of {wanted} images of {label!r} after {rnd} top-up rounds "
            f"({info['generated']} images generated, budget {budget}; {which}): the generator cannot fill the set "
            "(loosen the filter, e.g. proxy-filter's threshold, or train the generator longer)")
    info["topup_seeds"] = [int(c.seed) for c in conditions[len(kept.conditions):]]
    return SyntheticBatch(torch.cat(images), conditions), info


def _count_by_labels(conditions) -> Counter:
    return Counter("(" + ", ".join(f"{float(v):g}" for v in c.labels) + ")" for c in conditions)
