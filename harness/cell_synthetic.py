"""The generator part of a cell: fit (or load) the generator on the cell's real training data,
check its seeds, draw the synthetic training set (and the synthetic tuning slice of
synthetic-only.v2), post-process it, store its manifest, masks and contact sheet, measure its
quality and cost, and add it to the cell's training parts with the task's targets.

Called by :meth:`cxrbench.runner.Runner.run_cell` for protocols that use a generator; it reads and
fills the cell's :class:`~cxrbench.runner.CellWork`.
"""

from __future__ import annotations

import dataclasses
import logging

from cxrbench.celldata import namespaced
from cxrbench.errors import CxrbenchError
from cxrbench.generation import PaidLedger
from cxrbench.postprocessing import Chain, fill_to_size
from cxrbench.store import atomic_write_json

logger = logging.getLogger(__name__)


def synthetic_step(runner, w) -> None:
    """Fit (or load) the generator, check its seeds, generate, post-process, record."""
    from cxrbench.generation import (
        mask_artifacts, options_record, seed_check, synthetic_training_set, synthetic_tuning_slice,
    )
    from cxrbench.quality.cell import cell_quality
    from cxrbench.quality.cost import cost_record
    from cxrbench.sheets import contact_sheet

    cell, spec, source, proto = w.cell, runner.spec, w.source, w.cell.protocol
    with w.timed("generator_fit_s"):
        generator, gen_info = runner.fitted_generator(cell.generator, source.train, source.fingerprint)
    sees_data = getattr(type(generator).capabilities, "sees_training_data", True)
    if sees_data:
        w.patients["generator-train"] = namespaced(source, source.train.patient_ids)
    paid = PaidLedger(generator, preflight=runner.preflight_costs.pop(cell.generator.label, None))
    checked = seed_check(generator, source.train, seed=cell.seed, size=spec.size)
    paid.mark("seed check")
    if not checked["ok"]:
        if cell.generator.seed_check == "required":
            raise CxrbenchError(
                f"generator {cell.generator.label!r} failed the run-time seed check: {'; '.join(checked['problems'])}; "
                "draw noise from torch.Generator().manual_seed(condition.seed), or set seed_check: warn on its "
                "spec row to keep such cells (marked)")
        checked["opted_out"] = "seed_check: warn on the spec row"
    common = dict(variant_name=cell.generator.name, variant_label=cell.generator.label, seed=cell.seed,
                  source_train=source.train, size=spec.size, cache_root=runner.cache_root, progress=runner.progress,
                  mix=cell.generator.conditions)
    with w.timed("generate_s"):
        synthetic, syn_info = synthetic_training_set(generator, gen_info, ratio=cell.ratio, **common)
        paid.mark("training set")
        manifest = syn_info["manifest"]
        if proto.tuning == "synthetic":
            w.tuning_slice, tune_info = synthetic_tuning_slice(
                generator, gen_info, fraction=proto.tuning_fraction, minimum=proto.tuning_minimum, **common)
            paid.mark("tuning slice")
            manifest = manifest + tune_info["manifest"]
            syn_info["stats"]["tuning_slice"] = tune_info["stats"]
    with w.timed("postprocess_s"):
        chain, postprocessing = Chain(runner, cell.generator), None
        if chain.steps:
            if chain.needs_real_train:  # e.g. proxy-filter's classifier: the real train split
                w.patients["postprocessor-train"] = namespaced(source, source.train.patient_ids)
                with w.timed("postprocess_prepare_s"):  # one-off (cached), not a per-image cost
                    chain.prepare(source.train, cache_dir=runner.cache_root, progress=runner.progress)
            synthetic, topup = fill_to_size(generator, chain, synthetic, chain(synthetic),
                                            label=cell.generator.label, seed=cell.seed)
            postprocessing = {"topup": topup}
            if w.tuning_slice is not None:
                w.tuning_slice, postprocessing["tuning_topup"] = fill_to_size(
                    generator, chain, w.tuning_slice, chain(w.tuning_slice), label=cell.generator.label, seed=cell.seed)
            postprocessing["steps"] = chain.record()
            paid.mark("post-processing top-up")
    # the masks of the final set (after filtering and top-up), for storage and adherence: for a
    # learned mask-conditioned generator always; for the reference generators (real, noise: they
    # only pass masks through) when the task trains on pairs, where they are its ceiling and floor
    masks, mask_tensor = None, None
    if runner.task.name == "segmentation" or type(generator).capabilities.needs_training:
        masks, mask_tensor = mask_artifacts(generator, synthetic, w.adir, seed=cell.seed, device=runner.device,
                                            estimator=lambda: runner.adherence_estimator(source.train))
    if masks is not None and masks.get("dice_own_mask") is not None:
        logger.info(f"{cell.generator.label}: mask adherence Dice {masks['dice_own_mask']:.3f} "
                    f"(random pairing {masks['dice_random_pairing']:.3f}, n={masks['n']})")
    atomic_write_json(w.adir / "synthetic-manifest.json", manifest)
    w.artifacts["synthetic_manifest"] = str(w.adir / "synthetic-manifest.json")
    if len(synthetic.conditions):
        w.artifacts["contact_sheet"] = str(contact_sheet(synthetic.images, synthetic.conditions, source.label_names,
                                                         w.adir / "contact-sheet.png", masks=mask_tensor))
    w.add_part("synthetic", synthetic.images,
               runner.task.synthetic_targets(synthetic, generator, len(source.label_names)))
    w.generator = generator  # the tuning slice's targets come from it too
    if cell.generator.conditions is not None:  # the demographic mix asked for and delivered
        from cxrbench.demographics import mix_record

        syn_info["stats"]["demographic_mix"] = mix_record(cell.generator.conditions, synthetic.conditions,
                                                          source.train)
    w.generator_record = {
        "name": cell.generator.name, "label": cell.generator.label,
        "version": runner.plugins.generators.get(cell.generator.name).version,
        "sampling_version": type(generator).sampling_version, **options_record(generator),
        "capabilities": dataclasses.asdict(type(generator).capabilities),
        "fitted_on": (f"{spec.dataset.name}:train" + (f" (real_data {source.info['real_data']['size_text']}: "
                                                      f"{len(source.train)} images)" if cell.real_data is not None else ""))
        if sees_data else None,
        **gen_info, "synthetic": syn_info["stats"], "seed_check": checked, "masks": masks,
        "postprocessing": postprocessing,
        "cost": cost_record(gen_info, syn_info["stats"], runner.device, postprocessing, w.timings),
        **({"paid": paid.record()} if paid.active else {}),
    }
    with w.timed("quality_s"):
        w.generator_record["quality"] = cell_quality(runner, synthetic, source, w.adir, cell)
