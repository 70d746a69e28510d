"""NIH ChestX-ray14: Data_Entry_2017.csv as NIH ships it, the official train/test lists."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cxrbench.contracts import ImageRecord
from cxrbench.errors import DatasetError
from cxrbench.kit import CarvedValidationOptions, FolderDataset, carve_validation, read_table

#: the 14 findings; "No Finding" is not a label of its own: it is the all-zero vector
NIH_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
ENTRY_CSVS = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")


def parse_findings(text: str) -> tuple[float, ...]:
    """``"Effusion|Mass"`` -> 14-vector; ``"No Finding"`` -> zeros. Unknown names raise ValueError."""
    found = {t.strip() for t in str(text).split("|") if t.strip()}
    if NO_FINDING in found:
        if len(found) > 1:
            raise ValueError(f"'No Finding' together with findings in {text!r}")
        found = set()
    unknown = sorted(found - set(NIH_LABELS))
    if unknown:
        raise ValueError(f"unknown finding(s) {', '.join(repr(u) for u in unknown)} in {text!r}")
    return tuple(1.0 if name in found else 0.0 for name in NIH_LABELS)


def _age(value) -> int | None:
    m = re.match(r"\s*(\d+)", str(value))
    return int(m.group(1)) if m else None


@dataclass
class NIHOptions(CarvedValidationOptions):
    """:param val_fraction: share of the official train_val images carved into val, by patient.
    :param val_seed: seed of that carve (recorded in ``info["splits"]``).
    """

    dataset = "nih-cxr14"


class NIHChestXray14Dataset(FolderDataset):
    """NIH ChestX-ray14 (112,120 frontal images of 30,805 patients), 14 text-mined findings.

    Expected layout (the data root is the dataset folder, or holds it under ``nih-cxr14/``)::

        Data_Entry_2017.csv   (or Data_Entry_2017_v2020.csv)
        train_val_list.txt    test_list.txt          one image file name per line
        images/*.png          or images_001/images/*.png ... images_012/images/*.png

    ``Data_Entry_2017.csv`` is read exactly as NIH ships it: header ``Image Index,Finding
    Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,
    Height],OriginalImagePixelSpacing[x,y],`` (bracketed names split by the comma, and a
    trailing comma that yields an unnamed empty column; only the first seven columns are used).

    **Labels**: the 14 findings (``Atelectasis`` ... ``Hernia``), from the pipe-separated
    ``Finding Labels``; ``No Finding`` is the all-zero vector rather than a 15th label (it is the
    complement of the others, so a 15th output would be redundant). Metadata: ``age``, ``sex``
    (M/F), ``view`` (PA/AP), ``follow_up``. Splits: the official patient-wise ``test_list.txt``
    is the test set; validation is carved from ``train_val_list.txt`` by patient
    (``val_fraction``, ``val_seed``). Images in neither list are left out (counted).

    Citation: Wang X. et al. (2017), "ChestX-ray8: Hospital-scale Chest X-ray Database and
    Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax Diseases",
    CVPR 2017. Data: NIH Clinical Center (unrestricted use, acknowledge the NIH CC).
    """

    name = "nih-cxr14"
    version = "1"
    label_names = NIH_LABELS
    metadata_fields = ("sex", "age", "view")
    default_subdir = "nih-cxr14"
    Options = NIHOptions
    layout = ("<root>/Data_Entry_2017.csv, train_val_list.txt, test_list.txt and images/*.png or "
              "images_*/images/*.png (root may hold nih-cxr14/)")
    folder_candidates = ("", "nih-cxr14", "ChestX-ray14", "NIH", "nih")

    def is_dataset_folder(self, path: Path) -> bool:
        return any((path / c).is_file() for c in ENTRY_CSVS)

    def _list(self, folder: Path, name: str) -> set[str]:
        path = folder / name
        if not path.is_file():
            raise DatasetError(
                f"dataset 'nih-cxr14': missing file {str(path)!r}; expected layout: {self.describe_layout()}"
            )
        with open(path, encoding="utf-8") as fh:
            return {line.strip() for line in fh if line.strip()}

    @staticmethod
    def _image_index(folder: Path) -> dict[str, str]:
        """file name -> path over images/ and images_*/images/ (and images_*/ itself)."""
        dirs = [folder / "images"]
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_dir() and entry.name.startswith("images_"):
                dirs += [Path(entry.path) / "images", Path(entry.path)]
        index: dict[str, str] = {}
        for d in dirs:
            if d.is_dir():
                for e in os.scandir(d):
                    if e.name.lower().endswith(".png") and e.name not in index:
                        index[e.name] = e.path
        return index

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()
        csv = next(folder / c for c in ENTRY_CSVS if (folder / c).is_file())
        required = ["Image Index", "Finding Labels", "Patient ID"]
        df = read_table(csv, required, dataset=self, dtype={"Image Index": str, "Finding Labels": str})
        train_val = self._list(folder, "train_val_list.txt")
        test = self._list(folder, "test_list.txt")
        images = self._image_index(folder)
        n = len(df)
        col = lambda name: df[name].tolist() if name in df else [None] * n  # noqa: E731
        ages, sexes, views, follow = col("Patient Age"), col("Patient Gender"), col("View Position"), col("Follow-up #")
        out: list[ImageRecord] = []
        unlisted = 0
        for i, (name, findings, pid) in enumerate(zip(df["Image Index"], df["Finding Labels"], df["Patient ID"])):
            name = str(name).strip()
            if name in test:
                split = "test"
            elif name in train_val:
                split = "train"
            else:
                unlisted += 1
                continue
            try:
                labels = parse_findings(findings)
            except ValueError as exc:
                raise DatasetError(f"dataset 'nih-cxr14': {str(csv)!r} row {i + 2} ({name}): {exc}") from exc
            sex = str(sexes[i]).strip().upper() if sexes[i] is not None else ""
            view = str(views[i]).strip().upper() if isinstance(views[i], str) else None
            out.append(
                ImageRecord(
                    key=name,
                    split=split,
                    labels=labels,
                    patient_id=str(int(pid)) if str(pid).strip().isdigit() else str(pid).strip(),
                    source=images.get(name, str(folder / "images" / name)),
                    metadata={"age": _age(ages[i]), "sex": sex if sex in ("M", "F") else None,
                              "view": view or None,
                              "follow_up": None if follow[i] is None else _age(follow[i])},
                )
            )
        o = self.options
        out = carve_validation(out, fraction=o.val_fraction, seed=o.val_seed)
        self.split_notes = {
            "test": "official test_list.txt",
            "val": f"carved from train_val_list.txt by patient (fraction {o.val_fraction}, seed {o.val_seed})",
            "val_seed": o.val_seed,
            "unlisted_images_left_out": unlisted,
            "labels": "14 findings; No Finding = all zero",
        }
        return out
