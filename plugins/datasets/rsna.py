"""RSNA Pneumonia Detection Challenge (2018): DICOM images, stage-2 label CSVs, boxes as masks."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrbench.contracts import ImageRecord
from cxrbench.errors import ConfigError
from cxrbench.kit import FolderDataset, default_cache_dir, read_table, split_by_patient

LABELS_CSV = "stage_2_train_labels.csv"
CLASS_CSV = "stage_2_detailed_class_info.csv"
IMAGE_DIR = "stage_2_train_images"
#: bump when header parsing changes (invalidates the header sidecar cache)
HEADER_CACHE_VERSION = "1"


@dataclass
class RSNAOptions:
    """:param test_fraction: share of the images (by patient) held out as the internal test set.
    :param val_fraction: share of the images (by patient) used for validation.
    :param seed: seed of that patient-level split (recorded in ``info["splits"]``).
    """

    test_fraction: float = 0.15
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.test_fraction < 1 and 0 < self.val_fraction < 1
                and self.test_fraction + self.val_fraction < 1):
            raise ConfigError(
                "rsna-pneumonia test_fraction and val_fraction must be in (0, 1) and sum below 1, "
                f"not {self.test_fraction!r} and {self.val_fraction!r}"
            )


def dicom_to_array(ds) -> np.ndarray:
    """Pixel data of a pydicom dataset as a 2-D uint8/uint16 array, as a viewer would show it:
    the modality LUT / rescale and the VOI LUT / window are applied when present, and
    MONOCHROME1 images (bright = low value) are inverted."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    arr = ds.pixel_array
    if arr.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 1:
        arr = arr[0]  # multi-frame: first frame
    if arr.ndim == 3:  # colour: luma
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    has_modality = any(k in ds for k in ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence"))
    has_voi = any(k in ds for k in ("WindowCenter", "VOILUTSequence"))
    if has_modality:
        arr = apply_modality_lut(arr, ds)
    if has_voi:
        arr = apply_voi_lut(arr, ds, index=0)
    inverted = str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    if arr.dtype == np.uint8:
        return (255 - arr) if inverted else arr
    arr = arr.astype(np.float64)
    if inverted:
        arr = arr.max() + arr.min() - arr
    if not (has_modality or has_voi) and arr.min() >= 0 and arr.max() <= 65535 and not inverted:
        return arr.astype(np.uint16)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint16)
    return np.round((arr - lo) * (65535.0 / (hi - lo))).astype(np.uint16)


def parse_dicom_age(value) -> int | None:
    """DICOM age string (``"058Y"``, ``"58"``, ``"006M"``) -> whole years; None when absent."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([YMWD]?)\s*", str(value).upper())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2) or "Y"
    return int(n / {"Y": 1, "M": 12, "W": 52, "D": 365}[unit])


def _raw(ds, keyword: str):
    """A header value as text, read raw: RSNA's ages ("51") are not valid DICOM AS strings and
    pydicom would warn on every file when converting them."""
    elem = ds.get_item(keyword)
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip(" \0") if value is not None else None


def _norm_sex(value) -> str | None:
    v = str(value or "").strip().upper()
    return v if v in ("M", "F") else None


class RSNAPneumoniaDataset(FolderDataset):
    """RSNA Pneumonia Detection Challenge 2018 (stage 2 training set), with boxes as masks.

    Expected layout under the data root (or under ``rsna-pneumonia/`` in it)::

        stage_2_train_labels.csv         patientId,x,y,width,height,Target (one row per box)
        stage_2_detailed_class_info.csv  patientId,class   (optional: "class" metadata)
        stage_2_train_images/<patientId>.dcm

    Label ``pneumonia`` = ``Target``. Masks: the union of the image's boxes (all zero for
    negatives). Metadata from the DICOM header: ``sex`` (PatientSex), ``age`` (PatientAge, years),
    ``view`` (ViewPosition, PA/AP); plus ``class`` from the detailed class CSV and ``n_boxes``.
    Headers are read once and kept in a small sidecar JSON in the cache folder.

    The stage-2 test images have no public labels, so the labelled training set is split into
    train / val / test by patient (stratified by label; ``test_fraction``, ``val_fraction``,
    ``seed``, recorded in ``info["splits"]``). Each patientId has one image.

    Pixels: modality LUT / rescale and VOI LUT / window applied when present, MONOCHROME1
    inverted (:func:`dicom_to_array`).

    Citation: Shih G. et al. (2019), "Augmenting the National Institutes of Health Chest
    Radiograph Dataset with Expert Annotations of Possible Pneumonia", Radiology: AI 1(1);
    RSNA Pneumonia Detection Challenge, Kaggle 2018 (images from NIH ChestX-ray14).
    """

    name = "rsna-pneumonia"
    version = "1"
    label_names = ("pneumonia",)
    metadata_fields = ("sex", "age", "view", "class")
    default_subdir = "rsna-pneumonia"
    Options = RSNAOptions
    layout = (f"<root>/{LABELS_CSV} (patientId,x,y,width,height,Target), optional {CLASS_CSV} "
              f"(patientId,class) and {IMAGE_DIR}/<patientId>.dcm (root may hold rsna-pneumonia/)")
    folder_candidates = ("", "rsna-pneumonia", "rsna-pneumonia-detection-challenge", "rsna")

    def is_dataset_folder(self, path: Path) -> bool:
        return (path / LABELS_CSV).is_file() or (path / IMAGE_DIR).is_dir()

    # ------------------------------------------------------------------ records

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()
        df = read_table(folder / LABELS_CSV, ["patientId", "x", "y", "width", "height", "Target"], dataset=self)
        classes: dict[str, str] = {}
        if (folder / CLASS_CSV).is_file():
            cdf = read_table(folder / CLASS_CSV, ["patientId", "class"], dataset=self)
            classes = dict(zip(cdf["patientId"].astype(str), cdf["class"].astype(str)))
        boxes: dict[str, list[tuple[float, float, float, float]]] = {}
        target: dict[str, float] = {}
        for pid, x, y, w, h, t in zip(df["patientId"].astype(str), df["x"], df["y"], df["width"],
                                      df["height"], df["Target"]):
            target[pid] = max(target.get(pid, 0.0), float(t))
            boxes.setdefault(pid, [])
            if not any(math.isnan(float(v)) for v in (x, y, w, h)):
                boxes[pid].append((float(x), float(y), float(w), float(h)))
        image_dir = folder / IMAGE_DIR
        paths = {pid: str(image_dir / f"{pid}.dcm") for pid in target}
        headers = self._headers(paths)
        out = []
        for pid in sorted(target):
            hdr = headers.get(pid, {})
            meta = {"sex": hdr.get("sex"), "age": hdr.get("age"), "view": hdr.get("view"),
                    "n_boxes": len(boxes[pid])}
            if classes:
                meta["class"] = classes.get(pid)
            out.append(
                ImageRecord(
                    key=f"{IMAGE_DIR}/{pid}.dcm",
                    split="train",
                    labels=(target[pid],),
                    patient_id=pid,
                    source=(paths[pid], tuple(boxes[pid])),
                    metadata=meta,
                    has_mask=True,
                )
            )
        o = self.options
        out = split_by_patient(out, test_fraction=o.test_fraction, val_fraction=o.val_fraction, seed=o.seed)
        self.split_notes = {
            "test": f"patient-level split of the labelled stage-2 training set: test_fraction "
                    f"{o.test_fraction}, val_fraction {o.val_fraction}, seed {o.seed}, stratified by label",
            "seed": o.seed,
        }
        return out

    def _headers(self, paths: dict[str, str]) -> dict[str, dict]:
        """sex / age / view of every DICOM, read once (stop before pixels), cached in a sidecar."""
        listing = []
        for pid in sorted(paths):
            try:
                listing.append(f"{pid}:{os.stat(paths[pid]).st_size}")
            except OSError:
                listing.append(f"{pid}:-")
        digest = hashlib.sha256(("\n".join(listing) + HEADER_CACHE_VERSION).encode()).hexdigest()[:20]
        cache_root = Path(getattr(self, "cache_root", None) or default_cache_dir())
        sidecar = cache_root / "datasets" / "_headers" / f"{self.name}-{digest}.json"
        try:
            with open(sidecar, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            pass

        def read(pid: str) -> tuple[str, dict | None]:
            import pydicom

            try:
                ds = pydicom.dcmread(paths[pid], stop_before_pixels=True,
                                     specific_tags=["PatientSex", "PatientAge", "ViewPosition"])
            except Exception:  # noqa: BLE001 - missing / unreadable: reported when decoding
                return pid, None
            view = str(_raw(ds, "ViewPosition") or "").strip().upper() or None
            return pid, {"sex": _norm_sex(_raw(ds, "PatientSex")),
                         "age": parse_dicom_age(_raw(ds, "PatientAge")), "view": view}

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as ex:
            headers = {pid: h for pid, h in ex.map(read, sorted(paths)) if h is not None}
        try:
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=sidecar.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(headers, fh)
            os.replace(tmp, sidecar)
        except OSError:
            pass  # a read-only cache only costs re-reading the headers next time
        return headers

    # ------------------------------------------------------------------ decoding

    def read_image(self, record: ImageRecord) -> np.ndarray:
        import pydicom

        return dicom_to_array(pydicom.dcmread(record.source[0]))

    def read_mask(self, record: ImageRecord) -> np.ndarray:
        import pydicom

        ds = pydicom.dcmread(record.source[0], stop_before_pixels=True)
        rows, cols = int(ds.Rows), int(ds.Columns)
        mask = np.zeros((rows, cols), np.uint8)
        for x, y, w, h in record.source[1]:
            x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
            x1, y1 = min(cols, int(round(x + w))), min(rows, int(round(y + h)))
            mask[y0:y1, x0:x1] = 1
        return mask
