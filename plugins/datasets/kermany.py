"""Kermany pediatric chest X-rays (NORMAL vs PNEUMONIA), in the folder layout users download."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cxrbench.contracts import ImageRecord
from cxrbench.errors import DatasetError
from cxrbench.kit import CarvedValidationOptions, FolderDataset, carve_validation

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
CLASSES = {"NORMAL": 0.0, "PNEUMONIA": 1.0}

# personNNN_bacteria_MMM.jpeg / personNNN_virus_MMM.jpeg (one file has an extra _K suffix)
PNEUMONIA_NAME = re.compile(r"^(person\d+)_(bacteria|virus)_\d+", re.IGNORECASE)
# IM-NNNN-0001.jpeg, IM-NNNN-0001-0002.jpeg, NORMAL2-IM-NNNN-0001.jpeg: the NORMAL2- prefix is a
# second numbering series (NORMAL2-IM-0001 is not IM-0001), so it stays part of the id
NORMAL_NAME = re.compile(r"^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE)


@dataclass
class KermanyOptions(CarvedValidationOptions):
    """:param val_fraction: share of the train images carved into val (by patient) when the
        official ``val`` folder is missing or smaller than ``min_official_val``.
    :param val_seed: seed of that carve (recorded in ``info["splits"]``).
    :param min_official_val: an official ``val`` folder with fewer images is not used as the
        validation set: its images join the train pool before the carve (the original 16-image
        folder is too small to select models on, and its patients are numbered like train's).
    """

    dataset = "kermany"
    min_official_val: int = 100


class KermanyDataset(FolderDataset):
    """Kermany et al. pediatric chest X-rays, labelled NORMAL or PNEUMONIA (bacterial / viral).

    Expected layout under the data root (the root may also be the ``chest_xray`` folder itself,
    or hold it under ``kermany/``)::

        chest_xray/train/{NORMAL,PNEUMONIA}/*.jpeg
        chest_xray/test/{NORMAL,PNEUMONIA}/*.jpeg
        chest_xray/val/{NORMAL,PNEUMONIA}/*.jpeg      (optional)

    Label ``pneumonia`` (1 for PNEUMONIA). Metadata: ``finding`` (``bacteria``, ``virus`` or
    ``normal``, from the file name) and ``official_split``.

    **Patient ids** come from the file names: ``personNNN_(bacteria|virus)_MMM.jpeg`` is patient
    ``personNNN``; ``IM-NNNN-0001.jpeg`` is ``IM-NNNN`` and ``NORMAL2-IM-NNNN-0001.jpeg`` is
    ``NORMAL2-IM-NNNN`` (a separate numbering series). Kermany numbers patients separately in its
    official train and test folders: ``train/.../person60_*`` and ``test/.../person60_*`` are
    different children (their image serial numbers and acquisition differ), so ids are
    namespaced by the official split (``train:person60``, ``test:person60``). Without the
    namespace the leakage check would flag dozens of false train/test "overlaps"; with it, a
    real duplicate across train and test would go unnoticed - the README of the copy used here
    reports none. The official ``val`` folder is assumed to be numbered like train and is
    namespaced ``train:`` (the safe assumption: an overlap with train is then caught).

    Validation: when ``val`` is missing or has fewer than ``min_official_val`` images, its images
    (if any) join train and ``val_fraction`` of the train images are carved out by patient
    (:func:`cxrbench.kit.carve_validation`, seed ``val_seed``).

    Citation: Kermany D., Zhang K., Goldbaum M. (2018), "Labeled Optical Coherence Tomography (OCT)
    and Chest X-Ray Images for Classification", Mendeley Data v2, doi:10.17632/rscbjbr9sj.2;
    Kermany et al., Cell 172(5):1122-1131, 2018. License CC BY 4.0.
    """

    name = "kermany"
    version = "1"
    label_names = ("pneumonia",)
    metadata_fields = ("finding",)
    default_subdir = "kermany"
    Options = KermanyOptions
    layout = ("<root>/chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg (val/ optional; the root may "
              "also be the chest_xray folder itself or hold kermany/chest_xray)")
    folder_candidates = ("chest_xray", "", "kermany/chest_xray", "kermany")

    # ------------------------------------------------------------------ records

    def is_dataset_folder(self, path: Path) -> bool:
        return (path / "train").is_dir() and (path / "test").is_dir()

    @staticmethod
    def parse_name(filename: str) -> tuple[str | None, str | None]:
        """(patient id without namespace, finding) parsed from a file name; (None, None) if unknown."""
        stem = filename.rsplit(".", 1)[0]
        m = PNEUMONIA_NAME.match(stem)
        if m:
            return m.group(1).lower(), m.group(2).lower()
        m = NORMAL_NAME.match(stem)
        if m:
            return m.group(1).upper(), "normal"
        return None, None

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()
        out: list[ImageRecord] = []
        unparsed: list[str] = []
        n_official_val = 0
        for split in ("train", "val", "test"):
            split_dir = folder / split
            if not split_dir.is_dir():
                continue  # train and test exist (checked by dataset_folder); val is optional
            for cls, label in CLASSES.items():
                cls_dir = split_dir / cls
                if not cls_dir.is_dir():
                    if split == "val":
                        continue
                    raise DatasetError(
                        f"dataset 'kermany': missing folder {str(cls_dir)!r}; expected layout: "
                        f"{self.describe_layout()}"
                    )
                cls_str = str(cls_dir)
                for name in sorted(e.name for e in os.scandir(cls_str) if e.is_file()):
                    if not name.lower().endswith(IMAGE_SUFFIXES) or name.startswith("."):
                        continue
                    pid, finding = self.parse_name(name)
                    if pid is None:
                        unparsed.append(f"{split}/{cls}/{name}")
                        pid = f"file-{name.rsplit('.', 1)[0]}"
                        finding = "pneumonia" if label else "normal"
                    # see the class docstring: numbering restarts in the official test folder
                    namespace = "test" if split == "test" else "train"
                    out.append(
                        ImageRecord(
                            key=f"{split}/{cls}/{name}",
                            split=split,
                            labels=(label,),
                            patient_id=f"{namespace}:{pid}",
                            source=os.path.join(cls_str, name),
                            metadata={"finding": finding, "official_split": split},
                        )
                    )
                    n_official_val += split == "val"
        notes: dict = {"patient_ids": "parsed from file names, namespaced by official split (train:/test:)"}
        if unparsed:
            notes["unparsed_names"] = {"count": len(unparsed), "first": unparsed[:5],
                                       "patient_id": "one patient per file (file-<stem>)"}
        opts = self.options
        if n_official_val < opts.min_official_val:
            out = [r if r.split != "val" else _with_split(r, "train") for r in out]
            out = carve_validation(out, fraction=opts.val_fraction, seed=opts.val_seed, min_val=1)
            notes["val"] = (
                f"carved from train by patient, stratified by label (fraction {opts.val_fraction}, "
                f"seed {opts.val_seed}); official val folder: {n_official_val} images "
                f"(< {opts.min_official_val}, merged into train before the carve)"
            )
            notes["val_seed"] = opts.val_seed
            notes["val_fraction"] = opts.val_fraction
        else:
            notes["val"] = f"official val folder ({n_official_val} images)"
        self.split_notes = notes
        return out


def _with_split(record: ImageRecord, split: str) -> ImageRecord:
    from dataclasses import replace

    return replace(record, split=split)
