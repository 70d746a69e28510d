"""Cell records as flat rows: one row per cell and test set, for spreadsheets and data frames.

Contract
--------
* :func:`flatten_record` turns one cell record (the JSON the runner writes, see
  ``record.schema.json``) into a list of flat dicts, **one per test set** of the cell, in the
  order of the record's ``metrics``. A failed cell gives exactly one row, with ``status``
  ``failed``, ``error`` ``"<Type>: <message>"`` (the full message) and every metric empty.
* Every key of a row is a column of :data:`COLUMNS` (name -> meaning), or an instance of one of
  its per-label templates (``auroc[<label>]`` -> ``auroc[pneumonia]``). A value is a str, int,
  float, bool or None (empty): never a list or a dict. Nothing is computed here that the record
  does not hold, except the macro mean of per-label numbers where stated in the column's meaning.
* :func:`export_rows` reads run folders (only trustworthy, i.e. digest-verified, records; one
  problem line per file that is not) and :func:`rows_frame` orders the columns as
  :data:`COLUMNS` lists them (per-label columns at their template's place, labels in order of
  first appearance).
* ``docs/export-columns.md`` is generated from :data:`COLUMNS` by :func:`columns_markdown`
  (``python -m cxrbench.export --docs docs/export-columns.md``); a test checks it is up to date.
* ``cxrbench export RUN... --format csv|parquet --out FILE`` (results_cli.py) writes the rows;
  parquet needs pyarrow (or fastparquet): without it, a one-line error says ``pip install pyarrow``.

This module imports neither torch nor pandas at import time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ALL, CLS, SEG = "all", "classification", "segmentation"

#: (column, task it is filled for, meaning). ``<label>``: one column per label of the dataset.
COLUMNS: list[tuple[str, str, str]] = [
    ("run", ALL, "the run directory (the --out of a run) the record was read from"),
    ("cell_id", ALL, "the cell's id: protocol, generator, ratio, schedule, seed and the run context hash"),
    ("protocol", ALL, "protocol id, e.g. real-only.v1, synthetic-only.v2, supplemented.v1"),
    ("schedule", ALL, "training schedule of the protocol (quick, standard, budget-quick...)"),
    ("generator", ALL, "the generator row's label ('-' for a cell without a generator)"),
    ("generator_plugin", ALL, "the generator plugin's name (empty without a generator)"),
    ("postprocess", ALL, "post-processing chain applied to the synthetic images, steps joined by ' > '"),
    ("ratio", ALL, "synthetic-to-real ratio r (0 for real-only)"),
    ("real_data", ALL, "real-data size of the cell as given (a fraction of the training split or an image count; "
                       "empty: the whole split)"),
    ("real_data_n", ALL, "number of real training images that real-data size gave (empty without the axis)"),
    ("seed", ALL, "the cell's seed"),
    ("dataset", ALL, "training dataset plugin"),
    ("size", ALL, "image size in px"),
    ("task", ALL, "classification or segmentation"),
    ("model", ALL, "the trained model: classifier plugin (classification) or segmenter plugin (segmentation)"),
    ("status", ALL, "ok, or failed (then every metric is empty and error says why)"),
    ("error", ALL, "failed cells: '<exception type>: <message>' (the full message); empty otherwise"),
    ("test_set", ALL, "the test set of this row: '<dataset>:test' (internal) or '<external>:test|all'; "
                      "empty for a failed cell"),
    ("n_images", ALL, "test images scored"),
    ("n_patients", ALL, "distinct test patients (the bootstrap resamples patients)"),
    ("bootstrap_resamples", ALL, "bootstrap resamples behind the confidence intervals of this row"),
    ("confidence", ALL, "confidence level of the intervals (0.95: 95%)"),
    ("auroc", CLS, "macro AUROC: mean over the labels with both classes in the test set"),
    ("auroc_ci_low", CLS, "lower bound of the macro AUROC's patient-level percentile bootstrap interval"),
    ("auroc_ci_high", CLS, "upper bound of that interval"),
    ("auroc_se", CLS, "bootstrap standard error of the macro AUROC (the within-seed error pooled over seeds)"),
    ("aupr", CLS, "macro average precision (area under the precision-recall curve)"),
    ("aupr_ci_low", CLS, "lower bound of the macro AUPR's bootstrap interval"),
    ("aupr_ci_high", CLS, "upper bound of that interval"),
    ("f1", CLS, "mean over labels of F1 at the threshold chosen on the tuning set (labels where defined)"),
    ("sensitivity", CLS, "mean over labels of the sensitivity at the tuned threshold"),
    ("specificity", CLS, "mean over labels of the specificity at the tuned threshold"),
    ("auroc[<label>]", CLS, "AUROC of one label (empty when the test set has one class of it)"),
    ("auroc_ci_low[<label>]", CLS, "lower bound of that label's AUROC bootstrap interval"),
    ("auroc_ci_high[<label>]", CLS, "upper bound of that label's AUROC bootstrap interval"),
    ("aupr[<label>]", CLS, "average precision of one label"),
    ("threshold[<label>]", CLS, "the label's decision threshold, chosen on the tuning set (never on a test set)"),
    ("f1[<label>]", CLS, "F1 of the label at its threshold"),
    ("sensitivity[<label>]", CLS, "sensitivity (recall) of the label at its threshold"),
    ("specificity[<label>]", CLS, "specificity of the label at its threshold"),
    ("delta_auroc_vs_real_only", CLS, "AUROC minus real-only's at the same seed on the same test images, mean over "
                                      "labels of the paired DeLong differences (empty for real-only itself)"),
    ("dice", SEG, "macro Dice: mean over mask classes of the per-class mean Dice over test images"),
    ("dice_ci_low", SEG, "lower bound of the macro Dice's patient-level percentile bootstrap interval"),
    ("dice_ci_high", SEG, "upper bound of that interval"),
    ("iou", SEG, "macro IoU (Jaccard)"),
    ("iou_ci_low", SEG, "lower bound of the macro IoU's bootstrap interval"),
    ("iou_ci_high", SEG, "upper bound of that interval"),
    ("hd95", SEG, "macro 95th-percentile Hausdorff distance in px (over classes with a defined image)"),
    ("hd95_ci_low", SEG, "lower bound of the macro HD95's bootstrap interval"),
    ("hd95_ci_high", SEG, "upper bound of that interval"),
    ("delta_dice_vs_real_only", SEG, "mean per-image Dice minus real-only's at the same seed (paired, same images)"),
    ("delta_dice_ci_low", SEG, "lower bound of that difference's bootstrap interval"),
    ("delta_dice_ci_high", SEG, "upper bound of that difference's bootstrap interval"),
    ("p_vs_real_only", ALL, "p-value of the paired test against real-only: DeLong, the smallest over labels "
                            "(classification); Wilcoxon signed-rank on patient means (segmentation). Uncorrected"),
    ("baseline_cell_id", ALL, "the real-only cell compared with"),
    ("content_gain_auroc", CLS, "supplemented cells: AUROC minus that of real + r x noise at the same size, ratio "
                                "and seed (mean over labels of the paired DeLong differences)"),
    ("content_gain_dice", SEG, "supplemented cells: mean Dice minus that of real + r x noise (paired)"),
    ("content_gain_p", ALL, "p-value of the content-gain test (smallest over labels for classification)"),
    ("noise_control_cell_id", ALL, "the noise-control cell compared with"),
    ("transfer_gap", CLS, "external test sets: this set's macro AUROC minus the internal test split's"),
    ("transfer_gap_ci_low", CLS, "lower bound of the transfer gap's bootstrap interval"),
    ("transfer_gap_ci_high", CLS, "upper bound of the transfer gap's bootstrap interval"),
    ("transfer_gap_vs_real_only", CLS, "transfer gap minus real-only's gap at the same seed (positive: the cell "
                                       "generalises better than real-only)"),
    ("transfer_gap_vs_real_only_ci_low", CLS, "lower bound of that difference's bootstrap interval"),
    ("transfer_gap_vs_real_only_ci_high", CLS, "upper bound of that difference's bootstrap interval"),
    ("n_train", ALL, "training images of the model (real + synthetic)"),
    ("n_real", ALL, "real training images"),
    ("n_synthetic", ALL, "synthetic training images"),
    ("steps", ALL, "optimizer steps the model trained for"),
    ("images_seen", ALL, "training images the model saw (steps x batch size)"),
    ("fit_key", ALL, "content key of the generator's fit (same key: the same fitted generator)"),
    ("generator_truncated", ALL, "true when the generator's fit stopped before its requested steps"),
    ("train_s", ALL, "seconds training the classifier or segmenter"),
    ("generator_fit_s", ALL, "seconds fitting (or loading) the generator"),
    ("generate_s", ALL, "seconds generating the synthetic images"),
    ("postprocess_s", ALL, "seconds post-processing the synthetic images"),
    ("evaluate_s", ALL, "seconds scoring the test sets"),
    ("total_s", ALL, "seconds of the whole cell"),
    ("created", ALL, "when the record was written"),
    ("rescored", ALL, "when `cxrbench rescore` last recomputed the metrics (empty: never)"),
    ("code_fingerprint", ALL, "hash of the cxrbench code that made the record"),
    ("git_revision", ALL, "git revision of the cxrbench checkout that made the record, when it was one"),
]

_TEMPLATE = re.compile(r"^(.*)\[<label>\]$")


def column_names() -> list[str]:
    return [name for name, _, _ in COLUMNS]


def _number(x: Any) -> Any:
    """A JSON number as a plain float / int; NaN and inf as None."""
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _ci(ci: Sequence | None) -> tuple[Any, Any]:
    if not ci or len(ci) != 2:
        return None, None
    return _number(ci[0]), _number(ci[1])


def _mean(values: Iterable) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and not math.isfinite(v))]
    return sum(vals) / len(vals) if vals else None


def task_of(rec: dict) -> str:
    """classification or segmentation (a record with a segmenter, or Dice in its metrics)."""
    if "segmenter" in rec or (rec.get("spec") or {}).get("task") == SEG:
        return SEG
    if any("dice" in (m.get("macro") or {}) for m in (rec.get("metrics") or {}).values()):
        return SEG
    return CLS


def _model(rec: dict) -> str | None:
    if task_of(rec) == SEG:
        return (rec.get("segmenter") or {}).get("name") or ((rec.get("spec") or {}).get("segmenter") or {}).get("name")
    return (rec.get("classifier") or {}).get("name") or ((rec.get("spec") or {}).get("classifier") or {}).get("name")


def _paired_classification(comp: dict | None) -> tuple[Any, Any, Any]:
    """(mean delta over labels, smallest p over labels, baseline id) of a DeLong comparison."""
    if not comp:
        return None, None, None
    labels = [c for c in (comp.get("labels") or {}).values() if isinstance(c, dict)]
    ps = [c.get("p_value") for c in labels if c.get("p_value") is not None]
    return _mean(c.get("delta") for c in labels), min(ps) if ps else None, comp.get("baseline")


def _cell_columns(rec: dict, run: str | None) -> dict:
    cell = rec.get("cell") or {}
    spec = rec.get("spec") or {}
    cgen = cell.get("generator") or {}
    gen = rec.get("generator") or {}
    model = rec.get("segmenter") if task_of(rec) == SEG else rec.get("classifier")
    model = model or {}
    timings = rec.get("timings") or {}
    training = rec.get("training_set") or {}
    steps = [p.get("name", "?") for p in (cgen.get("postprocess") or []) + (spec.get("postprocess") or [])]
    error = rec.get("error") or {}
    rescored = rec.get("rescored_from") or []
    return {
        "run": run,
        "cell_id": rec.get("cell_id"),
        "protocol": cell.get("protocol"),
        "schedule": cell.get("schedule"),
        "generator": cgen.get("label", "-") if cgen else "-",
        "generator_plugin": cgen.get("name") if cgen else None,
        "postprocess": " > ".join(steps) if steps and cgen else None,
        "ratio": cell.get("ratio"),
        "real_data": cell.get("real_data"),
        "real_data_n": (rec.get("real_data") or {}).get("n_train"),
        "seed": cell.get("seed"),
        "dataset": (spec.get("dataset") or {}).get("name") or (rec.get("dataset") or {}).get("name"),
        "size": spec.get("size"),
        "task": task_of(rec),
        "model": _model(rec),
        "status": rec.get("status"),
        "error": f"{error.get('type', 'Error')}: {error.get('message', '')}" if rec.get("status") != "ok" else None,
        "n_train": training.get("n"),
        "n_real": training.get("n_real"),
        "n_synthetic": training.get("n_synthetic"),
        "steps": model.get("steps"),
        "images_seen": model.get("images_seen"),
        "fit_key": gen.get("fit_key"),
        "generator_truncated": bool(gen.get("truncated")) if gen else None,
        "train_s": timings.get("classifier_train_s", timings.get("segmenter_train_s")),
        "generator_fit_s": timings.get("generator_fit_s"),
        "generate_s": timings.get("generate_s"),
        "postprocess_s": timings.get("postprocess_s"),
        "evaluate_s": timings.get("evaluate_s"),
        "total_s": timings.get("total_s"),
        "created": rec.get("created"),
        "rescored": rescored[-1].get("date") if rescored and isinstance(rescored[-1], dict) else None,
        "code_fingerprint": (rec.get("versions") or {}).get("code_fingerprint"),
        "git_revision": rec.get("git_revision"),
    }


def _classification_columns(rec: dict, tname: str, m: dict) -> dict:
    macro = m.get("macro") or {}
    labels = m.get("labels") or {}
    out: dict[str, Any] = {"auroc": _number(macro.get("auroc")), "auroc_se": _number(macro.get("auroc_se")),
                           "aupr": _number(macro.get("aupr"))}
    out["auroc_ci_low"], out["auroc_ci_high"] = _ci(macro.get("auroc_ci"))
    out["aupr_ci_low"], out["aupr_ci_high"] = _ci(macro.get("aupr_ci"))
    for metric in ("f1", "sensitivity", "specificity"):
        out[metric] = _mean(e.get(metric) for e in labels.values())
    for label, e in labels.items():
        out[f"auroc[{label}]"] = _number(e.get("auroc"))
        out[f"auroc_ci_low[{label}]"], out[f"auroc_ci_high[{label}]"] = _ci(e.get("auroc_ci"))
        for metric in ("aupr", "threshold", "f1", "sensitivity", "specificity"):
            out[f"{metric}[{label}]"] = _number(e.get(metric))
    delta, p, base = _paired_classification((rec.get("comparisons") or {}).get(tname))
    out.update({"delta_auroc_vs_real_only": delta, "p_vs_real_only": p, "baseline_cell_id": base})
    gain, gp, control = _paired_classification((rec.get("vs_noise_control") or {}).get(tname))
    out.update({"content_gain_auroc": gain, "content_gain_p": gp, "noise_control_cell_id": control})
    t = (rec.get("transfer") or {}).get(tname) or {}
    out["transfer_gap"] = _number(t.get("gap"))
    out["transfer_gap_ci_low"], out["transfer_gap_ci_high"] = _ci(t.get("gap_ci"))
    out["transfer_gap_vs_real_only"] = _number(t.get("gap_vs_baseline"))
    out["transfer_gap_vs_real_only_ci_low"], out["transfer_gap_vs_real_only_ci_high"] = _ci(t.get("gap_vs_baseline_ci"))
    return out


def _segmentation_columns(rec: dict, tname: str, m: dict) -> dict:
    macro = m.get("macro") or {}
    out: dict[str, Any] = {}
    for metric in ("dice", "iou", "hd95"):
        out[metric] = _number(macro.get(metric))
        out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = _ci(macro.get(f"{metric}_ci"))
    comp = (rec.get("comparisons") or {}).get(tname) or {}
    out["delta_dice_vs_real_only"] = _number(comp.get("difference"))
    out["delta_dice_ci_low"], out["delta_dice_ci_high"] = _ci(comp.get("difference_ci"))
    out["p_vs_real_only"], out["baseline_cell_id"] = _number(comp.get("p_value")), comp.get("baseline")
    ctrl = (rec.get("vs_noise_control") or {}).get(tname) or {}
    out["content_gain_dice"], out["content_gain_p"] = _number(ctrl.get("difference")), _number(ctrl.get("p_value"))
    out["noise_control_cell_id"] = ctrl.get("baseline")
    return out


def flatten_record(rec: dict, run: str | Path | None = None) -> list[dict]:
    """One flat row per test set of ``rec`` (one row, metrics empty, for a failed cell); see the
    module docstring and :data:`COLUMNS`. ``run``: the run folder, for the ``run`` column."""
    base = _cell_columns(rec, None if run is None else str(run))
    metrics = rec.get("metrics") or {}
    if rec.get("status") != "ok" or not metrics:
        return [{**base, "test_set": None}]
    rows = []
    task = task_of(rec)
    for tname, m in metrics.items():
        meta = m.get("meta") or {}
        row = {**base, "test_set": tname, "n_images": meta.get("n_images"), "n_patients": meta.get("n_patients"),
               "bootstrap_resamples": meta.get("n_resamples"), "confidence": meta.get("confidence")}
        row.update(_segmentation_columns(rec, tname, m) if task == SEG else _classification_columns(rec, tname, m))
        rows.append(row)
    return rows


def export_rows(run_dirs: Iterable[str | Path]) -> tuple[list[dict], list[str]]:
    """(rows of every trustworthy record of the run folders, one problem line per record file
    that is not trustworthy). A folder without ``cells/`` is a :class:`CxrbenchError`."""
    from cxrbench.errors import CxrbenchError
    from cxrbench.store import RunStore

    rows, problems = [], []
    for run in run_dirs:
        if not (Path(run) / "cells").is_dir():
            raise CxrbenchError(f"{run}: not a run directory (no cells/ inside); give the --out of a run")
        records, bad = RunStore(Path(run)).checked_records()
        problems += bad
        for rec in records:
            rows += flatten_record(rec, run)
    return rows, problems


def ordered_columns(rows: Iterable[dict]) -> list[str]:
    """Every column the rows use, in :data:`COLUMNS` order (per-label columns at their
    template's place, labels in order of first appearance; unknown keys last)."""
    seen: list[str] = []
    for row in rows:
        for k in row:
            if k not in seen:
                seen.append(k)
    out = []
    for name, _, _ in COLUMNS:
        t = _TEMPLATE.match(name)
        if t is None:
            if name in seen:
                out.append(name)
            continue
        prefix = t.group(1) + "["
        out += [k for k in seen if k.startswith(prefix) and k.endswith("]") and k not in out]
    return out + [k for k in seen if k not in out]


def rows_frame(rows: list[dict]):
    """The rows as a pandas DataFrame with the columns in documented order."""
    import pandas as pd

    return pd.DataFrame(rows, columns=ordered_columns(rows))


def parquet_engine() -> str | None:
    """The parquet engine pandas can use here (pyarrow or fastparquet), or None."""
    import importlib.util

    for name in ("pyarrow", "fastparquet"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


PARQUET_MISSING = "export --format parquet needs pyarrow (or fastparquet), not installed here: pip install pyarrow"


def write_rows(rows: list[dict], fmt: str, out: str | Path | None) -> None:
    """Write ``rows`` as csv (``out`` None or '-': standard output) or parquet (``out`` required)."""
    import sys

    from cxrbench.errors import CxrbenchError

    if fmt == "parquet":
        engine = parquet_engine()
        if engine is None:
            raise CxrbenchError(PARQUET_MISSING)
        if out in (None, "-"):
            raise CxrbenchError("export --format parquet needs --out FILE (parquet is binary)")
        frame = rows_frame(rows)
        # a column mixing numbers and text (real_data: 0.05 and 200) is stored as text
        for col in frame.columns:
            kinds = {type(v) for v in frame[col] if v is not None and v == v}
            if len(kinds) > 1 and str in kinds:
                frame[col] = frame[col].map(lambda v: None if v is None or v != v else str(v))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out, engine=engine, index=False)
        return
    if fmt != "csv":
        raise CxrbenchError(f"export: unknown format {fmt!r} (csv or parquet)")
    frame = rows_frame(rows)
    if out in (None, "-"):
        frame.to_csv(sys.stdout, index=False)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)


def columns_markdown() -> str:
    """The text of ``docs/export-columns.md``, generated from :data:`COLUMNS`."""
    lines = [
        "# Export columns",
        "",
        "<!-- generated from cxrbench.export.COLUMNS by `python -m cxrbench.export --docs docs/export-columns.md`;"
        " do not edit by hand (tests/core/test_export_rescore.py checks it is up to date) -->",
        "",
        "`cxrbench export RUN... --format csv|parquet --out FILE` and `cxrbench show RUN --format csv|json` write one "
        "row per cell **and test set** (a failed cell: one row, status `failed`, metrics empty, `error` set). "
        "Columns appear in this order; a task's columns appear only when the export holds a finished cell of that "
        "task. `<label>` stands for each label of the dataset (`auroc[pneumonia]`). Empty means: not defined for this row (another task, no such comparison, "
        "or undefined, e.g. one class in the test set).",
        "",
        "| column | task | meaning |",
        "|---|---|---|",
    ]
    for name, task, meaning in COLUMNS:
        lines.append(f"| `{name}` | {task} | {meaning.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cxrbench.export", description="write docs/export-columns.md")
    parser.add_argument("--docs", required=True, metavar="FILE")
    args = parser.parse_args(argv)
    Path(args.docs).write_text(columns_markdown())
    print(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
