"""Expanding a spec into cells. A cell = (dataset, generator variant, post-processor chain,
classifier, protocol + ratio, seed); cells are independent and identified by a readable id.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

from cxrbench import protocols
from cxrbench.config import BenchmarkSpec, GeneratorRef, to_dict
from cxrbench.hashing import content_key


@dataclass(frozen=True)
class GeneratorVariant:
    """One generator with fully resolved options (a sweep expands into several variants)."""

    name: str
    options: dict[str, Any]
    label: str
    #: the generator's own post-processing steps (config.PluginRef), before the spec's chain
    postprocess: tuple = ()
    #: "required": a failed run-time seed check fails the cell; "warn": marked only (spec opt-out)
    seed_check: str = "required"
    #: the demographic mix asked for (config.ConditionMix); None: the training set's own
    conditions: Any = field(default=None, compare=False)
    #: a packed fit that replaces training (config.GeneratorRef.fit_from; fit_from.py)
    fit_from: str | None = None
    #: the row accepts a pack fitted on other training data (recorded in every cell)
    fit_from_data_differs: bool = False


@dataclass(frozen=True)
class Cell:
    protocol: protocols.Protocol
    schedule: str
    ratio: float
    seed: int
    generator: GeneratorVariant | None = None
    #: cells added by the runner because a comparison needs them (the real-only baseline, the
    #: noise control of a supplemented cell)
    auto_baseline: bool = field(default=False, compare=False)
    #: the real-data axis (harness/subsets.py): a fraction of the training split or an image
    #: count; None = the whole split (no axis: ids and records as before the axis existed)
    real_data: float | int | None = None

    @property
    def id(self) -> str:
        from cxrbench.subsets import size_token

        gen = self.generator.label if self.generator else "none"
        ratio = f"r{self.ratio:g}" if self.protocol.uses_generator else "r0"
        size = "" if self.real_data is None else f"__real={size_token(self.real_data)}"
        slug = f"{self.protocol.id}__{gen}__{ratio}{size}__{self.schedule}__seed{self.seed}"
        return "".join(c if c.isalnum() or c in "._-=" else "-" for c in slug)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "protocol": self.protocol.id,
            "schedule": self.schedule,
            "ratio": self.ratio,
            "seed": self.seed,
            **({} if self.real_data is None else {"real_data": self.real_data}),
            "generator": None
            if self.generator is None
            else {"name": self.generator.name, "options": self.generator.options, "label": self.generator.label,
                  **({"postprocess": [{"name": p.name, "options": p.options} for p in self.generator.postprocess]}
                     if self.generator.postprocess else {}),
                  **({"seed_check": self.generator.seed_check} if self.generator.seed_check != "required" else {})},
            "auto_baseline": self.auto_baseline,
        }

    def baseline(self) -> Cell:
        """The real-only cell this cell is compared with: same schedule, seed and real data."""
        return Cell(protocols.get("real-only"), self.schedule, 0.0, self.seed, real_data=self.real_data)

    def noise_control(self) -> Cell | None:
        """The noise-supplemented cell at the same size, ratio, schedule and seed (the floor of a
        supplemented cell: real + r x noise), or None for other protocols and for noise itself."""
        if self.protocol.name != "supplemented" or self.generator is None or self.generator.name == NOISE:
            return None
        return Cell(self.protocol, self.schedule, self.ratio, self.seed, NOISE_CONTROL, real_data=self.real_data)

    def references(self) -> list[Cell]:
        """The cells this cell is compared with image by image: real-only, the noise control."""
        refs = [self.baseline() if self.protocol.uses_generator else None, self.noise_control()]
        return [r for r in refs if r is not None]

    def is_paired_reference(self) -> bool:
        """Whether other cells are compared with this one image by image (paired DeLong): the
        real-only cell (every generator cell's baseline) and a supplemented noise control."""
        if self.protocol.name == "real-only":
            return True
        return self.protocol.name == "supplemented" and self.generator is not None and self.generator.name == NOISE


#: the generator of the mandatory noise control, and its row when the spec has none
NOISE = "noise"
NOISE_CONTROL = GeneratorVariant(NOISE, {}, NOISE)


def generator_variants(ref: GeneratorRef) -> list[GeneratorVariant]:
    keys = list(ref.sweep)
    combos = list(itertools.product(*(ref.sweep[k] for k in keys))) or [()]
    out = []
    for combo in combos:
        opts = {**ref.options, **dict(zip(keys, combo))}
        base = ref.label or ref.name
        suffix = "".join(f"_{k}={v:g}" if isinstance(v, float) else f"_{k}={v}" for k, v in zip(keys, combo))
        label = base + suffix
        if not suffix and ref.options and not ref.label:
            label = f"{base}-{content_key(ref.options, 6)}"
        mix = ref.conditions if ref.conditions.demographics != "training" else None
        if mix is not None and not ref.label:  # another mix is another row (and another cell id)
            label += "-balanced" if mix.demographics == "balanced" else f"-mix-{content_key(to_dict(mix), 6)}"
        out.append(GeneratorVariant(ref.name, opts, label, tuple(ref.postprocess), ref.seed_check, mix,
                                    ref.fit_from, ref.fit_from_data_differs))
    return out


def expand_cells(spec: BenchmarkSpec) -> list[Cell]:
    """All cells of a spec, the real-only baselines first (added when a comparison needs them)."""
    variants = [(v, ref.fit_seed == "per-seed") for ref in spec.generators for v in generator_variants(ref)]
    sizes = list(spec.real_data) if spec.real_data is not None else [None]
    cells: list[Cell] = []
    baselines: list[Cell] = []
    for pref, size in itertools.product(spec.protocols, sizes):
        proto = protocols.get(pref.name)
        for seed in spec.seeds:
            if not proto.uses_generator:
                baselines.append(Cell(proto, pref.schedule, 0.0, seed, real_data=size))
                continue
            ratios = pref.ratios if pref.ratios is not None else list(proto.default_ratios)
            for (variant, per_seed), ratio in itertools.product(variants, ratios):
                if per_seed:  # the cell's seed is the fit's too: one fit per seed, one row over them
                    variant = dataclasses.replace(variant, options={**variant.options, "seed": seed})
                cells.append(Cell(proto, pref.schedule, float(ratio), seed, variant, real_data=size))
    # Every generator cell is compared with the real-only baseline of the same schedule, seed and
    # real data, unless a test set holds every image of a real dataset (``test: all``): a real-only
    # classifier would then be tested on its own training patients, which the leakage guard refuses.
    all_real = any(getattr(ref, "test", "test") == "all" for ref in [spec.dataset, *spec.external])
    have = {b.id for b in baselines}
    for base in ([] if all_real else [c.baseline() for c in cells]):
        if base.id not in have:
            have.add(base.id)
            baselines.append(dataclasses.replace(base, auto_baseline=True))
    # The noise control is mandatory: a supplemented cell is also run with real + r x noise at the
    # same size, ratio, schedule and seed, so a gain that extra images alone would buy is visible
    # (its content gain is measured over this control). A spec row of plugin `noise` labelled
    # `noise` with default options is the control (moved ahead of the cells compared with it);
    # otherwise one is added.
    spec_cells, controls = {c.id: c for c in cells}, {}
    for control in [c.noise_control() for c in cells]:
        if control is not None and control.id not in controls:
            controls[control.id] = spec_cells.get(control.id) or dataclasses.replace(control, auto_baseline=True)
    seen, ordered = set(), []
    for cell in baselines + list(controls.values()) + cells:
        if cell.id not in seen:
            seen.add(cell.id)
            ordered.append(cell)
    return ordered


def refuse_relabelled(cells: list[Cell], finished_record: Callable[[Cell], dict | None], plugins, source: str) -> None:
    """Refuse a spec whose generator row label now stands for another generator or other options
    than the finished record of the same cell id: reusing it would report the old configuration's
    numbers under the new one. Options are compared with the plugin's defaults filled in on both
    sides, so ``{}`` and ``{preset: small}`` are one configuration when ``small`` is the default.

    :param finished_record: the stored record of a cell (``None`` when there is none)
    :raises CxrbenchError: naming the record, both configurations and what to do
    """
    from cxrbench.errors import CxrbenchError

    for cell in cells:
        record = finished_record(cell) if cell.generator is not None else None
        if not record or record.get("status") != "ok":
            continue
        before = (record.get("cell") or {}).get("generator") or {}
        was, now = before.get("name"), cell.generator.name
        if (was, _with_defaults(plugins, was, before.get("options") or {}, source)) == \
                (now, _with_defaults(plugins, now, cell.generator.options, source)):
            continue
        raise CxrbenchError(
            f"cell {cell.id} was finished with generator row {cell.generator.label!r} = {was} "
            f"{before.get('options') or {}}, but the spec now gives {now} {cell.generator.options}: "
            "give the row its own label, or use another --out")


def _one_seed_spelling(options: dict) -> dict:
    """``seed: 0`` and an unset seed train the same model (a learned generator's presets resolve an
    unset seed to 0): one spelling for comparisons, so a per-seed run's seed-0 cell is the shared one's."""
    return {**options, "seed": None} if options.get("seed") == 0 else options


def _with_defaults(plugins, name: str | None, options: dict, source: str) -> Any:
    """Options with the plugin's defaults filled in (as written when the plugin cannot read them)."""
    from cxrbench.config import plugin_options
    from cxrbench.contracts import options_to_dict

    try:
        return _one_seed_spelling(options_to_dict(plugin_options(plugins.load("generator", name), options, "options",
                                                                 source)))
    except Exception:  # noqa: BLE001 - a renamed option or an unknown plugin: compare as written
        return options
