"""Paired comparisons stay tied to the reference run they were made against.

A cell's paired comparisons (``comparisons``: vs real-only at the same seed; ``vs_noise_control``:
vs real + r x noise) name the reference cell by id and keep the reference's own score they were
computed against (``auroc_baseline`` per label; ``baseline_mean_dice`` for segmentation). A
reference is re-run when its predictions are gone (records copied from a published leaderboard
keep none) or its plugins changed; on another CPU the re-run can score differently. The stored
differences then describe a reference that no longer stands in the table: the cell is *outdated*
(the runner re-runs it when a run includes it; the leaderboard says so in the row's status).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from cxrbench.celldata import missing_predictions

#: the record sections that hold paired comparisons, each entry naming its reference as "baseline"
SECTIONS = ("comparisons", "vs_noise_control")
#: two scores of the same predictions agree to rounding (DeLong's AUC and the rank AUROC differ
#: in the last bits); a re-trained reference differs by far more
TOLERANCE = 1e-6


def why_outdated(run: Path, cell, record: Mapping, load: Callable[[str], Mapping | None]) -> str | None:
    """Why the finished ``record`` of ``cell`` in results folder ``run`` must be re-run, or None:
    a cell others are paired with whose predictions files are gone (a paired DeLong needs each
    image's score, which a record alone does not hold), or a cell compared with an earlier run of
    its reference (:func:`outdated_comparisons`)."""
    if cell.is_paired_reference():
        missing = missing_predictions(run, record)
        if missing:
            return (f"its predictions for {', '.join(missing)} are missing (records alone, e.g. copied from a "
                    "published leaderboard?) and the cells compared with it need them")
    outdated = outdated_comparisons(record, load)
    return outdated[0] if outdated else None


def unpaired_reference(run: Path, cell, finished: Callable) -> str | None:
    """Why ``cell`` cannot be compared with its references yet (checked before it trains), or None:
    one of them finished but has no predictions files in ``run``. ``finished(cell)``: its ok record."""
    for other in cell.references():
        record = finished(other)
        missing = missing_predictions(run, record) if record else []
        if missing:
            return (f"{record['cell_id']} has no predictions for {', '.join(missing)} in {run}, and this cell is "
                    "compared with it: re-run it first (a run that includes it re-runs it)")
    return None


def reference_scores(reference: Mapping, test_set: str) -> dict[str, float]:
    """The scores a comparison keeps of its reference, as the reference's record has them now:
    AUROC per label (classification) or the mean Dice (segmentation)."""
    metrics = (reference.get("metrics") or {}).get(test_set) or {}
    labels = metrics.get("labels")
    if isinstance(labels, Mapping):
        return {name: v["auroc"] for name, v in labels.items() if isinstance(v, Mapping) and v.get("auroc") is not None}
    dice = (metrics.get("macro") or {}).get("dice")
    return {"dice": dice} if dice is not None else {}


def compared_scores(entry: Mapping) -> dict[str, float]:
    """The reference's scores a comparison entry was computed against."""
    labels = entry.get("labels")
    if isinstance(labels, Mapping):
        return {name: v["auroc_baseline"] for name, v in labels.items()
                if isinstance(v, Mapping) and v.get("auroc_baseline") is not None}
    dice = entry.get("baseline_mean_dice")
    return {"dice": dice} if dice is not None else {}


def outdated_comparisons(record: Mapping, load: Callable[[str], Mapping | None]) -> list[str]:
    """Why ``record``'s paired comparisons no longer match their references (empty: they do).

    ``load(cell_id)`` gives a reference's current record (None when absent). A reference that is
    absent or not ok is not judged here: the comparison stands as made."""
    reasons = []
    for section in SECTIONS:
        for test_set, entry in sorted((record.get(section) or {}).items()):
            ref_id = entry.get("baseline") if isinstance(entry, Mapping) else None
            reference = load(ref_id) if ref_id else None
            if not reference or reference.get("status") != "ok":
                continue
            now, then = reference_scores(reference, test_set), compared_scores(entry)
            changed = [k for k, v in then.items() if k in now and abs(now[k] - v) > TOLERANCE]
            if changed:
                k = changed[0]
                what = "Dice" if k == "dice" else f"AUROC {k}"
                reasons.append(f"compared with an earlier run of {_short(ref_id)} on {test_set} "
                               f"({what} {then[k]:.4f} then, {now[k]:.4f} now)")
    return reasons


def _short(cell_id: str) -> str:
    """``real-only seed0`` / ``noise r1 seed0`` from a cell id (protocol__generator__rN__...__seedS__ctx)."""
    parts = cell_id.split("__")
    seed = next((p for p in parts if p.startswith("seed")), "")
    if len(parts) < 3:
        return cell_id
    name = parts[0].split(".")[0] if parts[1] == "none" else f"{parts[1]} {parts[2]}"
    return f"{name} {seed}".strip()
