"""MIMIC-CXR-JPG 2.x: CheXpert labels per study, the official split, frontal views."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.contracts import ImageRecord
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.kit import read_table

from .chexpert import CHEXPERT_LABELS, CheXpertLabelledDataset, chexpert_labels, select_labels

PREFIX = "mimic-cxr-2.0.0"
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
FRONTAL = ("PA", "AP")


def _version_folders() -> tuple[str, ...]:
    """Where the version folder may be under the data root ("" is the root itself)."""
    candidates = [""]
    for base in ("mimic-cxr-jpg", "physionet.org/files/mimic-cxr-jpg", "mimic-cxr"):
        candidates += [f"{base}/2.1.0", f"{base}/2.0.0", base]
    return tuple(candidates)


def _find_csv(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


@dataclass
class MimicOptions:
    """:param labels: a subset of the 14 CheXpert labels (default: all); the uncertainty rule
        then looks only at these.
    :param views: view positions kept (frontal: PA and AP).
    """

    labels: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=lambda: list(FRONTAL))

    def __post_init__(self) -> None:
        select_labels(self.labels, CHEXPERT_LABELS, "mimic-cxr")
        if not self.views:
            raise ConfigError("mimic-cxr views must name at least one ViewPosition (e.g. PA, AP)")


class MimicCXRDataset(CheXpertLabelledDataset):
    """MIMIC-CXR-JPG 2.0.0 / 2.1.0 (PhysioNet), CheXpert-labeller labels, official split.

    Expected layout (the data root is the version folder, or holds
    ``mimic-cxr-jpg/<version>/`` or ``physionet.org/files/mimic-cxr-jpg/<version>/``)::

        mimic-cxr-2.0.0-metadata.csv.gz   dicom_id,subject_id,study_id,ViewPosition,...
        mimic-cxr-2.0.0-chexpert.csv.gz   subject_id,study_id,<14 CheXpert labels>
        mimic-cxr-2.0.0-split.csv.gz      dicom_id,study_id,subject_id,split (train/validate/test)
        files/p1X/pXXXXXXXX/sYYYYYYYY/<dicom_id>.jpg
        patients.csv(.gz)                 optional (MIMIC-IV hosp): subject_id,gender,anchor_age

    (uncompressed ``.csv`` files are accepted too). Frontal images only (ViewPosition PA or AP).
    Labels are per study and shared by its images; same values and **uncertainty rule** as
    CheXpert: blank -> 0; an image with any uncertain (-1) label is excluded from train and val
    and keeps NaN for that label in test. Images of studies without a labeller row are dropped
    (counted in ``info["splits"]``). Splits: the official ``split`` file (``validate`` -> val).
    Patient id: ``p<subject_id>``. Metadata: ``view`` and, with patients.csv, ``sex`` / ``age``
    (anchor_age; skipped when the file is absent).

    Citation: Johnson A. E. W. et al. (2019), "MIMIC-CXR-JPG, a large publicly available database
    of labeled chest radiographs", arXiv:1901.07042; PhysioNet, doi:10.13026/8360-t248.
    Credentialed access (PhysioNet data use agreement).
    """

    name = "mimic-cxr"
    version = "1"
    default_subdir = "mimic-cxr-jpg"
    Options = MimicOptions
    layout = (f"<root>/{{{PREFIX}-metadata,{PREFIX}-chexpert,{PREFIX}-split}}.csv[.gz] and "
              "files/p1X/pXXXXXXXX/sYYYYYYYY/<dicom_id>.jpg (root may hold mimic-cxr-jpg/<version>/)")
    folder_candidates = _version_folders()

    def is_dataset_folder(self, path: Path) -> bool:
        return _find_csv(path, f"{PREFIX}-metadata") is not None

    def _csv(self, folder: Path, stem: str) -> Path:
        found = _find_csv(folder, stem)
        if found is None:
            raise DatasetError(
                f"dataset 'mimic-cxr': missing file {str(folder / (stem + '.csv.gz'))!r}; "
                f"expected layout: {self.describe_layout()}"
            )
        return found

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()
        names = self.label_names
        meta = read_table(self._csv(folder, f"{PREFIX}-metadata"),
                          ["dicom_id", "subject_id", "study_id", "ViewPosition"], dataset=self)
        labels = read_table(self._csv(folder, f"{PREFIX}-chexpert"), ["subject_id", "study_id", *names],
                            dataset=self)
        split = read_table(self._csv(folder, f"{PREFIX}-split"), ["dicom_id", "split"], dataset=self)

        split_of = dict(zip(split["dicom_id"].astype(str), split["split"].astype(str)))
        study_labels = {
            (int(s), int(t)): vals
            for s, t, *vals in zip(labels["subject_id"], labels["study_id"], *[labels[n] for n in names])
        }
        demo: dict[int, tuple] = {}
        patients = _find_csv(folder, "patients") or _find_csv(folder.parent, "patients")
        if patients is not None:
            pdf = read_table(patients, ["subject_id", "gender", "anchor_age"], dataset=self)
            demo = {int(s): (g, a) for s, g, a in zip(pdf["subject_id"], pdf["gender"], pdf["anchor_age"])}

        views = {v.upper() for v in self.options.views}
        out: list[ImageRecord] = []
        dropped = {"view": 0, "no_split": 0, "no_labels": 0, "uncertain": 0}
        for dicom, subj, study, view in zip(meta["dicom_id"].astype(str), meta["subject_id"],
                                            meta["study_id"], meta["ViewPosition"]):
            view = str(view).strip().upper() if isinstance(view, str) else ""
            if view not in views:
                dropped["view"] += 1
                continue
            official = split_of.get(dicom)
            if official not in SPLIT_NAMES:
                dropped["no_split"] += 1
                continue
            s = SPLIT_NAMES[official]
            subj, study = int(subj), int(study)
            vals = study_labels.get((subj, study))
            if vals is None:
                dropped["no_labels"] += 1
                continue
            try:
                lab, uncertain = chexpert_labels(vals)
            except ValueError as exc:
                raise DatasetError(f"dataset 'mimic-cxr': study s{study}: {exc}") from exc
            if uncertain and s != "test":
                dropped["uncertain"] += 1
                continue
            rel = f"files/p{str(subj)[:2]}/p{subj}/s{study}/{dicom}.jpg"
            md = {"view": view}
            if demo:
                g, a = demo.get(subj, (None, None))
                md["sex"] = {"M": "M", "F": "F"}.get(str(g).strip().upper())
                md["age"] = None if a is None or (isinstance(a, float) and math.isnan(a)) else int(a)
            out.append(
                ImageRecord(key=rel, split=s, labels=lab, patient_id=f"p{subj}",
                            source=str(folder / rel), metadata=md)
            )
        self.split_notes = {
            "official_split": f"{PREFIX}-split (validate -> val)",
            "dropped": dropped,
            "uncertainty": "train/val images with an uncertain label excluded; test: NaN",
            "demographics": "patients.csv" if demo else "absent (no sex/age)",
        }
        return out
