"""`png-folder`: PNG files sorted into class folders, and its registration.

The dataset only *describes* its images (``records()``) and decodes one (``read_image``, given
by :class:`cxrbench.kit.FolderDataset`); the harness preprocesses, caches, fingerprints and
checks the splits for patient leakage. Importing this module does not import torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cxrbench.contracts import ImageRecord
from cxrbench.errors import DatasetError
from cxrbench.hookspecs import hookimpl
from cxrbench.kit import CarvedValidationOptions, FolderDataset, carve_validation, read_image_file, read_table


@hookimpl
def cxrbench_register_datasets(registry):
    registry.add("png-folder", "cxrbench_example_dataset.plugin:PngFolderDataset",
                 summary="example plugin: <root>/png-folder/{train,test}/{negative,positive}/<patient>_<n>.png")


CLASSES = {"negative": 0.0, "positive": 1.0}
#: <patient>_<n>.png: the patient id is everything before the last underscore
FILE_NAME = re.compile(r"^(?P<patient>.+)_(?P<n>\d+)$")


@dataclass
class PngFolderOptions(CarvedValidationOptions):
    """``val_fraction`` / ``val_seed``: the validation split carved from train by patient."""

    dataset = "png-folder"  # names the dataset in the ConfigError of a bad val_fraction


class PngFolderDataset(FolderDataset):
    """Grayscale PNGs in ``{train,test}/{negative,positive}/``; optional masks and patient table."""

    name: ClassVar[str] = "png-folder"
    version: ClassVar[str] = "1"  # bump when records() or the decoding changes
    label_names: ClassVar[tuple[str, ...]] = ("positive",)
    metadata_fields: ClassVar[tuple[str, ...]] = ("sex", "age")
    default_subdir: ClassVar[str] = "png-folder"
    Options: ClassVar[type] = PngFolderOptions
    # every DatasetError shows this line, so a user sees what the plugin expected
    layout: ClassVar[str] = ("<root>/png-folder/{train,test}/{negative,positive}/<patient>_<n>.png (optional: "
                             "masks/ with the same relative paths, patients.csv with patient,sex,age; the root may "
                             "also be the png-folder folder itself)")
    # where the folder may be, relative to the data root, tried in order ("" = the root itself)
    folder_candidates: ClassVar[tuple[str, ...]] = ("png-folder", "")

    def is_dataset_folder(self, path: Path) -> bool:
        return (path / "train").is_dir() and (path / "test").is_dir()

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()  # a one-line DatasetError with the layout when missing
        patients = self.patient_metadata(folder)
        out: list[ImageRecord] = []
        for split in ("train", "test"):
            for cls, label in CLASSES.items():
                class_dir = folder / split / cls
                if not class_dir.is_dir():
                    raise DatasetError(f"dataset 'png-folder': missing folder {str(class_dir)!r}; "
                                       f"expected layout: {self.layout}")
                for path in sorted(class_dir.glob("*.png")):  # sorted: records must be stable
                    match = FILE_NAME.match(path.stem)
                    if match is None:
                        raise DatasetError(f"dataset 'png-folder': file name {str(path)!r} is not "
                                           f"<patient>_<n>.png; expected layout: {self.layout}")
                    key = f"{split}/{cls}/{path.name}"
                    patient = match["patient"]
                    out.append(ImageRecord(key=key, split=split, labels=(label,), patient_id=patient,
                                           source=str(path), metadata=patients.get(patient, {}),
                                           has_mask=(folder / "masks" / key).is_file()))
        opts = self.options
        out = carve_validation(out, fraction=opts.val_fraction, seed=opts.val_seed)
        self.split_notes = {"val": f"carved from train by patient (fraction {opts.val_fraction}, "
                                   f"seed {opts.val_seed})"}
        return out

    def patient_metadata(self, folder: Path) -> dict[str, dict]:
        """patient -> {"sex": ..., "age": ...} from the optional patients.csv (empty without it)."""
        table = folder / "patients.csv"
        if not table.is_file():
            return {}
        df = read_table(table, ["patient", "sex", "age"], dataset=self, dtype={"patient": str})
        meta: dict[str, dict] = {}
        for row in df.itertuples(index=False):
            values = {}
            if isinstance(row.sex, str) and row.sex:
                values["sex"] = row.sex
            if row.age == row.age:  # not NaN (an empty cell)
                values["age"] = int(row.age)
            meta[row.patient] = values
        return meta

    # read_image comes from FolderDataset: it decodes record.source with read_image_file
    def read_mask(self, record: ImageRecord):
        if not record.has_mask:
            return None
        folder = Path(record.source).parents[2]  # <folder>/<split>/<class>/<file>
        return read_image_file(folder / "masks" / record.key)
