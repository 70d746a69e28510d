"""`cxrbench quality`: the quality report of each generator's synthetic set, without a classifier.

It takes the same spec and flags as `cxrbench run` and goes through the same machinery (the
fitted generator and the synthetic set come from the same cache, the post-processing chain is the
spec's), stopping before the classifier: a cheap screen of generators, and the way to get quality
figures for runs made before the metrics existed. One JSON per (generator, seed) and a table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def _row(label: str, seed: int, q: dict) -> dict:
    dom = q["features"].get("domain", {})
    p = dom.get("prdc", {})
    div, mem, lab = q.get("diversity", {}), q.get("memorization", {}), q.get("label_fidelity", {})
    ms = div.get("ms_ssim", {})
    spread = (div.get("pixel_spread") or {}).get("ratio", {})
    return {
        "generator": label, "seed": seed, "n": q["n_synthetic"],
        "domain FD": dom.get("fd"), "FD ratio": (dom.get("fd_ratio") or {}).get("ratio"),
        "KID": (dom.get("kid") or {}).get("mean"),
        "precision": p.get("precision"), "recall": p.get("recall"),
        "density": p.get("density"), "coverage": p.get("coverage"),
        "MS-SSIM (real)": f"{ms['synthetic']['overall']:.3f} ({ms['real']['overall']:.3f})" if ms else None,
        "pixel spread / real": spread.get("overall"),
        "near copies": (mem.get("pixels") or {}).get("near_copy_fraction"),
        "label agreement": (lab.get("synthetic") or {}).get("agreement"),
    }


def quality_reports(spec, source: str, *, out: Path, data_root, cache_dir, progress) -> list[dict]:
    from tabulate import tabulate

    from cxrbench.cells import expand_cells
    from cxrbench.device import resolve_device
    from cxrbench.generation import synthetic_training_set
    from cxrbench.postprocessing import Chain, fill_to_size
    from cxrbench.quality.cell import cell_quality
    from cxrbench.errors import ConfigError
    from cxrbench.grid import grid_slices, is_grid
    from cxrbench.runner import Runner, _default_cache_root

    if is_grid(spec):  # quality is a property of (dataset, generator, chain): one slice at a time
        slices = grid_slices(spec)
        if len({(s.dataset.name, repr(s.postprocess)) for s in slices}) > 1:
            raise ConfigError(f"{source}: cxrbench quality measures one dataset and chain at a time; this grid has "
                              f"{len(slices)} slices: pass --dataset NAME (and --postprocess ... if it lists chains)")
        spec = slices[0]
    runner = Runner(spec, out=out, data_root=data_root, cache_dir=cache_dir, progress=progress, spec_source=source)
    runner.device = resolve_device(runner.device_request)
    runner.cache_root = runner.cache_dir or _default_cache_root()
    source_ds = runner.dataset(spec.dataset)
    wanted = {}
    for cell in expand_cells(spec):
        if cell.generator is not None and cell.protocol.uses_generator:
            wanted.setdefault((cell.generator.label, cell.seed), cell)
    rows = []
    for (label, seed), cell in wanted.items():
        logger.info(f"quality: {label} seed {seed}")
        generator, gen_info = runner.fitted_generator(cell.generator, source_ds.train, source_ds.fingerprint)
        synthetic, _ = synthetic_training_set(
            generator, gen_info, ratio=1.0, variant_name=cell.generator.name, variant_label=label, seed=seed,
            source_train=source_ds.train, size=spec.size, cache_root=runner.cache_root, progress=progress)
        chain = Chain(runner, cell.generator)
        if chain.steps:
            if chain.needs_real_train:
                chain.prepare(source_ds.train, cache_dir=runner.cache_root, progress=progress)
            synthetic, _ = fill_to_size(generator, chain, synthetic, chain(synthetic), label=label, seed=seed)
        slug = "".join(c if c.isalnum() or c in "._-=" else "-" for c in label).strip(".") or "generator"
        folder = Path(out) / f"{slug}-seed{seed}"  # a label is plugin/spec text: never a path
        report = cell_quality(runner, synthetic, source_ds, folder, cell)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "quality.json").write_text(json.dumps(report, indent=1, sort_keys=True))
        rows.append(_row(label, seed, report))
    print(tabulate(rows, headers="keys", floatfmt=".3f", missingval="-"))
    print(f"\n{len(rows)} report(s) -> {out}/<generator>-seed<N>/quality.json ({spec.dataset.name}, {spec.size} px; "
          "FD, KID, precision / recall / density / coverage on the domain features)")
    return rows
