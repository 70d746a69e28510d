"""COVID-19 image data collection (Cohen et al.): ``metadata.csv`` as shipped, ``images/<filename>``.

Source: https://github.com/ieee8023/covid-chestxray-dataset - images of COVID-19 and other
pneumonias gathered from publications, websites (Radiopaedia, Eurorad, SIRM...) and hospitals.

Citation: Cohen J.P., Morrison P., Dao L., Roth K., Duong T.Q., Ghassemi M. (2020), "COVID-19 Image
Data Collection: Prospective Predictions Are the Future", Machine Learning for Biomedical Imaging
(MELBA); arXiv:2006.11988.

Licences: every image has its own licence, in the ``license`` column (CC BY-NC-SA, CC BY 3.0,
CC BY-NC-ND, Apache 2.0, ...; blank = see the row's ``url``); it is kept as the ``license``
metadata of each image. The metadata is CC BY-NC-SA 4.0.

**Layout** (the data root is the collection folder, or holds it under ``covid-chestxray/``)::

    metadata.csv        patientid,offset,sex,age,finding,...,view,modality,date,location,folder,
                        filename,doi,url,license,clinical_notes,other_notes,
    images/<filename>   JPEG / PNG, some RGB (decoded to grey)

``metadata.csv`` is read exactly as the project ships it: the header ends with a comma (an unnamed,
empty last column) and ``clinical_notes`` holds quoted commas and line breaks. An image is
``<folder>/<filename>`` (``folder`` as given in its row, ``images`` when blank; the CT volumes of
``volumes/`` are not X-rays and are left out anyway).

**Which rows become images** (each left-out row is counted under the first reason that applies,
in this order, in ``split_notes["left_out"]``, i.e. ``LoadedDataset.info["splits"]["left_out"]``):

1. ``missing_file``: its file is not there (a partial download; the CT volumes);
2. ``not_xray``: ``modality`` is not ``X-ray`` (CT);
3. ``lateral``: ``view`` is ``L``;
4. ``view_unknown``: ``view`` is none of PA / AP / AP Supine / L (blank or ``?``);
5. ``duplicate_file``: the same ``folder/filename`` was already listed by an earlier row (the
   2020-06-22 snapshot lists five files twice, under patients 285 / 339 and 287 / 340: the same
   cases entered twice; the first row is kept, so no image sits under two patients);
6. ``todo``: ``finding`` is ``todo`` (not labelled yet).

**Labels** ``pneumonia`` and ``covid-19`` come from ``finding`` through :data:`FINDING_LABELS`
(1 positive, 0 negative, NaN unknown: masked out of that label's metrics):

- an infectious pneumonia - viral (COVID-19, SARS, influenza, varicella), bacterial
  (Streptococcus, Klebsiella, Legionella, E. coli, Mycoplasma, Chlamydophila, "Bacterial"),
  fungal (Pneumocystis) - and pneumonia without a named cause: ``pneumonia`` = 1;
- ``Lipoid`` (lipoid pneumonia: a non-infectious, aspiration pneumonia): ``pneumonia`` = 1, as
  in the collection's own taxonomy (later snapshots write it ``Pneumonia/Lipoid``); 3 images;
- ``COVID-19, ARDS``: COVID-19 pneumonia complicated by ARDS: both labels 1;
- ``No Finding``: both labels 0;
- ``ARDS`` alone: neither a pneumonia nor normal: both labels NaN;
- ``covid-19`` is 1 for COVID-19, 0 for a pneumonia of another named cause and for No Finding,
  NaN where the cause is not named (``Pneumonia``) or for ARDS alone.

A ``finding`` value not in the table (e.g. the hierarchical ``Pneumonia/Viral/COVID-19`` of
later snapshots) is a one-line :class:`~cxrbench.errors.DatasetError` naming the row and the
value - never a guess: add it to :data:`FINDING_LABELS`, with a reason.

**Metadata** (per image): ``sex`` (M / F; blank -> None), ``age`` (whole years; blank -> None),
``view`` as shipped (``PA``, ``AP``, ``AP Supine``), ``site`` (the ``location`` column, blank ->
None); also ``finding`` (the raw value), ``offset`` (days since symptom onset, may be negative or
None) and ``license``. The patient is ``patientid`` as shipped (``311a`` and ``311b`` are two
different patients); most patients have several images.

**Splits**: the collection is an *external test* set. Benchmarks use it with ``test: all`` (every
image; allowed only when no model tested on it has seen it). For the dataset contract (train and
test images, patient-disjoint) the images are also split by patient, deterministically
(:func:`cxrbench.kit.split_by_patient`, stratified by label; ``test_fraction``, ``val_fraction``,
``seed``, recorded in ``split_notes``).

**Expected counts** on the 2020-06-22 snapshot (751 rows; 716 with their file): frontal X-rays
with a file, 559 rows of 329 patients (as its README says); less 4 duplicate rows and 28
``todo`` -> **527 images of 309 patients**. Left out: missing_file 35, not_xray 63, lateral 55,
view_unknown 39, duplicate_file 4, todo 28. ``pneumonia``: 504 positive, 19 negative (No
Finding), 4 NaN (ARDS); ``covid-19``: 427 positive, 86 negative, 14 NaN (Pneumonia 10, ARDS 4).
Views PA 293, AP Supine 132, AP 102; sex M 295, F 182, unknown 50; age known for 386; site for
491 images (102 sites). Nearly every image is pneumonia-positive: the set supports sensitivity /
false-negative rates per subgroup, not a balanced AUROC (19 negatives). Two files of patient
364 have identical bytes under different names; both are kept (same patient: no leakage).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cxrbench.contracts import ImageRecord
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.kit import FolderDataset, read_table, split_by_patient

METADATA_CSV = "metadata.csv"
DEFAULT_FOLDER = "images"
LABEL_NAMES = ("pneumonia", "covid-19")
FRONTAL_VIEWS = ("PA", "AP", "AP Supine")
LATERAL_VIEWS = ("L",)
XRAY = "X-ray"
UNLABELLED = "todo"
NAN = float("nan")

#: ``finding`` -> (pneumonia, covid-19, why). NaN = unknown (masked). Every value of the
#: 2020-06-22 snapshot except ``todo`` (left out, unlabelled); anything else is an error.
FINDING_LABELS: dict[str, tuple[float, float, str]] = {
    "COVID-19": (1.0, 1.0, "viral pneumonia (SARS-CoV-2)"),
    "COVID-19, ARDS": (1.0, 1.0, "COVID-19 pneumonia complicated by ARDS"),
    "SARS": (1.0, 0.0, "viral pneumonia (SARS-CoV-1)"),
    "Influenza": (1.0, 0.0, "viral pneumonia (influenza)"),
    "Varicella": (1.0, 0.0, "viral pneumonia (varicella-zoster)"),
    "Streptococcus": (1.0, 0.0, "bacterial pneumonia"),
    "Klebsiella": (1.0, 0.0, "bacterial pneumonia"),
    "Legionella": (1.0, 0.0, "bacterial pneumonia"),
    "E.Coli": (1.0, 0.0, "bacterial pneumonia"),
    "Mycoplasma Bacterial Pneumonia": (1.0, 0.0, "bacterial (atypical) pneumonia"),
    "Chlamydophila": (1.0, 0.0, "bacterial (atypical) pneumonia"),
    "Bacterial": (1.0, 0.0, "bacterial pneumonia, organism not named"),
    "Pneumocystis": (1.0, 0.0, "fungal pneumonia (Pneumocystis jirovecii)"),
    "Lipoid": (1.0, 0.0, "lipoid (aspiration) pneumonia: non-infectious, a pneumonia in the collection's taxonomy"),
    "Pneumonia": (1.0, NAN, "pneumonia, cause not named: COVID-19 unknown"),
    "ARDS": (NAN, NAN, "ARDS without a named pneumonia: neither pneumonia nor normal"),
    "No Finding": (0.0, 0.0, "normal"),
}

#: the reasons a row is left out, in the order they are tried (see the module docstring)
LEFT_OUT_REASONS = ("missing_file", "not_xray", "lateral", "view_unknown", "duplicate_file", "todo")

REQUIRED_COLUMNS = ("patientid", "finding", "view", "modality", "filename")


def finding_labels(value: str) -> tuple[float, float]:
    """``finding`` -> (pneumonia, covid-19); KeyError for a value not in :data:`FINDING_LABELS`."""
    pneumonia, covid, _ = FINDING_LABELS[value.strip()]
    return pneumonia, covid


def _int(value: str) -> int | None:
    m = re.fullmatch(r"\s*(-?\d+)(?:\.0*)?\s*", value or "")
    return int(m.group(1)) if m else None


def _text(value: str) -> str | None:
    value = (value or "").strip()
    return value or None


@dataclass
class CovidChestXrayOptions:
    """:param test_fraction: share of the images (by patient) in the internal test split (only used
        with ``test: test``; benchmarks use ``test: all``).
    :param val_fraction: share of the images (by patient) in the validation split.
    :param seed: seed of that patient-level split (recorded in ``info["splits"]``).
    """

    test_fraction: float = 0.5
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.test_fraction < 1 and 0 < self.val_fraction < 1
                and self.test_fraction + self.val_fraction < 1):
            raise ConfigError(
                "covid-chestxray test_fraction and val_fraction must be in (0, 1) and sum below 1, "
                f"not {self.test_fraction!r} and {self.val_fraction!r}"
            )


class CovidChestXrayDataset(FolderDataset):
    """COVID-19 image data collection (Cohen et al. 2020): frontal X-rays, ``pneumonia`` and
    ``covid-19`` labels from ``finding``, sex / age / view / site. See the module docstring for
    the layout, the rows left out, the label rule and the expected counts."""

    name = "covid-chestxray"
    version = "1"
    label_names = LABEL_NAMES
    metadata_fields = ("sex", "age", "view", "site")
    default_subdir = "covid-chestxray"
    Options = CovidChestXrayOptions
    layout = ("<root>/metadata.csv (patientid,...,finding,...,view,modality,...,folder,filename,...) and "
              "images/<filename> (root may hold covid-chestxray/)")
    folder_candidates = ("", "covid-chestxray", "covid-chestxray-dataset")

    #: counts of the rows left out by the last records(), by reason
    left_out: dict[str, int] = {}

    def is_dataset_folder(self, path: Path) -> bool:
        csv = path / METADATA_CSV
        if not csv.is_file():
            return False
        try:
            with open(csv, encoding="utf-8", errors="replace") as fh:
                header = fh.readline()
        except OSError:
            return False
        names = {c.strip() for c in header.split(",")}
        return "patientid" in names and "finding" in names

    def records(self) -> list[ImageRecord]:
        folder = self.dataset_folder()
        csv = folder / METADATA_CSV
        df = read_table(csv, REQUIRED_COLUMNS, dataset=self, dtype=str, keep_default_na=False)
        n = len(df)
        col = lambda name: df[name].fillna("").astype(str).tolist() if name in df else [""] * n  # noqa: E731
        pids, findings, views, modalities, names = (col(c) for c in REQUIRED_COLUMNS)
        folders, sexes, ages, sites = col("folder"), col("sex"), col("age"), col("location")
        offsets, licences = col("offset"), col("license")

        listing: dict[str, set[str]] = {}

        def exists(sub: str, name: str) -> bool:
            if sub not in listing:
                d = folder / sub
                listing[sub] = {e.name for e in os.scandir(d) if e.is_file()} if d.is_dir() else set()
            return name in listing[sub]

        left_out = dict.fromkeys(LEFT_OUT_REASONS, 0)
        frontal_rows, frontal_patients = 0, set()
        seen: set[str] = set()
        out: list[ImageRecord] = []
        for i in range(n):
            sub = folders[i].strip() or DEFAULT_FOLDER
            name = names[i].strip()
            view = views[i].strip()
            if not name or not exists(sub, name):
                left_out["missing_file"] += 1
                continue
            if modalities[i].strip() != XRAY:
                left_out["not_xray"] += 1
                continue
            if view in LATERAL_VIEWS:
                left_out["lateral"] += 1
                continue
            if view not in FRONTAL_VIEWS:
                left_out["view_unknown"] += 1
                continue
            pid = pids[i].strip()
            frontal_rows += 1
            frontal_patients.add(pid)
            key = f"{sub}/{name}"
            if key in seen:
                left_out["duplicate_file"] += 1
                continue
            seen.add(key)
            finding = findings[i].strip()
            if finding == UNLABELLED:
                left_out["todo"] += 1
                continue
            try:
                labels = finding_labels(finding)
            except KeyError:
                raise DatasetError(
                    f"dataset 'covid-chestxray': {str(csv)!r} data row {i + 1} (patientid {pid!r}, filename "
                    f"{name!r}) has the unknown finding {finding!r}; known: "
                    f"{', '.join(repr(k) for k in FINDING_LABELS)} and {UNLABELLED!r}; add it to FINDING_LABELS "
                    "in cxrbench.plugins.datasets.covid_chestxray with its pneumonia / covid-19 labels"
                ) from None
            if not pid:
                raise DatasetError(
                    f"dataset 'covid-chestxray': {str(csv)!r} data row {i + 1} (filename {name!r}) has no patientid"
                )
            sex = sexes[i].strip().upper()
            out.append(
                ImageRecord(
                    key=key,
                    split="train",
                    labels=labels,
                    patient_id=pid,
                    source=str(folder / sub / name),
                    metadata={"sex": sex if sex in ("M", "F") else None, "age": _int(ages[i]), "view": view,
                              "site": _text(sites[i]), "finding": finding, "offset": _int(offsets[i]),
                              "license": _text(licences[i])},
                )
            )
        o = self.options
        if out:
            out = split_by_patient(out, test_fraction=o.test_fraction, val_fraction=o.val_fraction, seed=o.seed)
        self.left_out = left_out
        masked = [sum(1 for r in out if math.isnan(r.labels[j])) for j in range(len(LABEL_NAMES))]
        self.split_notes = {
            "test": f"external test collection: benchmarks use test: all (every image); the internal split is "
                    f"by patient: test_fraction {o.test_fraction}, val_fraction {o.val_fraction}, seed {o.seed}, "
                    "stratified by label",
            "seed": o.seed,
            "rows": n,
            "frontal_xray_rows_with_file": frontal_rows,
            "frontal_xray_patients_with_file": len(frontal_patients),
            "left_out": dict(left_out),
            "labels": "from finding by FINDING_LABELS (cxrbench.plugins.datasets.covid_chestxray); "
                      f"NaN (masked) per label: {dict(zip(LABEL_NAMES, masked))}",
        }
        return out
