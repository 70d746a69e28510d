"""COVID-19 image data collection (covid-chestxray): the real snapshot when present, and a small
made-up layout shaped exactly like it (metadata.csv with the shipped header, images/). Also: the
real NIH ChestX-ray14 sample, whose age / sex / view columns are empty."""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.datasets import load_dataset
from cxrbench.errors import ConfigError, DatasetError
from cxrbench.plugins.datasets.covid_chestxray import (
    FINDING_LABELS,
    LEFT_OUT_REASONS,
    CovidChestXrayDataset,
    CovidChestXrayOptions,
)
from cxrbench.testing import DatasetContractTests

DATA_ROOT = os.environ.get("CXRBENCH_DATA_ROOT", "").strip()
REAL_COVID = Path(DATA_ROOT) / "covid-chestxray" if DATA_ROOT else None
REAL_NIH = Path(DATA_ROOT) / "nih-cxr14" if DATA_ROOT else None

needs_real_covid = pytest.mark.skipif(
    REAL_COVID is None or not (REAL_COVID / "metadata.csv").is_file(),
    reason="real COVID-19 image data collection not found: set CXRBENCH_DATA_ROOT to a folder holding "
           "covid-chestxray/metadata.csv",
)
needs_real_nih = pytest.mark.skipif(
    REAL_NIH is None or not (REAL_NIH / "Data_Entry_2017.csv").is_file(),
    reason="real NIH ChestX-ray14 sample not found: set CXRBENCH_DATA_ROOT to a folder holding "
           "nih-cxr14/Data_Entry_2017.csv",
)

# --------------------------------------------------------------------------- a made-up layout

# the header exactly as shipped, trailing comma included
HEADER = ("patientid,offset,sex,age,finding,survival,intubated,intubation_present,went_icu,in_icu,"
          "needed_supplemental_O2,extubated,temperature,pO2_saturation,leukocyte_count,neutrophil_count,"
          "lymphocyte_count,view,modality,date,location,folder,filename,doi,url,license,clinical_notes,"
          "other_notes,")
COLUMNS = HEADER.rstrip(",").split(",")
NOTES = 'A 65-year-old man, with fever, cough and "ground glass"\nopacities; admitted on day 3.'


def _row(pid, finding, view, filename, *, sex="M", age="60", modality="X-ray", folder="images",
         location="Hospital A, Rome, Italy", offset="0", license="CC BY-NC-SA", notes=NOTES):
    return {"patientid": pid, "offset": offset, "sex": sex, "age": age, "finding": finding, "view": view,
            "modality": modality, "date": "March 3, 2020", "location": location, "folder": folder,
            "filename": filename, "license": license, "clinical_notes": notes}


def _fake_rows() -> list[tuple[dict, bool]]:
    """(row, write its file?) - every rule of the plugin appears at least once."""
    rows = []
    for p in range(1, 9):  # patients 1..8: COVID-19, two frontal images each
        rows.append((_row(str(p), "COVID-19", "PA", f"covid-{p}-a.jpg", sex="MF"[p % 2], age=str(40 + p)), True))
        rows.append((_row(str(p), "COVID-19", "AP Supine" if p % 2 else "AP", f"covid-{p}-b.png", sex="MF"[p % 2],
                          age=str(40 + p), offset="4"), True))
    for p in (9, 10, 11, 12):  # normal
        rows.append((_row(str(p), "No Finding", "PA", f"normal-{p}.jpg", sex="F", location="Hospital B"), True))
    rows += [
        (_row("13", "Pneumonia", "PA", "pneumonia-13.jpeg", location="Hospital B"), True),
        (_row("14", "ARDS", "AP", "ards-14.jpg"), True),
        (_row("15", "Streptococcus", "PA", "strep-15.png"), True),
        (_row("15", "Streptococcus", "PA", "strep-15-b.png", folder=""), True),  # blank folder: images/
        (_row("16", "COVID-19, ARDS", "AP Supine", "covid-ards-16.jpg", sex="", age="", location=""), True),
        (_row("17", "Pneumocystis", "PA", "pcp-17.jpg", license=""), True),
        (_row("311a", "SARS", "PA", "sars-311a.jpg"), True),
        (_row("311b", "SARS", "PA", "sars-311b.jpg", sex="F"), True),  # another patient than 311a
        # left out:
        (_row("20", "COVID-19", "PA", "missing-20.jpg"), False),  # missing_file
        (_row("21", "COVID-19", "Axial", "ct-volume-21.nii.gz", modality="CT", folder="volumes"), False),  # missing
        (_row("2", "COVID-19", "Axial", "ct-2.jpg", modality="CT"), True),  # not_xray
        (_row("1", "COVID-19", "L", "lateral-1.jpg"), True),  # lateral
        (_row("3", "COVID-19", "", "noview-3.jpg"), True),  # view_unknown
        (_row("4", "COVID-19", "?", "qview-4.jpg"), True),  # view_unknown
        (_row("22", "COVID-19", "PA", "covid-3-a.jpg"), False),  # duplicate_file (patient 3's file)
        (_row("23", "todo", "PA", "todo-23.jpg"), True),  # todo
    ]
    return rows


def write_layout(folder: Path, extra: list[tuple[dict, bool]] = ()) -> Path:
    """<folder>/metadata.csv (the shipped header) and <folder>/images/*; returns ``folder``."""
    rng = np.random.default_rng(7)
    rows = _fake_rows() + list(extra)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row, _ in rows:
        writer.writerow([row.get(c, "") for c in COLUMNS] + [""])  # + the trailing comma's empty field
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "metadata.csv").write_text(HEADER + "\n" + buf.getvalue(), encoding="utf-8")
    for row, write in rows:
        if not write:
            continue
        path = folder / (row["folder"] or "images") / row["filename"]
        yy, xx = np.mgrid[0:40, 0:48]
        arr = np.clip(60 + 2 * xx + yy + rng.normal(0, 10, (40, 48)), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr, "L")
        if path.suffix == ".png":
            im.convert("RGBA").save(path)  # some of the real PNGs are RGB(A)
        else:
            im.convert("RGB").save(path, format="JPEG", quality=90)
    return folder


@pytest.fixture
def covid_root(tmp_path: Path) -> Path:
    """A data root holding covid-chestxray/ (as /work/shared/data does)."""
    write_layout(tmp_path / "data" / "covid-chestxray")
    return tmp_path / "data"


def _records(root, **options):
    ds = CovidChestXrayDataset(root, CovidChestXrayOptions(**options) if options else None)
    return ds, ds.records()


def test_fake_layout_rows_kept_and_left_out(covid_root):
    ds, recs = _records(covid_root)
    assert ds.left_out == {"missing_file": 2, "not_xray": 1, "lateral": 1, "view_unknown": 2,
                           "duplicate_file": 1, "todo": 1}
    assert tuple(ds.left_out) == LEFT_OUT_REASONS
    n_rows = len(_fake_rows())
    assert len(recs) + sum(ds.left_out.values()) == n_rows == ds.split_notes["rows"]  # quoted newlines: one row
    assert len(recs) == 28 and len({r.patient_id for r in recs}) == 19
    assert ds.split_notes["left_out"] == ds.left_out
    assert ds.split_notes["frontal_xray_rows_with_file"] == 30  # 28 kept + the duplicate + the todo
    keys = {r.key for r in recs}
    assert "images/strep-15-b.png" in keys  # blank folder -> images/
    assert not any(k.startswith(("images/missing", "images/lateral", "images/ct-", "images/todo", "images/noview",
                                 "images/qview")) for k in keys)
    by_key = {r.key: r for r in recs}
    assert by_key["images/covid-3-a.jpg"].patient_id == "3"  # the first row of a listed-twice file wins
    assert {"311a", "311b"} <= {r.patient_id for r in recs}
    for r in recs:
        assert Path(r.source).is_file()


def test_fake_layout_labels_follow_the_table(covid_root):
    _, recs = _records(covid_root)
    by_key = {r.key: r for r in recs}

    def lab(key):
        return tuple("nan" if math.isnan(v) else v for v in by_key[key].labels)

    assert lab("images/covid-1-a.jpg") == (1.0, 1.0)
    assert lab("images/covid-ards-16.jpg") == (1.0, 1.0)
    assert lab("images/normal-9.jpg") == (0.0, 0.0)
    assert lab("images/pneumonia-13.jpeg") == (1.0, "nan")
    assert lab("images/ards-14.jpg") == ("nan", "nan")
    assert lab("images/strep-15.png") == (1.0, 0.0)
    assert lab("images/pcp-17.jpg") == (1.0, 0.0)
    assert lab("images/sars-311a.jpg") == (1.0, 0.0)
    for r in recs:
        expected = FINDING_LABELS[r.metadata["finding"]][:2]
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(r.labels, expected))


def test_fake_layout_metadata(covid_root):
    ds, recs = _records(covid_root)
    assert ds.metadata_fields == ("sex", "age", "view", "site")
    by_key = {r.key: r for r in recs}
    m = by_key["images/covid-1-b.png"].metadata
    assert (m["sex"], m["age"], m["view"], m["offset"]) == ("F", 41, "AP Supine", 4)
    assert m["site"] == "Hospital A, Rome, Italy"
    assert m["license"] == "CC BY-NC-SA" and m["finding"] == "COVID-19"
    blank = by_key["images/covid-ards-16.jpg"].metadata
    assert blank["sex"] is None and blank["age"] is None and blank["site"] is None and blank["view"] == "AP Supine"
    assert by_key["images/pcp-17.jpg"].metadata["license"] is None
    assert {r.metadata["view"] for r in recs} == {"PA", "AP", "AP Supine"}
    assert {r.metadata["sex"] for r in recs} == {"M", "F", None}


def test_fake_layout_split_is_by_patient_and_deterministic(covid_root):
    ds, recs = _records(covid_root)
    where = {}
    for r in recs:
        where.setdefault(r.patient_id, set()).add(r.split)
    assert all(len(s) == 1 for s in where.values())
    assert {r.split for r in recs} == {"train", "val", "test"}
    again = [(r.key, r.split) for r in CovidChestXrayDataset(covid_root).records()]
    assert again == [(r.key, r.split) for r in recs]
    assert "test: all" in ds.split_notes["test"] and ds.split_notes["seed"] == 0
    other, _ = _records(covid_root, seed=3)
    assert other.split_notes["seed"] == 3


def test_root_may_be_the_collection_folder_itself(covid_root):
    _, a = _records(covid_root)
    _, b = _records(covid_root / "covid-chestxray")
    assert [(r.key, r.split, r.labels[0]) for r in a][:5] == [(r.key, r.split, r.labels[0]) for r in b][:5]
    assert len(a) == len(b)


def test_unknown_finding_is_a_one_line_error(tmp_path):
    new = _row("30", "Pneumonia/Viral/COVID-19", "PA", "new-30.jpg")
    folder = write_layout(tmp_path / "covid", extra=[(new, True)])
    with pytest.raises(DatasetError) as exc:
        CovidChestXrayDataset(folder).records()
    msg = str(exc.value)
    assert "\n" not in msg
    assert "'Pneumonia/Viral/COVID-19'" in msg and "'30'" in msg and "new-30.jpg" in msg
    assert f"data row {len(_fake_rows()) + 1}" in msg and "FINDING_LABELS" in msg


def test_unknown_finding_of_a_left_out_row_is_no_error(tmp_path):
    folder = write_layout(tmp_path / "covid", extra=[(_row("31", "Something new", "L", "new-31.jpg"), True)])
    ds = CovidChestXrayDataset(folder)
    ds.records()
    assert ds.left_out["lateral"] == 2


def test_missing_columns_and_bad_options(tmp_path):
    folder = tmp_path / "covid"
    folder.mkdir()
    (folder / "metadata.csv").write_text("patientid,finding,view\n1,COVID-19,PA\n")
    with pytest.raises(DatasetError, match="lacks column"):
        CovidChestXrayDataset(folder).records()
    with pytest.raises(ConfigError, match="test_fraction"):
        CovidChestXrayOptions(test_fraction=0.9, val_fraction=0.2)


def test_fake_layout_loads_through_the_harness(covid_root, tmp_path):
    ld = load_dataset(CovidChestXrayDataset(covid_root), size=32, cache_dir=tmp_path / "cache", progress=False)
    assert sum(len(s) for s in ld.splits().values()) == 28
    assert ld.train.images.shape[1:] == (1, 32, 32)
    assert ld.info["splits"]["left_out"]["todo"] == 1 and ld.info["skipped"]["count"] == 0
    assert set(ld.test.metadata) >= {"sex", "age", "view", "site"}


class TestCovidChestXrayContract(DatasetContractTests):
    dataset_name = "covid-chestxray"

    @pytest.fixture
    def dataset_root(self, covid_root):
        return covid_root


# --------------------------------------------------------------------------- the real snapshot


@pytest.fixture(scope="module")
def real_covid():
    ds = CovidChestXrayDataset(Path(DATA_ROOT))
    return ds, ds.records()


@needs_real_covid
def test_real_counts_match_the_readme(real_covid):
    ds, recs = real_covid
    notes = ds.split_notes
    assert notes["rows"] == 751
    assert notes["left_out"]["missing_file"] == 751 - 716  # 716 of 751 rows have their file
    # frontal X-rays with a file: 559 images of 329 patients (README), before duplicates and todo
    assert notes["frontal_xray_rows_with_file"] == 559 and notes["frontal_xray_patients_with_file"] == 329
    assert ds.left_out == {"missing_file": 35, "not_xray": 63, "lateral": 55, "view_unknown": 39,
                           "duplicate_file": 4, "todo": 28}
    assert len(recs) == 559 - 4 - 28 == 527
    assert len({r.patient_id for r in recs}) == 309
    assert len({r.key for r in recs}) == len(recs)
    findings = Counter(r.metadata["finding"] for r in recs)
    assert findings["COVID-19"] == 415 and findings["No Finding"] == 19 and findings["COVID-19, ARDS"] == 12
    assert findings["SARS"] == 16 and findings["Pneumocystis"] == 12 and findings["ARDS"] == 4
    assert "todo" not in findings


@needs_real_covid
def test_real_labels(real_covid):
    _, recs = real_covid

    def counts(j):
        v = [r.labels[j] for r in recs]
        return sum(x == 1.0 for x in v), sum(x == 0.0 for x in v), sum(math.isnan(x) for x in v)

    assert counts(0) == (504, 19, 4)  # pneumonia: positives, negatives (No Finding), masked (ARDS)
    assert counts(1) == (427, 86, 14)  # covid-19: masked = Pneumonia (cause not named) 10 + ARDS 4


@needs_real_covid
def test_real_metadata(real_covid):
    _, recs = real_covid
    assert Counter(r.metadata["view"] for r in recs) == {"PA": 293, "AP Supine": 132, "AP": 102}
    assert Counter(r.metadata["sex"] for r in recs) == {"M": 295, "F": 182, None: 50}
    assert sum(isinstance(r.metadata["age"], int) for r in recs) == 386
    assert all(r.metadata["age"] is None or 0 < r.metadata["age"] < 110 for r in recs)
    sites = Counter(r.metadata["site"] for r in recs if r.metadata["site"])
    assert sum(sites.values()) == 491 and len(sites) == 102  # a site for most images
    assert sites.most_common(1)[0] == ("Hannover Medical School, Hannover, Germany", 92)


@needs_real_covid
def test_real_split_is_patient_disjoint(real_covid):
    _, recs = real_covid
    where = {}
    for r in recs:
        where.setdefault(r.patient_id, set()).add(r.split)
    assert all(len(s) == 1 for s in where.values())
    assert {r.split for r in recs} == {"train", "val", "test"}
    # every split holds some negatives, so a test: test evaluation is possible too
    for split in ("train", "test"):
        assert any(r.labels[0] == 0.0 for r in recs if r.split == split)


@needs_real_covid
def test_real_loads_through_the_harness(tmp_path):
    ld = load_dataset(CovidChestXrayDataset(Path(DATA_ROOT)), size=32, cache_dir=tmp_path / "cache", progress=False)
    assert sum(ld.info["n"].values()) == 527 and ld.info["skipped"]["count"] == 0
    assert sum(ld.info["n_patients"].values()) == 309
    assert ld.info["splits"]["left_out"]["missing_file"] == 35
    assert ld.test.images.shape[1:] == (1, 32, 32)
    assert int(ld.test.images.float().std()) > 0


# --------------------------------------------------------------------------- NIH with empty metadata


@needs_real_nih
def test_real_nih_sample_with_empty_metadata_loads(tmp_path):
    from cxrbench.plugins.datasets.nih import NIH_LABELS, NIHChestXray14Dataset

    ld = load_dataset(NIHChestXray14Dataset(Path(DATA_ROOT)), size=32, cache_dir=tmp_path / "cache", progress=False)
    splits = ld.splits().values()
    assert sum(len(s) for s in splits) == 427
    assert len({p for s in splits for p in s.patient_ids}) == 130
    for s in splits:
        for field in ("age", "sex", "view"):
            assert set(s.metadata[field]) == {None}
    cols = [NIH_LABELS.index(n) for n in ("Pneumonia", "Consolidation", "Infiltration")]
    union = sum(int((s.labels[:, cols] == 1).any(dim=1).sum()) for s in splits)
    assert union == 85
