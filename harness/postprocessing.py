"""The post-processing chain of a cell, and topping a filtered set back up.

A spec lists post-processors in order; each may change pixels or drop images, never add,
reorder or relabel them. Steps that learn from the real training split (``needs_real_train``,
e.g. ``proxy-filter``) are prepared once per cell before the first batch. When the chain drops
images, :func:`fill_to_size` regenerates the dropped conditions with new seeds and runs them
through the chain again, at most ``MAX_TOPUP_ROUNDS`` times, so a protocol trains on the size
it asked for; a generator that cannot fill the set fails the cell with one line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cxrbench.config import plugin_options
from cxrbench.contracts import SyntheticBatch
from cxrbench.errors import CxrbenchError
from cxrbench.generation import check_images, plugin_call
from cxrbench.hashing import derive_seed

#: how many times a filtered set is topped up before the cell fails
MAX_TOPUP_ROUNDS = 5


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
    one and the round, until ``len(original)`` images are kept (or fail after the last round)."""
    import torch

    wanted = len(original.conditions)
    info: dict[str, Any] = {"requested": wanted, "kept_first_pass": len(kept.conditions), "rounds": 0, "generated": 0}
    images, conditions = [kept.images], list(kept.conditions)
    have = {int(c.seed) for c in conditions}
    missing = [c for c in original.conditions if int(c.seed) not in have]
    for rnd in range(1, MAX_TOPUP_ROUNDS + 1):
        if not missing:
            break
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
        raise CxrbenchError(
            f"post-processing kept {wanted - len(missing)} of {wanted} images of {label!r} after "
            f"{MAX_TOPUP_ROUNDS} top-up rounds: the generator cannot fill the set (loosen the filter, "
            "e.g. proxy-filter's threshold, or train the generator longer)")
    info["topup_seeds"] = [int(c.seed) for c in conditions[len(kept.conditions):]]
    return SyntheticBatch(torch.cat(images), conditions), info
