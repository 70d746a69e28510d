"""PneumoniaMNIST (MedMNIST v2/v3): pediatric pneumonia at 28/64/128/224 px, from a local npz."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrbench.contracts import Dataset, ImageRecord
from cxrbench.errors import ConfigError, DatasetError

NATIVE_SIZES = (28, 64, 128, 224)
FLAG = "pneumoniamnist"
SPLITS = ("train", "val", "test")


def npz_name(native_size: int) -> str:
    """medmnist's file name: ``pneumoniamnist.npz`` (28 px) or ``pneumoniamnist_<size>.npz``."""
    return f"{FLAG}.npz" if native_size == 28 else f"{FLAG}_{native_size}.npz"


def nearest_native_size(size: int | None) -> int:
    """The smallest native size >= ``size`` (downscaling beats upscaling), else the largest."""
    if not size:
        return 28
    for s in NATIVE_SIZES:
        if s >= size:
            return s
    return NATIVE_SIZES[-1]


def medmnist_default_root() -> Path:
    """medmnist's default download folder (``~/.medmnist``; ``medmnist.info.DEFAULT_ROOT``),
    computed here because importing medmnist also imports torch and torchvision (seconds)."""
    return Path.home() / ".medmnist"


@dataclass
class PneumoniaMNISTOptions:
    """:param native_size: which MedMNIST resolution to read (28, 64, 128 or 224); default: the
        smallest one at least as large as the requested size (224 above it).
    """

    native_size: int | None = None

    def __post_init__(self) -> None:
        if self.native_size is not None and self.native_size not in NATIVE_SIZES:
            raise ConfigError(
                f"pneumoniamnist native_size must be one of {', '.join(map(str, NATIVE_SIZES))}, "
                f"not {self.native_size!r}"
            )


class PneumoniaMNISTDataset(Dataset):
    """PneumoniaMNIST (MedMNIST): Kermany's pediatric chest X-rays, centre-cropped and resized.

    Read from the npz files that ``medmnist`` downloads; this plugin **never downloads**. Looked
    for in the data root, ``<root>/pneumoniamnist/``, ``<root>/medmnist/``, then medmnist's default
    folder ``~/.medmnist``: ``pneumoniamnist.npz`` (28 px), ``pneumoniamnist_64.npz``,
    ``pneumoniamnist_128.npz``, ``pneumoniamnist_224.npz``, each with keys ``train_images``,
    ``train_labels``, ``val_images``, ``val_labels``, ``test_images``, ``test_labels`` (images
    uint8 (N, H, W), labels (N, 1): 0 normal, 1 pneumonia). Get one with e.g.
    ``python -m medmnist download --flag pneumoniamnist --size 64`` (online machine) and copy it
    into one of those folders.

    Splits: the official ones (train 4,708 / val 524 / test 624). **Patient ids**: MedMNIST
    ships none, so each image is its own "patient" (``<split>:<index>``); the leakage check is
    therefore vacuous here, and MedMNIST's train/val split was made by image from Kermany's
    train folder, so train and val may share children. Prefer ``kermany`` when patient-level
    separation matters.

    Citation: Yang J. et al. (2023), "MedMNIST v2 - A large-scale lightweight benchmark for 2D and
    3D biomedical image classification", Scientific Data 10:41; source data Kermany et al., Cell
    2018. License CC BY 4.0.
    """

    name = "pneumoniamnist"
    version = "1"
    label_names = ("pneumonia",)
    metadata_fields = ()
    needs_root = False  # falls back to medmnist's default folder (~/.medmnist)
    default_subdir = "pneumoniamnist"
    Options = PneumoniaMNISTOptions

    def __init__(self, root, options=None):
        super().__init__(root, options)
        self._arrays: dict[str, np.ndarray] | None = None
        self._npz: Path | None = None

    def describe_layout(self) -> str:
        return (
            "pneumoniamnist[_64|_128|_224].npz (keys train_images, train_labels, val_images, ...) in "
            "the data root, <root>/pneumoniamnist/, <root>/medmnist/ or ~/.medmnist"
        )

    def native_size(self) -> int:
        if self.options.native_size is not None:
            return int(self.options.native_size)
        return nearest_native_size(getattr(self, "target_size", None))

    def _search_dirs(self) -> list[Path]:
        dirs = []
        if self.root is not None:
            dirs += [self.root, self.root / "pneumoniamnist", self.root / "medmnist"]
        dirs.append(medmnist_default_root())
        return dirs

    def npz_path(self) -> Path:
        name = npz_name(self.native_size())
        dirs = self._search_dirs()
        for d in dirs:
            if (d / name).is_file():
                return d / name
        present = sorted({p.name for d in dirs if d.is_dir() for p in d.glob(f"{FLAG}*.npz")})
        others = f" (found {', '.join(present)}: set options.native_size to use one)" if present else ""
        raise DatasetError(
            f"dataset 'pneumoniamnist': missing file {name!r} in {', '.join(repr(str(d)) for d in dirs)}"
            f"{others}; nothing is downloaded: on a machine with internet run `python -m medmnist "
            f"download --flag {FLAG} --size {self.native_size()}` (or fetch {name} from the MedMNIST "
            f"Zenodo record) and copy it into one of those folders"
        )

    def fingerprint_extra(self) -> str:
        path = self._npz or self.npz_path()
        return f"{path.name}:{os.stat(path).st_size}"

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            path = self._npz or self.npz_path()
            try:
                with np.load(path) as z:
                    arrays = {k: np.asarray(z[k]) for k in z.files}
            except Exception as exc:  # noqa: BLE001 - a broken download
                raise DatasetError(
                    f"dataset 'pneumoniamnist': cannot read {str(path)!r} ({type(exc).__name__}: {exc}); "
                    "download it again"
                ) from exc
            for s in SPLITS:
                for k in (f"{s}_images", f"{s}_labels"):
                    if k not in arrays:
                        raise DatasetError(
                            f"dataset 'pneumoniamnist': {str(path)!r} lacks the array {k!r} (has "
                            f"{', '.join(sorted(arrays))}); expected layout: {self.describe_layout()}"
                        )
                if len(arrays[f"{s}_images"]) != len(arrays[f"{s}_labels"]):
                    raise DatasetError(
                        f"dataset 'pneumoniamnist': {str(path)!r}: {s}_images and {s}_labels differ in length"
                    )
            self._arrays = arrays
        return self._arrays

    def records(self) -> list[ImageRecord]:
        self._npz = self.npz_path()
        self._arrays = None
        arrays = self._load()
        out = []
        for s in SPLITS:
            labels = np.asarray(arrays[f"{s}_labels"]).reshape(len(arrays[f"{s}_labels"]), -1)[:, 0]
            for i, y in enumerate(labels.tolist()):
                out.append(
                    ImageRecord(
                        key=f"{s}/{i:05d}",
                        split=s,
                        labels=(float(y),),
                        patient_id=f"{s}:{i}",  # no patient ids in MedMNIST: one per image
                        source={"split": s, "index": i},
                    )
                )
        self.split_notes = {
            "npz": self._npz.name,
            "native_size": self.native_size(),
            "splits": "official MedMNIST splits",
            "patient_ids": "none in MedMNIST: image index used (leakage check is vacuous)",
        }
        return out

    def read_image(self, record: ImageRecord) -> np.ndarray:
        split, i = record.source["split"], record.source["index"]
        img = self._load()[f"{split}_images"][i]
        if img.ndim == 3:  # as_rgb copies
            img = img[..., 0] if img.shape[-1] in (1, 3) else img[0]
        return np.ascontiguousarray(img)
