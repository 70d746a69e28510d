"""The runner's call into the quality report: one cell's final synthetic set, logged in one line."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def cell_quality(runner, synthetic, source, adir: Path, cell) -> dict:
    """The quality report of ``synthetic`` (a SyntheticBatch) against ``source``'s real training
    split, with the run's settings, cache and device; ``{"skipped": ...}`` when turned off."""
    from cxrbench.celldata import condition_labels
    from cxrbench.quality.synthetic import synthetic_quality

    if not runner.spec.quality.enabled:
        return {"skipped": "quality.enabled is false in the spec"}
    labels = condition_labels(synthetic, len(source.label_names))
    report = synthetic_quality(synthetic.images, labels, source.train, settings=runner.spec.quality,
                               cache_dir=runner.cache_root, out_dir=adir, seed=cell.seed, val=source.val,
                               device=runner.device, progress=runner.progress)
    dom = report["features"].get("domain", {})
    if "fd" in dom:
        p = dom["prdc"]
        agreement = (report["label_fidelity"].get("synthetic") or {}).get("agreement")
        logger.info(f"{cell.generator.label}: domain FD {dom['fd']:.3g}, precision {p['precision']:.3f}, recall "
                    f"{p['recall']:.3f}, coverage {p['coverage']:.3f}, label agreement "
                    f"{'-' if agreement is None else f'{agreement:.3f}'} "
                    f"({report['seconds']:.1f} s{', cached' if report.get('cached') else ''})")
    return report
