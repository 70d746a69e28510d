"""CheXpert v1.0 (and -small): 14 labels, frontal views, the uncertainty rule of Khosravi et al."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from cxrbench.contracts import ImageRecord
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.kit import CarvedValidationOptions, FolderDataset, carve_validation, read_table

#: the 14 CheXpert observations, in the order of the CSV columns
CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

PATIENT_IN_PATH = re.compile(r"(patient\d+)")


def chexpert_labels(values: Sequence) -> tuple[tuple[float, ...], bool]:
    """CheXpert label values -> (label vector, has an uncertain label).

    1 positive, 0 negative, blank (not mentioned) -> 0, -1 uncertain -> NaN (the caller excludes
    such images from train / val; at test time NaN masks that label out of its metric).
    """
    out = []
    uncertain = False
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        if math.isnan(f):
            out.append(0.0)
        elif f == -1.0:
            uncertain = True
            out.append(math.nan)
        elif f in (0.0, 1.0):
            out.append(f)
        else:
            raise ValueError(f"label value {v!r} is not 1, 0, -1 or blank")
    return tuple(out), uncertain


def select_labels(requested: Sequence[str] | None, available: Sequence[str], dataset: str) -> tuple[str, ...]:
    if not requested:
        return tuple(available)
    unknown = [n for n in requested if n not in available]
    if unknown:
        raise ConfigError(
            f"{dataset} labels: unknown {', '.join(repr(u) for u in unknown)}; known: {', '.join(available)}"
        )
    return tuple(requested)


def _norm_sex(value) -> str | None:
    v = str(value or "").strip().lower()
    return {"male": "M", "m": "M", "female": "F", "f": "F"}.get(v)


def _age(value) -> int | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else int(f)


@dataclass
class CheXpertOptions(CarvedValidationOptions):
    """:param val_fraction: share of the train images carved into val, by patient.
    :param val_seed: seed of that carve (recorded in ``info["splits"]``).
    :param labels: a subset of the 14 labels (default: all); the uncertainty rule then looks
        only at these.
    :param frontal_only: keep frontal views only (the usual choice; lateral views differ).
    """

    dataset = "chexpert"
    labels: list[str] = field(default_factory=list)
    frontal_only: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        select_labels(self.labels, CHEXPERT_LABELS, "chexpert")


class CheXpertLabelledDataset(FolderDataset):
    """A dataset labelled with the 14 CheXpert observations (or the subset ``options.labels``)
    and with ``sex``, ``age`` and ``view`` metadata: CheXpert itself and MIMIC-CXR."""

    label_names = CHEXPERT_LABELS
    metadata_fields = ("sex", "age", "view")

    def __init__(self, root, options=None):
        super().__init__(root, options)
        self.label_names = select_labels(self.options.labels, CHEXPERT_LABELS, self.name)


class CheXpertDataset(CheXpertLabelledDataset):
    """CheXpert v1.0 / CheXpert-v1.0-small (Stanford), 14 observations, frontal views.

    Expected layout (the data root is the dataset folder, or holds it)::

        CheXpert-v1.0-small/train.csv   Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...,Support Devices
        CheXpert-v1.0-small/valid.csv
        CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg ...

    ``Path`` values start with the dataset folder name (``CheXpert-v1.0-small/train/...``); they
    are resolved against the folder's parent, or against the folder itself when the first part
    differs.

    Labels: the 14 columns (or ``options.labels``): 1 positive, 0 negative, blank (not
    mentioned) 0, -1 uncertain. **Uncertainty rule (Khosravi et al.)**: a train / val image with
    any uncertain (selected) label is excluded; in the test set the image stays and the uncertain
    label becomes NaN (masked out of that label's metrics). Only frontal views are kept.
    Test set: the official ``valid.csv`` (radiologist consensus labels). Validation: carved from
    train by patient (``val_fraction``, ``val_seed``). Patient id: ``patientNNNNN`` from the path.
    Metadata: ``sex`` (M/F), ``age``, ``view`` (AP/PA).

    Citation: Irvin J. et al. (2019), "CheXpert: A Large Chest Radiograph Dataset with Uncertainty
    Labels and Expert Comparison", AAAI 33:590-597. Stanford ML Group research use agreement.
    """

    name = "chexpert"
    version = "1"
    default_subdir = "chexpert"
    Options = CheXpertOptions
    layout = ("<root>/CheXpert-v1.0[-small]/{train.csv,valid.csv,train/,valid/} with columns Path, "
              "Sex, Age, Frontal/Lateral, AP/PA and the 14 labels (root may be that folder itself)")
    folder_candidates = ("", "CheXpert-v1.0-small", "CheXpert-v1.0", "chexpert/CheXpert-v1.0-small",
                         "chexpert/CheXpert-v1.0", "chexpert")

    def is_dataset_folder(self, path: Path) -> bool:
        return (path / "train.csv").is_file() or (path / "valid.csv").is_file()

    @staticmethod
    def _resolver(folder: Path, first_path: str):
        """How CSV paths map to files: relative to the folder's parent or to the folder itself."""
        parts = PurePosixPath(first_path).parts
        if (folder / first_path).is_file():
            return lambda p: str(folder / p), lambda p: p
        if parts and (parts[0] == folder.name or (folder.parent / first_path).is_file()):
            return (lambda p: str(folder.parent / p)), (lambda p: "/".join(PurePosixPath(p).parts[1:]))
        if parts and parts[0].lower().startswith("chexpert"):
            return (lambda p: str(folder.joinpath(*PurePosixPath(p).parts[1:]))), (
                lambda p: "/".join(PurePosixPath(p).parts[1:]))
        return lambda p: str(folder / p), lambda p: p

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()
        names = self.label_names
        required = ["Path", "Frontal/Lateral", *names]
        out: list[ImageRecord] = []
        notes: dict = {"uncertainty": "train/val images with an uncertain label excluded; test: NaN"}
        for csv, split in (("train.csv", "train"), ("valid.csv", "test")):
            path = folder / csv
            df = read_table(path, required, dataset=self, low_memory=False)
            if df.empty:
                raise DatasetError(f"dataset 'chexpert': {str(path)!r} has no rows; expected layout: "
                                   f"{self.describe_layout()}")
            to_file, to_key = self._resolver(folder, str(df["Path"].iloc[0]))
            n_lateral = n_uncertain = 0
            label_cols = [df[n].tolist() for n in names]
            sex = df["Sex"].tolist() if "Sex" in df else [None] * len(df)
            age = df["Age"].tolist() if "Age" in df else [None] * len(df)
            view = df["AP/PA"].tolist() if "AP/PA" in df else [None] * len(df)
            for i, (p, fl) in enumerate(zip(df["Path"].astype(str), df["Frontal/Lateral"].astype(str))):
                if self.options.frontal_only and fl.strip().lower() != "frontal":
                    n_lateral += 1
                    continue
                try:
                    labels, uncertain = chexpert_labels([c[i] for c in label_cols])
                except ValueError as exc:
                    raise DatasetError(f"dataset 'chexpert': {str(path)!r} row {i + 2}: {exc}") from exc
                if uncertain and split != "test":
                    n_uncertain += 1
                    continue
                m = PATIENT_IN_PATH.search(p)
                if not m:
                    raise DatasetError(
                        f"dataset 'chexpert': {str(path)!r} row {i + 2}: no patientNNNNN in Path {p!r}"
                    )
                v = view[i]
                out.append(
                    ImageRecord(
                        key=to_key(p),
                        split=split,
                        labels=labels,
                        patient_id=m.group(1),
                        source=to_file(p),
                        metadata={"sex": _norm_sex(sex[i]), "age": _age(age[i]),
                                  "view": str(v).strip().upper() if isinstance(v, str) and v.strip() else None},
                    )
                )
            notes[f"{csv}_dropped"] = {"lateral": n_lateral, "uncertain": n_uncertain}
        o = self.options
        out = carve_validation(out, fraction=o.val_fraction, seed=o.val_seed)
        notes["val"] = f"carved from train by patient (fraction {o.val_fraction}, seed {o.val_seed})"
        notes["val_seed"] = o.val_seed
        notes["test"] = "official valid.csv"
        self.split_notes = notes
        return out
