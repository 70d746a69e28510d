"""A trained classifier's scores on every real test set of a cell, and what they are read against.

One cell's evaluation, in order:

1. **thresholds** per label, chosen on the tuning set (never on a test set);
2. **scores** on every test set (the source's test split and each external set, labels read
   through its label map): AUROC / AP with patient-level bootstrap CIs and the threshold metrics
   (``cxrbench.evaluation.evaluate``), the predictions written next to the record;
3. **comparisons**: DeLong against real-only at the same seed (same test images) and, for a
   supplemented cell, against its noise control (real + r x noise: the content gain);
4. **transfer** (with external sets): for each external set, its AUROC minus the source test
   split's (the transfer gap) with a bootstrap CI, and that gap minus real-only's gap at the same
   seed (does the synthetic data narrow the generalisation gap?), from the same resamples;
5. **subgroups** (``evaluation: {subgroups: [sex, age_band, view, site]}``): per test set and
   field, each group's n, prevalence, AUROC and, at the tuned threshold, false-negative and
   false-positive rates, with the worst-to-best gap; "too few" instead of a number below the
   stated minimum of positives / negatives.

Everything is a plain JSON-ready dict in the record; the predictions files (with each image's
metadata) hold what is needed to recompute any of it.
"""

from __future__ import annotations

from pathlib import Path

from cxrbench.celldata import read_scores, write_predictions, write_scores


def evaluate_cell(runner, w, model) -> dict:
    """Scores on every real test set, thresholds from the tuning set, DeLong vs real-only and vs
    the noise control, transfer gaps and subgroups (see the module docstring)."""

    from cxrbench.evaluation import compare_to_baseline, evaluate
    from cxrbench.training import predict

    spec, names = runner.spec, w.source.label_names
    settings = spec.evaluation
    tune_scores = predict(model, w.tune_images, device=runner.device)
    thresholds = tuned_thresholds(tune_scores, w.tune_targets.numpy(), settings.threshold)
    out = {"thresholds": thresholds, "metrics": {}, "comparisons": {}}
    if w.tune_keys is not None:
        # stored so that `cxrbench rescore --threshold RULE` can re-choose thresholds later
        tuning = w.adir / "tuning-predictions.csv"
        write_scores(tuning, w.tune_keys, w.tune_patients, w.tune_targets.numpy(), tune_scores, names)
        w.artifacts["tuning_predictions"] = str(tuning)
    predictions, baseline = {}, runner._baseline_record(w.cell)
    control = runner._finished(w.cell.noise_control())
    if control is not None:
        out["vs_noise_control"] = {}
    scored, base_scored = {}, {}
    for tname, split in w.test_sets.items():
        scores = predict(model, split.images, device=runner.device)
        labels = split.labels.numpy()
        scored[tname] = scores
        out["metrics"][tname] = evaluate(
            scores, labels, names, patient_ids=split.patient_ids, thresholds=thresholds,
            n_resamples=settings.bootstrap_resamples, seed=w.cell.seed, confidence=settings.confidence,
        )
        predictions[tname] = str(w.adir / f"predictions-{tname.replace(':', '-')}.csv")
        write_predictions(Path(predictions[tname]), split, scores, names)
        base_file = runner.predictions_of(baseline, tname) if baseline is not None else None
        if base_file is not None:
            base_scores = read_scores(base_file, split.keys, names)
            base_scored[tname] = base_scores
            out["comparisons"][tname] = {"baseline": baseline["cell_id"],
                                         **compare_to_baseline(labels, scores, base_scores, names)}
        # the content gain: over real + r x noise at the same size, ratio and seed (paired DeLong)
        control_file = runner.predictions_of(control, tname) if control is not None else None
        if control_file is not None:
            control_scores = read_scores(control_file, split.keys, names)
            out["vs_noise_control"][tname] = {"baseline": control["cell_id"],
                                              **compare_to_baseline(labels, scores, control_scores, names)}
    w.artifacts["predictions"] = predictions
    internal = f"{spec.dataset.name}:test"
    if len(w.test_sets) > 1:
        out["transfer"] = transfer_section(w.test_sets, scored, base_scored, internal, names, settings, w.cell.seed,
                                           baseline["cell_id"] if baseline is not None and base_scored else None)
    if settings.subgroups:
        out["subgroups"] = subgroup_section(w.test_sets, scored, thresholds, names, settings, w.cell.seed)
    return out


def tuned_thresholds(scores, labels, method: str) -> list[float]:
    """Per label, the operating threshold chosen on the tuning set's scores and labels (NaN =
    masked) by ``method``; 0.5 for a label without both values there."""
    import numpy as np

    from cxrbench.evaluation.metrics import choose_threshold

    out = []
    for j in range(labels.shape[1]):
        y = labels[:, j]
        ok = ~np.isnan(y)
        both = ok.any() and len(set(y[ok].tolist())) == 2
        out.append(float(choose_threshold(y[ok], scores[ok, j], method=method)) if both else 0.5)
    return out


def transfer_section(test_sets: dict, scored: dict, base_scored: dict, internal: str, names, settings, seed: int,
                     baseline_id: str | None) -> dict:
    """Per external test set: the transfer gap (external - internal AUROC, macro over the labels
    defined on both) with its bootstrap CI, and, when real-only's predictions at this seed exist,
    the gap relative to real-only's gap from the same resamples."""
    from cxrbench.evaluation.transfer import transfer_gap

    inside = test_sets[internal]
    out = {}
    for tname, split in test_sets.items():
        if tname == internal:
            continue
        paired = internal in base_scored and tname in base_scored
        out[tname] = {
            "internal": internal, **({"baseline": baseline_id} if paired else {}),
            **transfer_gap(inside.labels.numpy(), scored[internal], split.labels.numpy(), scored[tname],
                           internal_groups=inside.patient_ids, external_groups=split.patient_ids,
                           baseline_internal_scores=base_scored[internal] if paired else None,
                           baseline_external_scores=base_scored[tname] if paired else None,
                           n_resamples=settings.bootstrap_resamples, seed=seed, confidence=settings.confidence,
                           label_names=list(names)),
        }
    return out


def subgroup_section(test_sets: dict, scored: dict, thresholds: list[float], names, settings, seed: int) -> dict:
    """Per test set, label and subgroup field: the subgroup report (evaluation/subgroups.py). A
    field a test set does not carry is listed under ``not_available`` (it may be another set's)."""
    from cxrbench.evaluation.subgroups import subgroup_reports

    out = {}
    for tname, split in test_sets.items():
        # a field the set declares but leaves empty (NIH's sample has no age / sex / view) is absent
        have = {k for k, v in split.metadata.items() if any(x is not None and x == x and x != "" for x in v)}
        fields = [f for f in settings.subgroups if (f if f != "age_band" else "age") in have]
        entry = {"fields": fields, "not_available": [f for f in settings.subgroups if f not in fields], "labels": {}}
        for j, label in enumerate(names):
            if not fields:
                break
            entry["labels"][label] = subgroup_reports(
                split.labels[:, j].numpy(), scored[tname][:, j], split.metadata, fields,
                threshold=float(thresholds[j]), patient_ids=split.patient_ids, age_edges=tuple(settings.age_bands),
                max_levels=settings.subgroup_max_levels, min_positives=settings.subgroup_min_positives,
                min_negatives=settings.subgroup_min_negatives, n_resamples=settings.bootstrap_resamples, seed=seed,
                confidence=settings.confidence)
        out[tname] = entry
    return out
