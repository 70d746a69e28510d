"""The data of one cell: which real and synthetic images it trains, tunes and is tested on,
and the leakage guard between them. Plain functions; the runner calls them in order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from cxrbench.config import BenchmarkSpec
from cxrbench.contracts import SyntheticBatch
from cxrbench.errors import CxrbenchError, DatasetError, LeakageError


def external_name(spec: BenchmarkSpec, i: int) -> str:
    """A unique name for external dataset i (the same plugin may appear twice, e.g. two sites)."""
    name = spec.external[i].name
    names = [spec.dataset.name] + [r.name for r in spec.external]
    return name if names.count(name) == 1 else f"{name}-ext{i + 1}"


def recipe_fields(cls, values: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise CxrbenchError(f"protocol recipe has fields the trainer does not know: {sorted(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def write_predictions(path: Path, split, scores, label_names) -> None:
    import pandas as pd

    df = pd.DataFrame({"key": split.keys, "patient_id": split.patient_ids})
    for j, name in enumerate(label_names):
        df[f"true_{name}"] = split.labels[:, j].numpy()
        df[f"score_{name}"] = scores[:, j]
    # the test images' metadata (sex, age, view, site...): subgroups can be rescored from this file
    for field, values in sorted(split.metadata.items()):
        if len(values) == len(df) and field not in ("source",):
            df[f"meta_{field}"] = [None if v is None else v for v in values]
    write_csv(df, path)


def write_scores(path: Path, keys, patient_ids, labels, scores, label_names) -> None:
    """A predictions file (the layout of :func:`write_predictions`, without metadata) for images
    that are not a test split: the tuning set's scores, from which thresholds are chosen."""
    import pandas as pd

    df = pd.DataFrame({"key": list(keys), "patient_id": list(patient_ids)})
    for j, name in enumerate(label_names):
        df[f"true_{name}"] = labels[:, j]
        df[f"score_{name}"] = scores[:, j]
    write_csv(df, path)


def write_csv(df, path: Path) -> None:
    """``df`` to ``path`` as CSV, atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def predictions_path(run: Path, rec: dict, tname: str) -> Path | None:
    """A finished cell's predictions file for test set ``tname`` in results folder ``run``, or None.

    Only the file beside the record counts, ``RUN/cells/<cell id>/predictions-<test>.csv``, where
    the run wrote it. The path stored in the record is relative to the folder the run was started
    from (or absolute): it points elsewhere once the results folder is moved or renamed, and into
    another folder's file (which a later run may have replaced) when records are copied without
    their cell folders, as a published leaderboard's are."""
    cell_dir = run / "cells" / rec["cell_id"]
    stored = ((rec.get("artifacts") or {}).get("predictions") or {}).get(tname)
    names = dict.fromkeys([f"predictions-{tname.replace(':', '-')}.csv", *([Path(stored).name] if stored else [])])
    return next((cell_dir / n for n in names if (cell_dir / n).is_file()), None)


def missing_predictions(run: Path, rec: dict) -> list[str]:
    """The test sets whose predictions ``rec`` names but ``run`` does not hold (see
    :func:`predictions_path`)."""
    named = (rec.get("artifacts") or {}).get("predictions") or {}
    return [t for t in named if predictions_path(run, rec, t) is None]


def read_scores(path: Path, keys, label_names):
    import pandas as pd

    df = pd.read_csv(path).set_index("key")
    missing = [k for k in keys[:5] if k not in df.index]
    if missing:
        raise CxrbenchError(f"baseline predictions {path} do not cover the same test images (e.g. {missing[0]})")
    return df.loc[list(keys), [f"score_{n}" for n in label_names]].to_numpy()


def namespaced(dataset, patient_ids) -> list[str]:
    """Patient ids qualified by the dataset's identity (plugin name + content fingerprint), so the
    same data under two names (an external copy of the source, say) is recognised as the same."""
    return [f"{dataset.name}#{dataset.fingerprint[:12]}:{p}" for p in patient_ids]


def all_images(dataset):
    """Every image of a dataset as one test split (train + val + test)."""
    import dataclasses as dc

    import torch

    parts = [dataset.train, dataset.val, *dataset.tests.values()]
    parts = [p for p in parts if len(p)]
    meta_keys = set.intersection(*(set(p.metadata) for p in parts)) if parts else set()
    return dc.replace(
        parts[0], name="all", images=torch.cat([p.images for p in parts]), labels=torch.cat([p.labels for p in parts]),
        patient_ids=[x for p in parts for x in p.patient_ids], keys=[x for p in parts for x in p.keys],
        metadata={k: [x for p in parts for x in p.metadata[k]] for k in meta_keys}, masks=None,
    )


def condition_labels(batch: SyntheticBatch, n_labels: int):
    import torch

    return torch.tensor([c.labels for c in batch.conditions], dtype=torch.float32).reshape(-1, n_labels)


#: the patient groups a cell learns from (every other group is a test set)
LEARNED_GROUPS = ("classifier-train", "generator-train", "postprocessor-train", "tuning")


def check_leakage(groups: dict[str, list[str]]) -> None:
    """The leakage guard. Training and tuning groups may share patients among themselves (a
    generator, a learned post-processor and a classifier all learn from the real training
    split); a test set may share none with any group."""
    from cxrbench.datasets import check_patient_disjoint

    learned = {k: v for k, v in groups.items() if k in LEARNED_GROUPS}
    seen = sorted({p for ids in learned.values() for p in ids})
    for tname, ids in groups.items():
        if tname in learned:
            continue
        try:
            check_patient_disjoint({"training or tuning data": seen, tname: ids})
        except LeakageError as exc:
            who = [k for k, v in learned.items() if set(v) & set(ids)]
            raise LeakageError(f"test set {tname} shares patients with {', '.join(who)}: {exc}") from None


def check_loaded(name: str, loaded) -> None:
    """Say what loading dropped, and refuse a training split without both classes of its label."""
    logger = logging.getLogger(__name__)
    skipped = (loaded.info.get("skipped") or {}).get("count", 0)
    if skipped:
        logger.warning(f"dataset {name}: skipped {skipped} unreadable image(s) (paths and errors in every record: "
                       f"dataset.info.skipped)")
    labels = loaded.train.labels
    for j, label in enumerate(loaded.label_names):
        known = labels[:, j][~labels[:, j].isnan()]
        values = set(known.unique().tolist()) if len(known) else set()
        if values != {0.0, 1.0}:
            missing = "no image" if not values else f"only {'positive' if values == {1.0} else 'negative'} images"
            msg = (f"dataset {name}: the training split has {missing} for label {label!r}; "
                   "a classifier cannot learn it (check the class folders / label columns)")
            if len(loaded.label_names) == 1:
                raise DatasetError(msg)
            loaded.info.setdefault("warnings", []).append(msg)
            logger.warning(msg)
