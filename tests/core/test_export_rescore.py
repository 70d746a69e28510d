"""Results out (issue #32): export rows, `show --format`, the record schema, and `rescore`.

One real tiny classification run (embedded phantom, tiny-cnn, 16 px, real-only and noise under
synthetic-only.v2, 2 seeds, bootstrap 30, an external phantom population and two subgroup
fields) and one tiny segmentation run; every number checked here is read back from the
records the runner wrote, and rescoring recomputes them from the stored predictions."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cxrbench.cli import main
from cxrbench.config import spec_from_data
from cxrbench.export import COLUMNS, columns_markdown, export_rows, flatten_record, ordered_columns
from cxrbench.record_schema import (
    SUPPORTED_KEYWORDS, RecordSchemaError, jsonschema_available, load_schema, schema_keywords, validate_record,
)
from cxrbench.rescore import rescore_run
from cxrbench.store import RunStore, seal

REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "results-out", "size": 16, "classifier": {"name": "tiny-cnn"},
    "dataset": {"name": "phantom", "options": {"n_train": 120, "n_val": 40, "n_test": 60}},
    "external": [{"name": "phantom", "options": {"n_train": 30, "n_val": 10, "n_test": 40, "seed": 9,
                                                 "prevalence": 0.3}, "test": "all"}],
    "generators": [{"name": "noise"}],
    "protocols": [{"name": "real-only", "schedule": "quick"},
                  {"name": "synthetic-only.v2", "ratios": [1], "schedule": "quick"}],
    "seeds": [0, 1],
    "quality": {"enabled": False},
    "evaluation": {"bootstrap_resamples": 30, "subgroups": ["sex", "age_band"],
                   "subgroup_min_positives": 3, "subgroup_min_negatives": 3},
}
SEG_SPEC = {
    "name": "results-out-seg", "size": 32, "task": "segmentation", "segmenter": {"name": "tiny-unet"},
    "dataset": {"name": "phantom", "options": {"n_train": 32, "n_val": 12, "n_test": 20}},
    "generators": [{"name": "noise"}],
    "protocols": [{"name": "real-only", "schedule": "budget-quick"},
                  {"name": "supplemented", "ratios": [1], "schedule": "budget-quick"}],
    "quality": {"enabled": False}, "evaluation": {"bootstrap_resamples": 30},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real run folder (read-only for the tests: copy before rescoring)."""
    from cxrbench.runner import Runner

    out = tmp_path_factory.mktemp("results-out") / "run"
    summary = Runner(spec_from_data(SPEC, "results-out.yaml"), out=out, cache_dir=out.parent / "cache",
                     device="cpu", progress=False).run()
    assert not summary.failed and len(summary.ok) == 4, summary
    return out


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory) -> Path:
    from cxrbench.protocols import _SCHEDULES_V1
    from cxrbench.runner import Runner

    out = tmp_path_factory.mktemp("results-out-seg") / "run"
    saved = dict(_SCHEDULES_V1["budget-quick"])
    _SCHEDULES_V1["budget-quick"].update(steps=30, eval_rounds=2, warmup_steps=3, batch_size=16)
    try:
        summary = Runner(spec_from_data(SEG_SPEC, "seg.yaml"), out=out, cache_dir=out.parent / "cache",
                         device="cpu", progress=False).run()
    finally:
        _SCHEDULES_V1["budget-quick"].clear()
        _SCHEDULES_V1["budget-quick"].update(saved)
    assert not summary.failed and len(summary.ok) == 2, summary
    return out


def _records(folder: Path) -> list[dict]:
    records, problems = RunStore(folder).checked_records()
    assert not problems
    return records


def _copy(folder: Path, tmp_path: Path) -> Path:
    dest = tmp_path / folder.name
    shutil.copytree(folder, dest)
    return dest


def _record_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "cells").glob("*.json"))}


def _failed(rec: dict, message: str) -> dict:
    out = {k: v for k, v in rec.items() if k not in ("metrics", "comparisons", "generator", "artifacts", "thresholds",
                                                     "training_set", "classifier", "transfer", "subgroups", "digest")}
    out.update(status="failed", error={"type": "RuntimeError", "message": message, "traceback": "", "cause": None})
    return out


# --------------------------------------------------------------------------- export


def test_export_rows_hold_the_records_numbers(run, tmp_path):
    records = _records(run)
    csv = tmp_path / "cells.csv"
    assert main(["export", str(run), "--format", "csv", "--out", str(csv)]) == 0
    df = pd.read_csv(csv)
    assert len(df) == sum(len(r["metrics"]) for r in records) == 8  # 4 cells x (internal + external)
    assert list(df.columns) == ordered_columns(df.to_dict("records"))
    for rec in records:
        for tname, m in rec["metrics"].items():
            row = df[(df.cell_id == rec["cell_id"]) & (df.test_set == tname)]
            assert len(row) == 1
            row = row.iloc[0]
            macro, label = m["macro"], m["labels"]["pneumonia"]
            assert row["auroc"] == pytest.approx(macro["auroc"], abs=1e-12)
            assert (row["auroc_ci_low"], row["auroc_ci_high"]) == pytest.approx(tuple(macro["auroc_ci"]), abs=1e-12)
            assert row["aupr"] == pytest.approx(macro["aupr"], abs=1e-12)
            assert row["auroc[pneumonia]"] == pytest.approx(label["auroc"], abs=1e-12)
            assert row["threshold[pneumonia]"] == pytest.approx(rec["thresholds"][0], abs=1e-12)
            assert row["sensitivity[pneumonia]"] == pytest.approx(label["sensitivity"], abs=1e-12)
            assert row["bootstrap_resamples"] == 30 and row["seed"] == rec["cell"]["seed"]
            assert row["task"] == "classification" and row["model"] == "tiny-cnn" and row["status"] == "ok"
            assert row["steps"] == rec["classifier"]["steps"] and row["images_seen"] == rec["classifier"]["images_seen"]
            comp = (rec.get("comparisons") or {}).get(tname)
            if comp:
                assert row["delta_auroc_vs_real_only"] == pytest.approx(comp["labels"]["pneumonia"]["delta"], abs=1e-12)
                assert row["p_vs_real_only"] == pytest.approx(comp["labels"]["pneumonia"]["p_value"], abs=1e-12)
                assert row["baseline_cell_id"] == comp["baseline"]
            else:
                assert rec["cell"]["protocol"] == "real-only.v1" and pd.isna(row["delta_auroc_vs_real_only"])
            transfer = (rec.get("transfer") or {}).get(tname)
            if transfer:
                assert row["transfer_gap"] == pytest.approx(transfer["gap"], abs=1e-12)
            if rec["generator"]:
                assert row["fit_key"] == rec["generator"]["fit_key"] and row["generator_plugin"] == "noise"


def test_every_column_is_documented_and_the_docs_file_is_up_to_date(run):
    rows, _ = export_rows([run])
    documented = {name for name, _, _ in COLUMNS}
    templates = {name.split("[")[0] for name in documented if name.endswith("[<label>]")}
    for key in {k for row in rows for k in row}:
        assert key in documented or (key.endswith("]") and key.split("[")[0] in templates), key
    docs = REPO / "docs" / "export-columns.md"
    assert docs.read_text() == columns_markdown(), (
        "docs/export-columns.md is out of date: python -m cxrbench.export --docs docs/export-columns.md")


def test_a_failed_cell_is_one_row_with_its_error(run):
    rec = _failed(_records(run)[0], "simulated failure\nsecond line")
    rows = flatten_record(seal(rec), run)
    assert len(rows) == 1
    assert rows[0]["status"] == "failed" and rows[0]["test_set"] is None and rows[0].get("auroc") is None
    assert rows[0]["error"] == "RuntimeError: simulated failure\nsecond line"


def test_parquet_export(run, tmp_path):
    from cxrbench.export import parquet_engine

    if parquet_engine() is None:
        pytest.skip("parquet needs pyarrow or fastparquet, not installed here: pip install pyarrow")
    out = tmp_path / "cells.parquet"
    assert main(["export", str(run), "--format", "parquet", "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 8 and "auroc[pneumonia]" in df.columns


def test_parquet_without_an_engine_is_one_line_naming_pip_install(run, tmp_path, monkeypatch, capsys):
    import cxrbench.export as export

    monkeypatch.setattr(export, "parquet_engine", lambda: None)
    assert main(["export", str(run), "--format", "parquet", "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install pyarrow" in err
    assert not (tmp_path / "x.parquet").exists()


# --------------------------------------------------------------------------- show --format


def test_show_json_has_the_per_seed_and_over_seed_rows(run, capsys):
    assert main(["show", str(run), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"run", "rows", "aggregates", "problems"} and doc["problems"] == []
    assert len(doc["rows"]) == 8
    assert {r["generator"] for r in doc["rows"]} == {"-", "noise"}
    over = [a for a in doc["aggregates"] if a["generator"] == "noise" and a["test_set"] == "phantom:test"]
    assert len(over) == 1 and over[0]["seeds"] == [0, 1]
    per_seed = sorted(r["auroc"] for r in doc["rows"] if r["generator"] == "noise" and r["test_set"] == "phantom:test")
    assert sorted(over[0]["metrics"]["auroc"]["per_seed"]) == pytest.approx(per_seed)


def test_show_csv_and_markdown(run, capsys):
    import io

    assert main(["show", str(run), "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(df) == 8 and df["auroc"].notna().all()
    assert main(["show", str(run), "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "| protocol" in text and "|---" in text.replace(":", "-") and "Over seeds" in text
    assert text.count("| synthetic-only.v2") >= 4
    assert main(["show", str(run)]) == 0  # the table stays the default
    assert "AUROC [95% CI]" in capsys.readouterr().out


# --------------------------------------------------------------------------- the record schema


def test_the_schema_accepts_every_record_of_the_runs(run, seg_run):
    for rec in _records(run) + _records(seg_run):
        assert validate_record(rec) == [], rec["cell_id"]
        if jsonschema_available():  # the built-in validator agrees with the reference implementation
            assert validate_record(rec, engine="jsonschema") == [], rec["cell_id"]
    assert validate_record(seal(_failed(_records(run)[0], "boom"))) == []


def test_the_schema_rejects_a_missing_metrics_or_a_wrong_type_in_one_line_naming_the_path(run):
    rec = _records(run)[0]
    missing = copy.deepcopy(rec)
    del missing["metrics"]
    assert validate_record(missing) == ["/metrics: missing (required)"]
    wrong = copy.deepcopy(rec)
    wrong["cell"]["seed"] = "0"
    assert validate_record(wrong) == ['/cell/seed: expected integer, got string ("0")']
    tname = next(iter(rec["metrics"]))
    wrong = copy.deepcopy(rec)
    wrong["metrics"][tname]["macro"]["auroc"] = "high"
    (problem,) = validate_record(wrong)
    assert problem.startswith(f"/metrics/{tname}/macro/auroc: expected number or null")
    failed = _failed(rec, "boom")
    del failed["error"]
    assert validate_record(failed) == ["/error: missing (required)"]
    if jsonschema_available():
        assert len(validate_record(missing, engine="jsonschema")) == 1


def test_the_schema_uses_only_what_the_builtin_validator_implements_and_ships_with_the_package():
    assert schema_keywords(load_schema()) <= SUPPORTED_KEYWORDS
    assert load_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert '"record.schema.json"' in (REPO / "pyproject.toml").read_text()


def test_the_store_checks_records_when_asked(run, tmp_path, monkeypatch):
    rec = copy.deepcopy(_records(run)[0])
    del rec["metrics"]
    store = RunStore(tmp_path / "out")
    monkeypatch.setenv("CXRBENCH_CHECK_RECORDS", "1")
    with pytest.raises(RecordSchemaError, match="/metrics: missing"):
        store.write(rec["cell_id"], rec)
    assert not store.record_path(rec["cell_id"]).exists()
    monkeypatch.setenv("CXRBENCH_CHECK_RECORDS", "0")
    store.write(rec["cell_id"], rec)  # written as before when the check is off
    assert store.record_path(rec["cell_id"]).is_file()


# --------------------------------------------------------------------------- rescore


def test_rescore_with_the_same_settings_changes_nothing(run, tmp_path, capsys):
    folder = _copy(run, tmp_path)
    before = _record_bytes(folder)
    for rec in _records(folder):  # every section rescore recomputes is there to compare
        assert rec["transfer"]["phantom-ext1:all"]["gap_ci"] and rec["subgroups"]["phantom:test"]["fields"]
        assert rec["cell"]["protocol"] == "real-only.v1" or rec["comparisons"]["phantom:test"]["labels"]
    assert main(["rescore", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count(": unchanged") == 4, out
    assert "4 cell(s) rescored: 0 changed, 4 unchanged" in out
    assert _record_bytes(folder) == before


def test_rescore_with_more_resamples_changes_cis_not_point_estimates(run, tmp_path, capsys):
    folder = _copy(run, tmp_path)
    old = {r["cell_id"]: r for r in _records(folder)}
    before = _record_bytes(folder)
    assert main(["rescore", str(folder), "--bootstrap", "200", "--dry-run"]) == 0
    assert "(dry run: nothing written)" in capsys.readouterr().out
    assert _record_bytes(folder) == before

    assert main(["rescore", str(folder), "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "(bootstrap 30 -> 200)" in out and "4 changed" in out and "re-sealed" in out
    new = {r["cell_id"]: r for r in _records(folder)}  # every digest verifies
    for cell_id, rec in new.items():
        assert validate_record(rec) == []
        (entry,) = rec["rescored_from"]
        assert entry["date"] and entry["settings_before"]["bootstrap_resamples"] == [30]
        assert entry["settings_after"]["bootstrap_resamples"] == [200]
        assert entry["values"]["metrics"] == old[cell_id]["metrics"]
        for tname, m in rec["metrics"].items():
            was = old[cell_id]["metrics"][tname]
            assert m["macro"]["auroc"] == pytest.approx(was["macro"]["auroc"], abs=1e-12)
            assert m["macro"]["auroc_ci"] != was["macro"]["auroc_ci"]
            assert m["meta"]["n_resamples"] == 200
        assert rec["comparisons"] == old[cell_id]["comparisons"]  # DeLong: no bootstrap
        assert rec["thresholds"] == old[cell_id]["thresholds"]
        if rec.get("transfer"):
            t = next(iter(rec["transfer"].values()))
            assert t["n_resamples"] == 200
            assert t["gap"] == pytest.approx(next(iter(old[cell_id]["transfer"].values()))["gap"], abs=1e-12)
    assert main(["show", str(folder)]) == 0
    shown = capsys.readouterr().out
    assert "NOT SHOWN" not in shown and "noise" in shown
    rows, problems = export_rows([folder])
    assert not problems and all(r["rescored"] for r in rows)
    # once more with the same count: nothing left to change
    assert main(["rescore", str(folder), "--bootstrap", "200"]) == 0
    assert "0 changed, 4 unchanged" in capsys.readouterr().out


def test_rescore_cannot_rechoose_thresholds_without_tuning_scores(run, tmp_path, capsys):
    """Records made before the runner stored tuning-set scores keep their thresholds, said once."""
    folder = _copy(run, tmp_path)
    for rec in _records(folder):
        rec = {k: v for k, v in rec.items() if k != "digest"}
        rec["artifacts"] = {k: v for k, v in rec["artifacts"].items() if k != "tuning_predictions"}
        RunStore(folder).write(rec["cell_id"], rec)
    before = _record_bytes(folder)
    assert main(["rescore", str(folder), "--threshold", "f1"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "tuning-set scores" in line]
    assert len(lines) == 1 and "--threshold f1: 4 cell(s)" in lines[0] and "kept" in lines[0]
    assert _record_bytes(folder) == before


def test_the_stored_tuning_scores_are_the_ones_the_thresholds_came_from(run):
    """Every classification cell stores its tuning-set scores (real validation split, or the
    synthetic tuning slice under synthetic-only.v2); the recorded rule applied to them gives the
    recorded thresholds exactly."""
    from cxrbench.cell_evaluation import tuned_thresholds
    from cxrbench.rescore import read_classification

    records = _records(run)
    assert records
    for rec in records:
        path = Path(rec["artifacts"]["tuning_predictions"])
        assert path.is_file() and path.parent.name == rec["cell_id"]
        names, scores, labels, split = read_classification(path)
        assert len(split.keys) == len(scores) > 0
        rule = ((rec.get("spec") or {}).get("evaluation") or {}).get("threshold", "youden")
        assert tuned_thresholds(scores, labels, rule) == rec["thresholds"]
        if rec["cell"]["protocol"] == "synthetic-only.v2":
            assert split.keys[0].startswith("syn-tune-")


def test_rescore_rechooses_thresholds_from_stored_tuning_scores(run, tmp_path):
    """With the stored tuning-set scores every cell gets its thresholds re-chosen by the new
    rule, the values the rule gives on that file."""
    from cxrbench.cell_evaluation import tuned_thresholds
    from cxrbench.rescore import read_classification

    folder = _copy(run, tmp_path)
    report = rescore_run(folder, threshold="f1", dry_run=True)
    assert "tuning-set scores" not in "\n".join(report.lines)
    rescore_run(folder, threshold="f1")
    for rec in _records(folder):
        _, scores, labels, _ = read_classification(folder / "cells" / rec["cell_id"] / "tuning-predictions.csv")
        assert rec["thresholds"] == pytest.approx(tuned_thresholds(scores, labels, "f1"), abs=1e-12)


def test_a_failed_cell_is_skipped_by_rescore(run, tmp_path):
    folder = _copy(run, tmp_path)
    rec = _failed(_records(folder)[0], "boom")
    (folder / "cells" / f"{rec['cell_id']}.json").write_text(json.dumps(seal(rec)))
    report = rescore_run(folder)
    assert report.skipped_failed == 1 and len(report.unchanged) == 3
    assert "1 failed cell(s) skipped" in report.lines[-1]


def test_rescore_a_segmentation_run(seg_run, tmp_path, capsys):
    folder = _copy(seg_run, tmp_path)
    before = _record_bytes(folder)
    assert main(["rescore", str(folder)]) == 0
    assert "0 changed, 2 unchanged" in capsys.readouterr().out
    assert _record_bytes(folder) == before
    old = {r["cell_id"]: r for r in _records(folder)}
    assert main(["rescore", str(folder), "--bootstrap", "80"]) == 0
    out = capsys.readouterr().out
    assert "Dice" in out and "(bootstrap 30 -> 80)" in out
    for rec in _records(folder):
        (tname, m), = rec["metrics"].items()
        was = old[rec["cell_id"]]["metrics"][tname]["macro"]
        assert m["macro"]["dice"] == pytest.approx(was["dice"], abs=1e-12)
        assert m["macro"]["hd95"] == pytest.approx(was["hd95"], abs=1e-12)
        assert m["macro"]["dice_ci"] != was["dice_ci"] and m["meta"]["n_resamples"] == 80
        if rec.get("comparisons"):
            assert next(iter(rec["comparisons"].values()))["n_resamples"] == 80
    rows, _ = export_rows([folder])
    assert {r["task"] for r in rows} == {"segmentation"} and all(r["dice"] is not None for r in rows)


@pytest.mark.parametrize("which", ["run", "seg_run"])
def test_rescore_adds_the_comparison_a_cell_missed_by_finishing_before_its_baseline(which, request, tmp_path,
                                                                                       capsys):
    """A cell that ran before its real-only baseline has no comparison (the published jsrt-seg
    ldm synthetic-only row did); once the baseline is in the run, rescoring adds it, equal to
    what the runner computes when the baseline comes first."""
    folder = _copy(request.getfixturevalue(which), tmp_path)
    store = RunStore(folder)
    target = next(r for r in _records(folder) if r["cell"]["generator"])
    stripped = {k: v for k, v in target.items() if k != "digest"}
    stripped["comparisons"] = {}
    store.write(target["cell_id"], stripped)
    assert main(["rescore", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{target['cell_id']}: comparisons added on" in out and "1 changed" in out, out
    again = store.load(target["cell_id"])
    assert again["comparisons"].keys() == target["comparisons"].keys()
    for tname, comp in target["comparisons"].items():
        got = again["comparisons"][tname]
        assert got["baseline"] == comp["baseline"] and "_added" not in got
        assert json.dumps(got, sort_keys=True) == json.dumps(comp, sort_keys=True)  # the runner's numbers
    assert again["rescored_from"][-1]["values"]["comparisons"] == {}
    assert main(["rescore", str(folder)]) == 0  # and nothing more to add
    assert "1 changed" not in capsys.readouterr().out


def test_rescore_adds_nothing_when_the_baseline_is_not_in_the_run(run, tmp_path, capsys):
    folder = _copy(run, tmp_path)
    store = RunStore(folder)
    records = _records(folder)
    target = next(r for r in records if r["cell"]["generator"])
    stripped = {k: v for k, v in target.items() if k != "digest"}
    stripped["comparisons"] = {}
    store.write(target["cell_id"], stripped)
    for rec in records:
        if not rec["cell"]["generator"]:
            (folder / "cells" / f"{rec['cell_id']}.json").unlink()
    assert main(["rescore", str(folder)]) == 0
    assert "comparisons added" not in capsys.readouterr().out
    assert store.load(target["cell_id"])["comparisons"] == {}


def test_rescore_finds_the_partner_the_runner_compared_with_in_every_published_record():
    """The partner rule is the runner's (Cell.baseline / Cell.noise_control on the rebuilt cell):
    on every comparison of every committed leaderboard, including a generator with its own
    post-processing chain (kermany-small's ldm-proxy-filter), it names the cell the runner used."""
    from cxrbench.rescore import _partner_id

    checked = 0
    for folder in sorted((REPO / "leaderboard").glob("*/records/*")):
        records = [json.loads(p.read_text()) for p in sorted((folder / "cells").glob("*.json"))]
        ids = {r["cell_id"] for r in records if r.get("status") == "ok"}
        for rec in records:
            for section in ("comparisons", "vs_noise_control"):
                for tname, comp in (rec.get(section) or {}).items():
                    if comp:
                        assert _partner_id(rec, ids, section) == comp["baseline"], (rec["cell_id"], section, tname)
                        checked += 1
    if not checked:
        pytest.skip("no published leaderboard with comparisons")
