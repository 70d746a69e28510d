"""External validity and subgroups end to end (issue #30): a real run on the embedded phantom
with a second phantom population as the external set, then the leaderboard's external section.

Every number the record and the page show is recomputed here from the predictions files the run
wrote, with scikit-learn / scipy as the references."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import roc_auc_score

from cxrbench.config import spec_from_data
from cxrbench.runner import Runner

SPEC = {
    "name": "shift", "size": 16, "classifier": {"name": "tiny-cnn"},
    "dataset": {"name": "phantom", "options": {"n_train": 120, "n_val": 40, "n_test": 80, "seed": 1}},
    # another population: other patients, another prevalence; every image is a test image
    "external": [{"name": "phantom", "options": {"n_train": 60, "n_val": 20, "n_test": 80, "seed": 9,
                                                 "prevalence": 0.3}, "test": "all"}],
    "generators": [{"name": "noise"}, {"name": "real"},
                   {"name": "noise", "label": "white-noise", "options": {"smoothness": 0.0}}],
    "protocols": [{"name": "real-only", "schedule": "quick"},
                  {"name": "synthetic-only.v2", "ratios": [1], "schedule": "quick"}],
    "quality": {"enabled": False},
    "evaluation": {"bootstrap_resamples": 50, "subgroups": ["sex", "age_band", "view"],
                   "subgroup_min_positives": 3, "subgroup_min_negatives": 3},
}
INTERNAL, EXTERNAL = "phantom:test", "phantom-ext1:all"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shift") / "run"
    summary = Runner(spec_from_data(SPEC, "shift.yaml"), out=out, cache_dir=out.parent / "cache", device="cpu",
                     progress=False).run()
    assert not summary.failed, summary
    return out


def _records(run: Path) -> dict[str, dict]:
    recs = {}
    for p in sorted((run / "cells").glob("*.json")):
        rec = json.loads(p.read_text())
        gen = rec["cell"].get("generator") or {}
        recs[gen.get("label") or gen.get("name") or "real-only"] = rec
    return recs


def _predictions(rec: dict, tname: str) -> pd.DataFrame:
    return pd.read_csv(rec["artifacts"]["predictions"][tname])


def _auc(df: pd.DataFrame) -> float:
    return roc_auc_score(df["true_pneumonia"], df["score_pneumonia"])


def test_the_transfer_gap_is_external_minus_internal_and_relative_to_real_only(run):
    recs = _records(run)
    assert set(recs) == {"real-only", "noise", "real", "white-noise"}
    base = recs["real-only"]
    base_gap = _auc(_predictions(base, EXTERNAL)) - _auc(_predictions(base, INTERNAL))
    assert base["transfer"][EXTERNAL]["gap"] == pytest.approx(base_gap, abs=1e-12)
    assert base["transfer"][EXTERNAL]["gap_vs_baseline"] is None  # real-only is the baseline itself
    for name in ("noise", "real", "white-noise"):
        t = recs[name]["transfer"][EXTERNAL]
        gap = _auc(_predictions(recs[name], EXTERNAL)) - _auc(_predictions(recs[name], INTERNAL))
        assert t["gap"] == pytest.approx(gap, abs=1e-12)
        assert t["gap_vs_baseline"] == pytest.approx(gap - base_gap, abs=1e-12)
        assert t["baseline"] == base["cell_id"] and t["internal"] == INTERNAL
        lo, hi = t["gap_ci"]
        assert lo <= hi and t["n_resamples"] == 50


def test_subgroup_metrics_match_a_hand_computation_from_the_predictions(run):
    rec = _records(run)["real-only"]
    thr = rec["thresholds"][0]
    for tname in (INTERNAL, EXTERNAL):
        section = rec["subgroups"][tname]
        assert section["fields"] == ["sex", "age_band", "view"] and section["not_available"] == []
        df = _predictions(rec, tname)
        report = section["labels"]["pneumonia"]["sex"]
        for sex, entry in report["groups"].items():
            part = df[df["meta_sex"] == sex]
            y, s = part["true_pneumonia"].to_numpy(), part["score_pneumonia"].to_numpy()
            assert entry["n"] == len(part) and entry["n_pos"] == int(y.sum())
            pos, neg = y == 1, y == 0
            if entry["fnr"] is not None:
                assert entry["fnr"] == pytest.approx(float((s[pos] < thr).mean()), abs=1e-12)
            if entry["fpr"] is not None:
                assert entry["fpr"] == pytest.approx(float((s[neg] >= thr).mean()), abs=1e-12)
            if entry["auroc"] is not None:
                assert entry["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
            else:
                assert entry["too_few"]  # withheld, never a number
        shown = [e["auroc"] for e in report["groups"].values() if e["auroc"] is not None]
        if len(shown) >= 2:
            assert report["gaps"]["auroc"]["gap"] == pytest.approx(max(shown) - min(shown), abs=1e-12)


def test_the_leaderboard_shows_transfer_references_tau_and_subgroups(run, tmp_path):
    from cxrbench.leaderboard import build_leaderboard
    from cxrbench.store import seal

    folder = tmp_path / "run"
    import shutil

    shutil.copytree(run, folder)
    for p in (folder / "cells").glob("*.json"):  # records of a run are sealed already; re-seal is a no-op
        p.write_text(json.dumps(seal(json.loads(p.read_text())), indent=2, sort_keys=True) + "\n")
    for p in (folder / "cells").glob("*.json"):  # the predictions must be found beside the copied records
        rec = json.loads(p.read_text())
        rec["artifacts"]["predictions"] = {k: f"/nowhere/{Path(v).name}" for k, v in rec["artifacts"]["predictions"].items()}
        p.write_text(json.dumps(seal(rec), indent=2, sort_keys=True) + "\n")
    summary = build_leaderboard([folder], tmp_path / "lb")
    assert "external.md" in summary["files"] and "plots/subgroups.png" in summary["files"]
    text = (tmp_path / "lb" / "external.md").read_text()
    recs = _records(folder)
    # the floor and ceiling of the EXTERNAL set, measured on it
    floor = recs["noise"]["metrics"][EXTERNAL]["macro"]["auroc"]
    ceiling = recs["real"]["metrics"][EXTERNAL]["macro"]["auroc"]
    assert f"synthetic-only.v2 r = 1: floor (noise) {floor:.3f}, ceiling (real) {ceiling:.3f} on this set" in text
    # Kendall's tau over the three generator rows, against scipy on the records' AUROCs
    names = ["noise", "real", "white-noise"]
    internal = [recs[n]["metrics"][INTERNAL]["macro"]["auroc"] for n in names]
    external = [recs[n]["metrics"][EXTERNAL]["macro"]["auroc"] for n in names]
    tau = kendalltau(internal, external).statistic
    assert f"Kendall's tau {tau:+.2f}" in text
    assert "## Subgroups" in text and "by sex" in text
    html = (tmp_path / "lb" / "index.html").read_text()
    assert 'id="external"' in html and 'id="subgroups"' in html
    # the main table's utility uses the external set's own floor and ceiling
    table = pd.read_csv(tmp_path / "lb" / "leaderboard.csv")
    row = table[(table["generator"] == "white-noise") & (table["test_set"] == EXTERNAL)].iloc[0]
    value = recs["white-noise"]["metrics"][EXTERNAL]["macro"]["auroc"]
    assert (row["floor"], row["ceiling"]) == (pytest.approx(floor, abs=1e-9), pytest.approx(ceiling, abs=1e-9))
    if ceiling > floor:
        assert row["utility_ratio"] == pytest.approx((value - floor) / (ceiling - floor), abs=1e-9)
    else:  # a tiny phantom model may not beat its noise floor: then there is no scale to read on
        assert pd.isna(row["utility_ratio"])
    assert row["reference"] != "floor"  # a relabelled noise variant is a generator row, not the floor


def test_too_few_is_shown_instead_of_a_number(run):
    rec = _records(run)["real-only"]
    reports = [r for s in rec["subgroups"].values() for r in s["labels"]["pneumonia"].values()]
    entries = [e for r in reports for e in r["groups"].values()]
    for e in entries:
        if e["n_pos"] < 3:
            assert e["fnr"] is None and e["auroc"] is None
        if e["n_neg"] < 3:
            assert e["fpr"] is None and e["auroc"] is None


def test_subgroup_settings_are_checked_and_do_not_change_old_cell_ids():
    from cxrbench.errors import ConfigError
    from cxrbench.runner import evaluation_key

    spec = spec_from_data({**SPEC, "evaluation": {"bootstrap_resamples": 50}}, "s.yaml")
    assert evaluation_key(spec.evaluation) == {"bootstrap_resamples": 50, "confidence": 0.95, "threshold": "youden"}
    with pytest.raises(ConfigError, match=r"evaluation.age_bands: \[40, 18\] must be increasing"):
        spec_from_data({**SPEC, "evaluation": {"subgroups": ["sex"], "age_bands": [40, 18]}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"evaluation.subgroups: \['sex', 'sex'\] names a field twice"):
        spec_from_data({**SPEC, "evaluation": {"subgroups": ["sex", "sex"]}}, "s.yaml")


def test_a_gap_narrowed_by_a_lower_internal_score_is_said_to_be_that():
    """gap vs real-only = (external - real-only's external) - (internal - real-only's internal): a
    model worse at home narrows it too. The reading splits the two parts and names the cause."""
    from cxrbench.external_validity import _narrowing_source

    base = {"internal": {"mean": 0.937}, "external": {"mean": 0.574}}
    worse_at_home = {"internal": {"mean": 0.862}, "external": {"mean": 0.639}}
    text = _narrowing_source(worse_at_home, base)
    assert "external AUROC +0.065 and internal -0.075 against real-only" in text
    assert "lower score at home, not better transfer" in text
    better_abroad = {"internal": {"mean": 0.930}, "external": {"mean": 0.650}}
    text = _narrowing_source(better_abroad, base)
    assert "external AUROC +0.076 and internal -0.007" in text and "not better transfer" not in text
    assert _narrowing_source(worse_at_home, None) == ""
