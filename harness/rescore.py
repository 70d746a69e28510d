"""Recompute the metrics of finished cells from their stored predictions; never train anything.

``cxrbench rescore RUN [--bootstrap N] [--threshold youden|f1] [--dry-run]``.

Contract
--------
* Only records with status ``ok`` that pass their digest are rescored; failed cells are skipped
  (there is nothing to rescore), untrustworthy files are named in one line each.
* **Classification** cells: from each ``predictions-<test>.csv`` (key, patient_id,
  ``true_<label>``, ``score_<label>``, ``meta_<field>``) the ``metrics`` of every test set are
  recomputed with :func:`cxrbench.evaluation.evaluate` exactly as the runner computes them
  (cell_evaluation.py: same patient-level bootstrap seed, confidence, label order; scores read
  back as the float32 the classifier produced), and so are the sections that derive from the
  same files: ``comparisons`` (DeLong vs real-only) and ``vs_noise_control`` where the record
  has them and the other cell's predictions are in the run, ``transfer`` and ``subgroups``.
* **Thresholds**: the record's own, unless ``--threshold`` names another rule: then they are
  re-chosen by that rule from the tuning-set scores the runner stores with every classification
  cell (``artifacts.tuning_predictions``, ``tuning-predictions.csv``: the real validation split,
  or the synthetic tuning slice under synthetic-only.v2). Records made before the runner stored
  them keep their thresholds, said in one line.
* **Segmentation** cells: Dice / IoU / HD95 means and bootstrap CIs recomputed from the
  per-image CSV with :func:`cxrbench.evaluation.segmentation.segmentation_summary`, and the paired
  Dice comparisons. The CSV holds each image's mean over mask classes: with one class that is
  the class itself (everything is recomputed); with several, per-class values and the macro
  HD95 cannot be, and are kept (said in one line); the macro Dice and IoU (and CIs) are exact.
* **Comparisons added later**: a cell that finished before its real-only baseline (or, when
  supplemented, its noise control at the same r) existed has no comparison with it; when that
  partner cell has since finished ok in the same run (the runner's own rule names it), rescoring
  adds the comparison, computed exactly as the runner would have.
* ``--bootstrap N`` changes the number of resamples; without it each test set keeps its own.
* What changed is printed per cell and test set (``AUROC 0.912 [0.880, 0.940] -> ...``), or
  ``unchanged``. Without ``--dry-run`` a changed record is written back through
  :meth:`RunStore.write` (re-sealed), its old values kept under ``rescored_from`` (a list: one
  entry per rescoring, with its date and the settings before and after). An unchanged record is
  never rewritten. A cell being computed by a run right now (its lock is held) is left alone.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cxrbench.celldata import predictions_path
from cxrbench.errors import CxrbenchError

THRESHOLD_RULES = ("youden", "f1")
SECTIONS = ("metrics", "comparisons", "vs_noise_control", "transfer", "subgroups")
#: two numbers closer than this (absolute or relative) are the same number
TOLERANCE = 1e-9


@dataclass
class RescoreReport:
    lines: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped_failed: int = 0
    errors: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


class _Labels:
    """A numpy (N, L) array with the ``.numpy()`` of a torch tensor (what the runner's
    evaluation helpers call on a split's labels)."""

    def __init__(self, array):
        self.array = array

    def numpy(self):
        return self.array

    def __getitem__(self, item):
        return _Labels(self.array[item])


@dataclass
class _Split:
    """What the evaluation helpers read from a test split, rebuilt from a predictions CSV."""

    keys: list[str]
    patient_ids: list[str]
    labels: _Labels
    metadata: dict[str, list]


# --------------------------------------------------------------------------- reading


def _read_csv(path: Path):
    import pandas as pd

    # ids as text: "007" and "7" are different patients, and the bootstrap orders patients by id
    return pd.read_csv(path, dtype={"key": str, "patient_id": str})


def read_classification(path: Path) -> tuple[list[str], Any, Any, _Split]:
    """(label names in the classifier's order, scores (N, L) float32, labels (N, L), split)."""
    import numpy as np
    import pandas as pd

    df = _read_csv(path)
    names = [c[len("true_"):] for c in df.columns if c.startswith("true_")]
    missing = [n for n in names if f"score_{n}" not in df.columns]
    if not names or missing:
        raise CxrbenchError(f"{path}: not a classification predictions file (true_<label> / score_<label> columns)")
    # predict() returns float32 sigmoids, written with their shortest repr: float32 reads them back exactly
    scores = df[[f"score_{n}" for n in names]].to_numpy(np.float64).astype(np.float32)
    labels = df[[f"true_{n}" for n in names]].to_numpy(np.float64)
    metadata = {}
    for col in df.columns:
        if col.startswith("meta_"):
            values = df[col]
            if col == "meta_age":
                values = pd.to_numeric(values, errors="coerce")
            metadata[col[len("meta_"):]] = [None if (v is None or v != v) else v for v in values.tolist()]
    split = _Split(keys=df["key"].tolist(), patient_ids=df["patient_id"].tolist(), labels=_Labels(labels),
                   metadata=metadata)
    return names, scores, labels, split


def _aligned_scores(path: Path, keys: list[str], names: list[str]):
    """Another cell's scores on the same test images, in ``keys`` order (None: they differ)."""
    import numpy as np

    df = _read_csv(path).set_index("key")
    cols = [f"score_{n}" for n in names]
    if any(c not in df.columns for c in cols) or any(k not in df.index for k in keys):
        return None
    return df.loc[keys, cols].to_numpy(np.float64).astype(np.float32)


# --------------------------------------------------------------------------- comparing


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    if isinstance(a, dict) and isinstance(b, dict):  # a key added with no value is no change of numbers
        return all(_same(a.get(k), b.get(k)) for k in a.keys() | b.keys())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _fmt(value, ci) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def _headline(metric: str, old: dict, new: dict) -> str:
    o, n = (old or {}).get("macro") or {}, (new or {}).get("macro") or {}
    before, after = _fmt(o.get(metric), o.get(f"{metric}_ci")), _fmt(n.get(metric), n.get(f"{metric}_ci"))
    nb, na = ((old or {}).get("meta") or {}).get("n_resamples"), ((new or {}).get("meta") or {}).get("n_resamples")
    boot = f" (bootstrap {nb} -> {na})" if nb != na else ""
    return f"{metric.upper() if metric != 'dice' else 'Dice'} {before} -> {after}{boot}"


# --------------------------------------------------------------------------- one cell


def _settings(rec: dict, bootstrap: int | None) -> dict:
    ev = (rec.get("spec") or {}).get("evaluation") or {}
    return {"bootstrap": bootstrap, "confidence": float(ev.get("confidence", 0.95)), "evaluation": ev}


def _test_settings(m: dict, rec: dict, settings: dict) -> tuple[int, int, float]:
    """(n_resamples, seed, confidence) of one test set: its own, --bootstrap overriding."""
    meta = m.get("meta") or {}
    ev = settings["evaluation"]
    n = settings["bootstrap"] if settings["bootstrap"] is not None else int(
        meta.get("n_resamples", ev.get("bootstrap_resamples", 1000)))
    return n, int(meta.get("seed", (rec.get("cell") or {}).get("seed", 0))), float(
        meta.get("confidence", settings["confidence"]))


def _partner_id(rec: dict, ids: set[str], section: str) -> str | None:
    """The cell id the runner compares ``rec`` with in ``section`` (``comparisons``: the real-only
    baseline; ``vs_noise_control``: noise supplemented at the same r) when it is among ``ids``
    (the run's finished cells), else None. The partner comes from the runner's own rules
    (:meth:`Cell.baseline`, :meth:`Cell.noise_control`) on the cell rebuilt from the record."""
    from cxrbench import protocols
    from cxrbench.cells import Cell, GeneratorVariant

    described = rec.get("cell") or {}
    gen = described.get("generator")
    if not gen:
        return None  # a baseline is compared with nothing
    cell = Cell(protocols.get(described["protocol"]), described["schedule"], described["ratio"], described["seed"],
                GeneratorVariant(gen["name"], gen.get("options") or {}, gen["label"]),
                real_data=described.get("real_data"))
    partner = cell.baseline() if section == "comparisons" else cell.noise_control()
    if partner is None:
        return None
    # the id's last part is the cell's context (dataset, classifier, chain): the partner's is the
    # same unless the generator's own post-processing is part of this cell's; then the partner is
    # the one cell of that name in the run (several grid slices: ambiguous, nothing is added)
    same_context = f"{partner.id}__{str(rec.get('cell_id', '')).rsplit('__', 1)[-1]}"
    if same_context in ids:
        return same_context
    named = [i for i in ids if i.rsplit("__", 1)[0] == partner.id]
    return named[0] if len(named) == 1 else None


def _with_missing_partners(rec: dict, ids: set[str]) -> dict:
    """``rec`` with a placeholder ``{"baseline": id, "_added": True}`` for every test set whose
    comparison (or noise-control comparison) is missing although the partner cell is in the run."""
    patched = None
    for section in ("comparisons", "vs_noise_control"):
        partner = _partner_id(rec, ids, section)
        if partner is None:
            continue
        have = rec.get(section) or {}
        missing = [t for t in (rec.get("metrics") or {}) if not have.get(t)]
        if missing:
            patched = patched or copy.deepcopy(rec)
            patched[section] = {**have, **{t: {"baseline": partner, "_added": True} for t in missing}}
    return patched or rec


def _drop_unfilled(out: dict, rec: dict) -> None:
    """Placeholders that could not be computed (the partner scored other images) are not results;
    a section the record never had stays absent rather than becoming empty."""
    for section in ("comparisons", "vs_noise_control"):
        if isinstance(out.get(section), dict):
            out[section] = {t: c for t, c in out[section].items() if not (isinstance(c, dict) and c.get("_added"))}
            if rec.get(section) is None and not out[section]:
                out.pop(section)


def _other_predictions(store, run: Path, cell_id: str | None, tname: str) -> Path | None:
    if not cell_id:
        return None
    other = store.load(cell_id)
    if other is None or other.get("status") != "ok":
        return None
    return predictions_path(run, other, tname)


def _classification(run: Path, store, rec: dict, settings: dict, threshold: str | None,
                    notes: dict) -> dict:
    """The recomputed sections of a classification record."""
    from cxrbench.cell_evaluation import subgroup_section, transfer_section, tuned_thresholds
    from cxrbench.evaluation import compare_to_baseline, evaluate

    old_metrics = rec.get("metrics") or {}
    loaded, names = {}, None
    for tname in old_metrics:
        path = predictions_path(run, rec, tname)
        if path is None:
            raise CxrbenchError(f"no predictions file for test set {tname} (looked for "
                                f"{((rec.get('artifacts') or {}).get('predictions') or {}).get(tname)})")
        tnames, scores, labels, split = read_classification(path)
        if names is not None and tnames != names:
            raise CxrbenchError(f"{path}: labels {tnames} differ from the other test sets' {names}")
        names = tnames
        loaded[tname] = (scores, labels, split)
    thresholds = list(rec.get("thresholds") or [])
    if len(thresholds) != len(names):
        first = old_metrics[next(iter(old_metrics))].get("labels") or {}
        thresholds = [(first.get(n) or {}).get("threshold") for n in names]
    recorded_rule = settings["evaluation"].get("threshold", "youden")
    rule = recorded_rule
    if threshold is not None and threshold != recorded_rule:
        tuning = ((rec.get("artifacts") or {}).get("tuning_predictions"))
        tuning_path = Path(tuning) if tuning else None
        if tuning_path is not None and not tuning_path.is_file():
            tuning_path = run / "cells" / rec["cell_id"] / tuning_path.name
        if tuning_path is not None and tuning_path.is_file():
            tn, ts, ty, _ = read_classification(tuning_path)
            if tn != names:
                raise CxrbenchError(f"{tuning_path}: labels {tn} differ from the test sets' {names}")
            thresholds = tuned_thresholds(ts, ty, threshold)
            rule = threshold
        else:
            notes.setdefault("no_tuning", []).append(rec["cell_id"])
    out: dict[str, Any] = {"metrics": {}, "_thresholds": [None if t is None else float(t) for t in thresholds],
                           "_rule": rule}
    n_used = None
    for tname, (scores, labels, split) in loaded.items():
        n, seed, confidence = _test_settings(old_metrics[tname], rec, settings)
        n_used = n
        out["metrics"][tname] = evaluate(scores, labels, names, patient_ids=split.patient_ids, thresholds=thresholds,
                                         n_resamples=n, seed=seed, confidence=confidence)
    # paired comparisons: against the cells the record was compared with, when their files are here
    base_scored = {}
    for section in ("comparisons", "vs_noise_control"):
        old = rec.get(section)
        if old is None:
            continue
        out[section] = copy.deepcopy(old)
        for tname, comp in old.items():
            other_id = (comp or {}).get("baseline")
            path = _other_predictions(store, run, other_id, tname)
            if tname not in loaded or path is None:
                notes.setdefault("kept", set()).add(f"{section} (the compared cell's predictions are not in this run)")
                continue
            scores, labels, split = loaded[tname]
            theirs = _aligned_scores(path, split.keys, names)
            if theirs is None:
                notes.setdefault("kept", set()).add(f"{section} (the compared cell scored other images)")
                continue
            if section == "comparisons":
                base_scored[tname] = theirs
            out[section][tname] = {"baseline": other_id, **compare_to_baseline(labels, scores, theirs, names)}
    seed = int((rec.get("cell") or {}).get("seed", 0))
    ev = settings["evaluation"]
    section_settings = SimpleNamespace(
        bootstrap_resamples=n_used if n_used is not None else int(ev.get("bootstrap_resamples", 1000)),
        confidence=settings["confidence"], subgroups=list(ev.get("subgroups") or []),
        age_bands=list(ev.get("age_bands") or [18, 40, 65]), subgroup_max_levels=ev.get("subgroup_max_levels"),
        subgroup_min_positives=ev.get("subgroup_min_positives", 10),
        subgroup_min_negatives=ev.get("subgroup_min_negatives", 10))
    test_sets = {t: split for t, (_, _, split) in loaded.items()}
    scored = {t: s for t, (s, _, _) in loaded.items()}
    if rec.get("transfer") is not None:
        internals = {v.get("internal") for v in rec["transfer"].values() if isinstance(v, dict)}
        internal = next(iter(internals)) if len(internals) == 1 else None
        lost = [t for t, v in rec["transfer"].items() if isinstance(v, dict) and v.get("baseline")
                and not (internal in base_scored and t in base_scored)]
        if lost:
            notes.setdefault("kept", set()).add("transfer (paired with real-only, whose predictions are not in this run)")
        elif internal in test_sets:
            # paired with real-only per external set where real-only's files cover it and the internal set
            base_id = next((c.get("baseline") for c in (out.get("comparisons") or {}).values() if c), None)
            out["transfer"] = transfer_section(test_sets, scored, base_scored, internal, names, section_settings,
                                               seed, base_id if base_scored else None)
        else:
            notes.setdefault("kept", set()).add("transfer (its internal test set is not among the predictions)")
    if rec.get("subgroups") is not None and section_settings.subgroups:
        out["subgroups"] = subgroup_section(test_sets, scored, thresholds, names, section_settings, seed)
    return out


def _segmentation(run: Path, store, rec: dict, settings: dict, notes: dict) -> dict:
    """The recomputed sections of a segmentation record."""
    import numpy as np

    from cxrbench.evaluation.segmentation import compare_dice, segmentation_summary

    out: dict[str, Any] = {"metrics": {}}
    dice_of = {}
    for tname, old in (rec.get("metrics") or {}).items():
        path = predictions_path(run, rec, tname)
        if path is None:
            raise CxrbenchError(f"no per-image scores file for test set {tname}")
        df = _read_csv(path)
        missing = [c for c in ("dice", "iou", "hd95") if c not in df.columns]
        if missing:
            raise CxrbenchError(f"{path}: no {', '.join(missing)} column(s): cannot recompute")
        per_image = {m: df[m].to_numpy(np.float64)[:, None] for m in ("dice", "iou", "hd95")}
        pids = df["patient_id"].tolist()
        classes = list((old.get("classes") or {}).keys()) or ["mask"]
        n, seed, confidence = _test_settings(old, rec, settings)
        if len(classes) == 1:
            new = segmentation_summary(per_image, patient_ids=pids, class_names=classes, n_resamples=n, seed=seed,
                                       confidence=confidence)
        else:
            notes.setdefault("per_class", []).append(rec["cell_id"])
            mean = segmentation_summary(per_image, patient_ids=pids, class_names=["mean"], n_resamples=n, seed=seed,
                                        confidence=confidence)
            new = copy.deepcopy(old)
            for m in ("dice", "iou"):
                new["macro"][m], new["macro"][f"{m}_ci"] = mean["macro"][m], mean["macro"][f"{m}_ci"]
            new["meta"]["n_resamples"] = n
            new["meta"]["rescore_note"] = ("per-image file holds the mean over classes: macro Dice / IoU recomputed "
                                           "from it; per-class values and macro HD95 kept from the original scoring")
        out["metrics"][tname] = new
        dice_of[tname] = (df.set_index("key")["dice"], df["key"].tolist(), pids, n, seed, confidence)
    for section in ("comparisons", "vs_noise_control"):
        old = rec.get(section)
        if old is None:
            continue
        out[section] = copy.deepcopy(old)
        for tname, comp in old.items():
            other_id = (comp or {}).get("baseline")
            path = _other_predictions(store, run, other_id, tname)
            if tname not in dice_of or path is None:
                notes.setdefault("kept", set()).add(f"{section} (the compared cell's per-image file is not in this run)")
                continue
            mine, keys, pids, n, seed, confidence = dice_of[tname]
            theirs = _read_csv(path).set_index("key")
            if "dice" not in theirs or any(k not in theirs.index for k in keys):
                notes.setdefault("kept", set()).add(f"{section} (the compared cell scored other images)")
                continue
            out[section][tname] = {"baseline": other_id, **compare_dice(
                mine.loc[keys].to_numpy(np.float64), theirs.loc[keys, "dice"].to_numpy(np.float64),
                patient_ids=pids, n_resamples=n, seed=seed, confidence=confidence)}
    return out


# --------------------------------------------------------------------------- the run


def rescore_run(run_dir: str | Path, *, bootstrap: int | None = None, threshold: str | None = None,
                dry_run: bool = False, now: str | None = None) -> RescoreReport:
    """Rescore every finished cell of ``run_dir`` (see the module docstring); the report's
    ``lines`` are what the command prints."""
    from cxrbench import __version__
    from cxrbench.export import task_of
    from cxrbench.integrity import CellLock
    from cxrbench.store import RunStore

    run = Path(run_dir)
    if not (run / "cells").is_dir():
        raise CxrbenchError(f"{run}: not a run directory (no cells/ inside); give the --out of a run")
    if bootstrap is not None and bootstrap < 0:
        raise CxrbenchError(f"--bootstrap {bootstrap}: give a number of resamples >= 0")
    if threshold is not None and threshold not in THRESHOLD_RULES:
        raise CxrbenchError(f"--threshold {threshold!r}: one of {', '.join(THRESHOLD_RULES)}")
    store = RunStore(run)
    records, problems = store.checked_records()
    report = RescoreReport()
    report.lines += [f"NOT RESCORED: {p}" for p in problems]
    notes: dict[str, Any] = {}
    date = now or time.strftime("%Y-%m-%dT%H:%M:%S%z")
    finished = {r["cell_id"] for r in records if r.get("status") == "ok" and r.get("cell_id")}
    for rec in records:
        cell_id = rec.get("cell_id", "?")
        if rec.get("status") != "ok":
            report.skipped_failed += 1
            continue
        task = task_of(rec)
        settings = _settings(rec, bootstrap)
        source = _with_missing_partners(rec, finished)
        try:
            if task == "segmentation":
                if threshold is not None:
                    notes.setdefault("seg_threshold", []).append(cell_id)
                new = _segmentation(run, store, source, settings, notes)
            else:
                new = _classification(run, store, source, settings, threshold, notes)
            _drop_unfilled(new, rec)
        except (CxrbenchError, OSError, ValueError, KeyError) as exc:
            report.errors.append(cell_id)
            report.lines.append(f"{cell_id}: NOT RESCORED: {exc}")
            continue
        thresholds, rule = new.pop("_thresholds", None), new.pop("_rule", None)
        changed = [s for s in SECTIONS if s in new and not _same(rec.get(s), new[s])]
        if thresholds is not None and not _same(rec.get("thresholds"), thresholds):
            changed.append("thresholds")
        if not changed:
            report.unchanged.append(cell_id)
            report.lines.append(f"{cell_id}: unchanged")
            continue
        report.changed.append(cell_id)
        metric = "dice" if task == "segmentation" else "auroc"
        for tname, m in new.get("metrics", {}).items():
            old = (rec.get("metrics") or {}).get(tname)
            state = "changed" if not _same(old, m) else "unchanged"
            report.lines.append(f"{cell_id} {tname}: {_headline(metric, old, m)}" if state == "changed"
                                else f"{cell_id} {tname}: metrics unchanged")
        for section in ("comparisons", "vs_noise_control"):
            added = sorted(t for t, c in (new.get(section) or {}).items() if c and not (rec.get(section) or {}).get(t))
            if added:
                report.lines.append(f"{cell_id}: {section} added on {', '.join(added)} (vs "
                                    f"{new[section][added[0]].get('baseline')})")
        others = [s for s in changed if s != "metrics"]
        if others:
            report.lines.append(f"{cell_id}: also changed: {', '.join(others)}")
        if dry_run:
            continue
        ev = settings["evaluation"]
        before = {"bootstrap_resamples": sorted({(m.get("meta") or {}).get("n_resamples")
                                                 for m in (rec.get("metrics") or {}).values()}, key=str),
                  "threshold": ev.get("threshold", "youden")}
        after = {"bootstrap_resamples": sorted({(m.get("meta") or {}).get("n_resamples")
                                                for m in new.get("metrics", {}).values()}, key=str),
                 "threshold": rule or before["threshold"]}
        entry = {"date": date, "by": f"cxrbench {__version__} rescore", "settings_before": before,
                 "settings_after": after,
                 "values": {s: copy.deepcopy(rec.get(s)) for s in changed}}
        updated = {k: v for k, v in rec.items() if k != "digest"}
        for s in changed:
            updated[s] = thresholds if s == "thresholds" else new[s]
        updated["rescored_from"] = list(rec.get("rescored_from") or []) + [entry]
        lock = CellLock(store.record_path(cell_id))
        if not lock.acquire(blocking=False):
            report.lines.append(f"{cell_id}: a run is computing this cell right now: left as it is")
            continue
        try:
            store.write(cell_id, updated)
        finally:
            lock.release()
        report.written.append(cell_id)
    if notes.get("no_tuning"):
        n = len(notes["no_tuning"])
        report.lines.append(f"--threshold {threshold}: {n} cell(s) store no tuning-set scores, needed to re-choose "
                            "thresholds: their recorded thresholds were kept")
    if notes.get("seg_threshold"):
        report.lines.append(f"--threshold {threshold}: {len(notes['seg_threshold'])} segmentation cell(s) have no "
                            "decision threshold to choose: ignored for them")
    if notes.get("per_class"):
        report.lines.append(f"{len(notes['per_class'])} segmentation cell(s) have several mask classes but per-image "
                            "files hold only the mean over classes: macro Dice / IoU recomputed, per-class values "
                            "and macro HD95 kept")
    for what in sorted(notes.get("kept", ())):
        report.lines.append(f"kept as recorded where it could not be recomputed: {what}")
    summary = (f"{len(report.changed) + len(report.unchanged)} cell(s) rescored: {len(report.changed)} changed, "
               f"{len(report.unchanged)} unchanged")
    if report.skipped_failed:
        summary += f", {report.skipped_failed} failed cell(s) skipped"
    if report.errors:
        summary += f", {len(report.errors)} could not be rescored"
    if dry_run:
        summary += " (dry run: nothing written)"
    elif report.written:
        summary += f"; {len(report.written)} record(s) rewritten, re-sealed, old values under rescored_from"
    report.lines.append(summary)
    return report
