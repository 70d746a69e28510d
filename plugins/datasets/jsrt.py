"""JSRT chest radiographs with SCR lung-field masks: lung-field segmentation (and nodule labels).

247 adult posteroanterior chest radiographs (154 with a lung nodule, 93 without), one image per
patient, each with a mask of both lung fields. Two on-disk layouts are read (see
:class:`JSRTDataset`): the public 512 px PNG copy (``images/``, ``masks/lungs/``, ``labels.csv``)
and the original database (``All247images/*.IMG`` with the SCR masks).

Citations (cite both when you publish numbers):

- images: Shiraishi J., Katsuragawa S., Ikezoe J., Matsumoto T., Kobayashi T., Komatsu K.,
  Matsui M., Fujita H., Kodera Y., Doi K. (2000), "Development of a digital image database for
  chest radiographs with and without a lung nodule: receiver operating characteristic analysis of
  radiologists' detection of pulmonary nodules", AJR 174(1):71-74;
- lung-field masks: van Ginneken B., Stegmann M.B., Loog M. (2006), "Segmentation of anatomical
  structures in chest radiographs using supervised methods: a comparative study on a public
  database", Medical Image Analysis 10(1):19-40 (the SCR database).

Licence: the JSRT database is distributed by the Japanese Society of Radiological Technology for
research and education (its terms of use apply; it may not be redistributed); the SCR masks are
distributed for research under the same conditions. Never copy either into a repository.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrbench.contracts import ImageRecord
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.kit import FolderDataset, read_image_file, read_table, split_by_patient

LABEL_NAMES = ("nodule",)
#: the one mask class: both lung fields (the union of the left and right lung)
MASK_CLASSES = ("lungs",)
#: image-ID prefix -> nodule label
PREFIX_LABELS = {"JPCLN": 1.0, "JPCNN": 0.0}
SPLITS = ("train", "val", "test")

LABELS_CSV = "labels.csv"
IMAGES_DIR = "images"
MASKS_DIR = ("masks", "lungs")
RAW_DIR = "All247images"
RAW_SUFFIX = ".img"
#: where the SCR masks may be, relative to the dataset folder: as the README of this project
#: writes it, and as the SCR archive ships it (odd-numbered images in fold1, even in fold2)
SCR_MASK_BASES = (("scratch", "masks"), ("scratch", "fold1", "masks"), ("scratch", "fold2", "masks"))
SCR_LUNGS = ("left lung", "right lung")
SCR_SUFFIX = ".gif"
#: the JSRT .IMG pixel: 12 bits stored in a big-endian unsigned 16-bit word, no header
RAW_DTYPE = ">u2"
RAW_MAX = 4095


def nodule_from_id(image_id: str) -> float | None:
    """``JPCLNnnn`` -> 1.0 (nodule), ``JPCNNnnn`` -> 0.0, anything else -> None."""
    return PREFIX_LABELS.get(image_id[:5].upper())


def read_raw_image(path: str | os.PathLike, size: int = 2048, invert: bool = True) -> np.ndarray:
    """A JSRT ``.IMG`` file -> (size, size) uint8.

    The file is ``size * size`` big-endian unsigned 16-bit words without a header, holding 12-bit
    values (0..4095). In the JSRT convention a HIGHER raw value is a DARKER film (an optical
    density), so with ``invert`` (the default) the value is ``4095 - v`` first, which gives a
    radiograph as usual (lungs dark, bone bright). Then a fixed linear map to 8 bits:
    ``round(v * 255 / 4095)`` (no per-image windowing: the harness's preprocessing equalizes).
    A file of the wrong byte size or with values above 12 bits (e.g. little-endian bytes) is a
    ValueError naming it.
    """
    path = os.fspath(path)
    expected = size * size * 2
    actual = os.path.getsize(path)
    if actual != expected:
        raise ValueError(f"{path!r} holds {actual} bytes; a JSRT .IMG of {size}x{size} 16-bit pixels holds "
                         f"{expected} (jsrt option raw_size: {size})")
    raw = np.fromfile(path, dtype=RAW_DTYPE).reshape(size, size)
    top = int(raw.max()) if raw.size else 0
    if top > RAW_MAX:
        raise ValueError(f"{path!r} has values up to {top}, above 12 bits ({RAW_MAX}): not a JSRT .IMG "
                         "(12-bit values in big-endian 16-bit words)")
    v = raw.astype(np.uint32)
    if invert:
        v = RAW_MAX - v
    return ((v * 255 + RAW_MAX // 2) // RAW_MAX).astype(np.uint8)


def _read_binary(path: str) -> np.ndarray:
    """A mask file (PNG, palette GIF...) -> bool, True where the pixel is not black."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) != 0


def _nearest(mask: np.ndarray, hw: tuple[int, int], where: str) -> np.ndarray:
    """Resize a bool mask to ``hw`` (nearest neighbour); the aspect ratio must match."""
    from PIL import Image

    h, w = mask.shape
    if (h, w) == hw:
        return mask
    if h * hw[1] != w * hw[0]:
        raise ValueError(f"mask {where!r} is {w}x{h} px, the image {hw[1]}x{hw[0]}: not the same aspect ratio, "
                         "so it cannot be aligned")
    im = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize((hw[1], hw[0]), Image.Resampling.NEAREST)
    return np.asarray(im) != 0


@dataclass
class JSRTOptions:
    """:param invert_raw: original layout only: invert the raw ``.IMG`` values (``4095 - v``), the
        JSRT convention (a higher raw value is darker); False keeps the values as stored.
    :param raw_size: original layout only: side of the square ``.IMG`` files in pixels (2048 in the
        JSRT database; another value only for re-sampled copies or test files).
    :param test_fraction: without ``labels.csv``: share of the images in the test split.
    :param val_fraction: without ``labels.csv``: share of the images in the validation split.
    :param seed: without ``labels.csv``: seed of that split (by image, stratified by nodule).
    """

    invert_raw: bool = True
    raw_size: int = 2048
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.invert_raw, bool):
            raise ConfigError(f"jsrt invert_raw must be true or false, not {self.invert_raw!r}")
        if isinstance(self.raw_size, bool) or not isinstance(self.raw_size, int) or not 8 <= self.raw_size <= 8192:
            raise ConfigError(f"jsrt raw_size must be an integer in [8, 8192] (px), not {self.raw_size!r}")
        if not (0 < self.test_fraction < 1 and 0 < self.val_fraction < 1
                and self.test_fraction + self.val_fraction < 1):
            raise ConfigError(
                "jsrt test_fraction and val_fraction must be in (0, 1) and sum below 1, "
                f"not {self.test_fraction!r} and {self.val_fraction!r}"
            )


class JSRTDataset(FolderDataset):
    """JSRT (Shiraishi et al. 2000) with the SCR lung-field masks (van Ginneken et al. 2006):
    lung-field segmentation, one mask class ``lungs`` (both lung fields); label ``nodule``.

    **Layouts** (the data root is the dataset folder, or holds it under ``jsrt/`` or ``JSRT/``):

    a. the 512 px copy (this project's ``shared/data/jsrt``)::

           labels.csv              image,split,nodule   (JPCLN001.png,train,1)
           images/<ID>.png         8-bit grey, 512x512
           masks/lungs/<ID>.png    0 = background, 255 = lung, same size as the image

       The split is the one ``labels.csv`` gives (train 174 / val 22 / test 51).

    b. the original database::

           All247images/<ID>.IMG                 2048x2048, 12-bit values in big-endian
                                                 unsigned 16-bit words, no header
           scratch/masks/left lung/<ID>.gif      SCR masks, 1024x1024
           scratch/masks/right lung/<ID>.gif     (or scratch/fold1/masks/..., scratch/fold2/
                                                 masks/..., as the SCR archive ships them)

       ``.IMG`` decoding: see :func:`read_raw_image` (JSRT stores a higher value for a darker
       film: inverted by default, ``invert_raw``; then 12 -> 8 bits by ``round(v * 255 / 4095)``).
       The lung mask is the union of the left and right lung masks, resized to the image
       (1024 -> 2048) by nearest neighbour in :meth:`read_mask`, so ``read_mask`` and
       ``read_image`` of a record always have the same height and width and the harness resizes
       both with the same geometry at every size. With a ``labels.csv`` next to ``All247images/``
       the split (and nodule) come from it; without, the split is by image (every image is a
       different patient), deterministic: :func:`cxrbench.kit.split_by_patient` stratified by
       nodule (``test_fraction`` 0.2, ``val_fraction`` 0.1, ``seed`` 0 by default).

    When a folder holds both, the 512 px copy is read.

    **Labels**: ``nodule`` = 1 for ``JPCLN*`` (with a lung nodule, 154 images), 0 for ``JPCNN*``
    (93): from ``labels.csv`` when there is one (it must agree with the ID prefix), else from the
    prefix. **Masks**: every record has one (``has_mask``); ``read_mask`` returns uint8 0/1. A
    missing mask file is a one-line :class:`~cxrbench.errors.DatasetError` naming it, raised by
    ``records()``: a segmentation dataset without its masks is broken, so no image is silently
    left out or kept without a mask. **Patients**: the image ID (one image per patient).
    **Metadata**: none (this copy has no age or sex).

    Citation: Shiraishi J. et al. (2000), AJR 174(1):71-74 (images); van Ginneken B., Stegmann
    M.B., Loog M. (2006), Medical Image Analysis 10(1):19-40 (SCR lung masks). Licence: JSRT
    database terms (research and education, no redistribution), SCR likewise.
    """

    name = "jsrt"
    version = "1"
    label_names = LABEL_NAMES
    mask_classes = MASK_CLASSES
    metadata_fields = ()
    default_subdir = "jsrt"
    Options = JSRTOptions
    layout = ("<root>/labels.csv (image,split,nodule), images/<ID>.png and masks/lungs/<ID>.png (512 px copy), "
              "or <root>/All247images/<ID>.IMG (2048x2048 12-bit big-endian raw) with SCR masks "
              "scratch/masks/{left lung,right lung}/<ID>.gif (root may hold jsrt/)")
    folder_candidates = ("", "jsrt", "JSRT")

    #: a digest of the mask files (relative path and byte size), set by records(): part of the
    #: fingerprint, so replacing a mask file decodes the dataset again
    _mask_stamp: str = ""

    @staticmethod
    def _kind(path: Path) -> str | None:
        if (path / LABELS_CSV).is_file() and (path / IMAGES_DIR).is_dir():
            return "png"
        if (path / RAW_DIR).is_dir():
            return "raw"
        return None

    def is_dataset_folder(self, path: Path) -> bool:
        return self._kind(path) is not None

    def fingerprint_extra(self) -> str:
        return f"jsrt-masks-{self._mask_stamp}"

    def _error(self, text: str) -> DatasetError:
        return DatasetError(f"dataset 'jsrt': {text}; expected layout: {self.describe_layout()}")

    # ------------------------------------------------------------------ labels.csv

    def _read_labels(self, folder: Path) -> dict[str, tuple[str, float, str]]:
        """labels.csv -> {ID: (split, nodule, image file name)}, checked row by row."""
        csv = folder / LABELS_CSV
        df = read_table(csv, ("image", "split", "nodule"), dataset=self, dtype=str, keep_default_na=False)
        out: dict[str, tuple[str, float, str]] = {}
        for i, (name, split, nodule) in enumerate(zip(df["image"], df["split"], df["nodule"])):
            where = f"{str(csv)!r} data row {i + 1}"
            name, split, nodule = str(name).strip(), str(split).strip(), str(nodule).strip()
            image_id = Path(name).stem
            if not image_id:
                raise self._error(f"{where} has no image name")
            if split not in SPLITS:
                raise self._error(f"{where} ({name}) has the split {split!r}; expected one of {', '.join(SPLITS)}")
            try:
                value = float(nodule)
            except ValueError:
                value = math.nan
            if value not in (0.0, 1.0):
                raise self._error(f"{where} ({name}) has nodule {nodule!r}; expected 0 or 1")
            expected = nodule_from_id(image_id)
            if expected is not None and expected != value:
                raise self._error(f"{where} ({name}) has nodule {nodule!r} but the ID prefix {image_id[:5]!r} says "
                                  f"{int(expected)} (JPCLN = nodule, JPCNN = none)")
            if image_id in out:
                raise self._error(f"{where} lists the image {image_id!r} a second time")
            out[image_id] = (split, value, name)
        if not out:
            raise self._error(f"{str(csv)!r} lists no image")
        return out

    # ------------------------------------------------------------------ records

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()
        kind = self._kind(folder)
        out = self._records_png(folder) if kind == "png" else self._records_raw(folder)
        stamp = hashlib.sha256()
        for r in sorted(out, key=lambda r: r.key):
            for m in r.source["masks"]:
                stamp.update(f"{os.path.relpath(m, folder)}\0{os.path.getsize(m)}\n".encode())
        self._mask_stamp = stamp.hexdigest()[:16]
        return out

    def _records_png(self, folder: Path) -> list[ImageRecord]:
        table = self._read_labels(folder)
        mask_dir = folder.joinpath(*MASKS_DIR)
        masks = {e.name for e in os.scandir(mask_dir) if e.is_file()} if mask_dir.is_dir() else set()
        listed = {name for _, _, name in table.values()}
        images_dir = folder / IMAGES_DIR
        unlisted = sum(1 for e in os.scandir(images_dir) if e.is_file() and e.name not in listed)
        out: list[ImageRecord] = []
        for image_id, (split, nodule, name) in table.items():
            if name not in masks:
                raise self._error(f"missing mask file {str(mask_dir / name)!r} of image {image_id!r} (every image "
                                  "of a segmentation dataset needs its lung mask)")
            out.append(ImageRecord(
                key=image_id, split=split, labels=(nodule,), patient_id=image_id,
                source={"path": str(images_dir / name), "masks": [str(mask_dir / name)], "format": "png"},
                metadata={}, has_mask=True,
            ))
        counts = {s: sum(1 for r in out if r.split == s) for s in SPLITS}
        self.split_notes = {
            "layout": "512 px copy (images/, masks/lungs/, labels.csv)",
            "split": f"as given in labels.csv: {counts}",
            "masks": "masks/lungs/<ID>.png (one class: lungs)",
            "unlisted_images_left_out": unlisted,
        }
        return out

    def _scr_masks(self, folder: Path) -> dict[str, dict[str, str]]:
        """{lung: {ID: path}} over every SCR mask folder (first found wins)."""
        index: dict[str, dict[str, str]] = {lung: {} for lung in SCR_LUNGS}
        for base in SCR_MASK_BASES:
            for lung in SCR_LUNGS:
                d = folder.joinpath(*base, lung)
                if d.is_dir():
                    for e in sorted(os.scandir(d), key=lambda e: e.name):
                        stem, suffix = os.path.splitext(e.name)
                        if suffix.lower() == SCR_SUFFIX and e.is_file():
                            index[lung].setdefault(stem.upper(), e.path)
        return index

    def _records_raw(self, folder: Path) -> list[ImageRecord]:
        raw_dir = folder / RAW_DIR
        files = sorted((e.name, e.path) for e in os.scandir(raw_dir)
                       if e.is_file() and os.path.splitext(e.name)[1].lower() == RAW_SUFFIX)
        if not files:
            raise self._error(f"no .IMG file in {str(raw_dir)!r}")
        table = self._read_labels(folder) if (folder / LABELS_CSV).is_file() else None
        scr = self._scr_masks(folder)
        present = [b for b in SCR_MASK_BASES if folder.joinpath(*b).is_dir()]
        shown_base = present[0] if present else SCR_MASK_BASES[0]
        out: list[ImageRecord] = []
        for name, path in files:
            image_id = os.path.splitext(name)[0]
            nodule = nodule_from_id(image_id)
            if nodule is None:
                raise self._error(f"{path!r}: the image ID {image_id!r} starts with neither JPCLN (nodule) nor "
                                  "JPCNN (no nodule)")
            split = "train"
            if table is not None:
                if image_id not in table:
                    raise self._error(f"{path!r} is not listed in {str(folder / LABELS_CSV)!r}")
                split, nodule, _ = table[image_id]
            masks = []
            for lung in SCR_LUNGS:
                m = scr[lung].get(image_id.upper())
                if m is None:
                    expected = folder.joinpath(*shown_base, lung, image_id + SCR_SUFFIX)
                    raise self._error(f"missing mask file {str(expected)!r} of image {image_id!r} (every image of a "
                                      "segmentation dataset needs its left and right lung masks)")
                masks.append(m)
            out.append(ImageRecord(
                key=image_id, split=split, labels=(nodule,), patient_id=image_id,
                source={"path": path, "masks": masks, "format": "img"}, metadata={}, has_mask=True,
            ))
        if table is not None:
            missing = sorted(set(table) - {r.key for r in out})
            if missing:
                raise self._error(f"{str(folder / LABELS_CSV)!r} lists {len(missing)} image(s) without an .IMG file "
                                  f"in {str(raw_dir)!r}, e.g. {missing[0]!r}")
        o = self.options
        notes = {
            "layout": "original database (All247images/*.IMG, SCR masks)",
            "raw": f"{o.raw_size}x{o.raw_size} 12-bit big-endian; inverted (4095 - v): {o.invert_raw}; "
                   "8 bits by round(v * 255 / 4095)",
            "masks": "SCR left lung + right lung (union), nearest-neighbour resized to the image",
        }
        if table is None:
            out = split_by_patient(out, test_fraction=o.test_fraction, val_fraction=o.val_fraction, seed=o.seed)
            notes["split"] = (f"by image (every image is a different patient), stratified by nodule: test_fraction "
                              f"{o.test_fraction}, val_fraction {o.val_fraction}, seed {o.seed}")
            notes["seed"] = o.seed
        else:
            notes["split"] = "as given in labels.csv"
        self.split_notes = notes
        return out

    # ------------------------------------------------------------------ decoding

    def read_image(self, record: ImageRecord) -> np.ndarray:
        src = record.source
        if src["format"] == "img":
            return read_raw_image(src["path"], int(self.options.raw_size), bool(self.options.invert_raw))
        return read_image_file(src["path"])

    def _image_shape(self, record: ImageRecord) -> tuple[int, int]:
        src = record.source
        if src["format"] == "img":
            return int(self.options.raw_size), int(self.options.raw_size)
        from PIL import Image

        with Image.open(src["path"]) as im:  # the header only
            return im.size[1], im.size[0]

    def read_mask(self, record: ImageRecord) -> np.ndarray:
        """uint8 0/1 lung mask with the image's height and width (union of the mask files,
        each resized to the image by nearest neighbour when its size differs)."""
        hw = self._image_shape(record)
        union = np.zeros(hw, bool)
        for path in record.source["masks"]:
            union |= _nearest(_read_binary(path), hw, path)
        return union.astype(np.uint8)
