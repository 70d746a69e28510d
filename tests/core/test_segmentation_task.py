"""The segmentation task end to end (issue #31) on the embedded phantom, whose images have lung
masks: image-mask pairs from the reference generators, a tiny U-Net under a steps budget, Dice
on the real test masks, recomputed here from the files the run wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrbench.config import spec_from_data
from cxrbench.spec_validation import validate_plugins
from cxrbench.errors import ConfigError

SPEC = {
    "name": "seg", "size": 32, "task": "segmentation", "segmenter": {"name": "tiny-unet"},
    "dataset": {"name": "phantom", "options": {"n_train": 48, "n_val": 16, "n_test": 24}},
    "generators": [{"name": "noise"}, {"name": "real"}],
    "protocols": [{"name": "real-only", "schedule": "budget-quick"},
                  {"name": "supplemented", "ratios": [1], "schedule": "budget-quick"},
                  {"name": "synthetic-only.v2", "ratios": [1], "schedule": "budget-quick"}],
    "quality": {"enabled": False}, "evaluation": {"bootstrap_resamples": 50},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from cxrbench.protocols import _SCHEDULES_V1
    from cxrbench.runner import Runner

    out = tmp_path_factory.mktemp("seg") / "run"
    spec = spec_from_data(SPEC, "seg.yaml")
    validate_plugins(spec, "seg.yaml")
    # a short budget for the test: every protocol gets the same one (the rule under test)
    short = {**_SCHEDULES_V1["budget-quick"], "steps": 60, "eval_rounds": 3, "warmup_steps": 5, "batch_size": 16}
    saved = dict(_SCHEDULES_V1["budget-quick"])
    _SCHEDULES_V1["budget-quick"].update(short)
    try:
        summary = Runner(spec, out=out, cache_dir=out.parent / "cache", device="cpu", progress=False).run()
    finally:
        _SCHEDULES_V1["budget-quick"].clear()
        _SCHEDULES_V1["budget-quick"].update(saved)
    assert not summary.failed, summary
    return out


def _records(run: Path) -> dict[tuple, dict]:
    out = {}
    for p in sorted((run / "cells").glob("*.json")):
        rec = json.loads(p.read_text())
        gen = (rec["cell"].get("generator") or {}).get("name", "-")
        out[(rec["cell"]["protocol"], gen)] = rec
    return out


def test_every_protocol_trains_a_segmenter_with_the_same_budget_and_scores_dice(run):
    recs = _records(run)
    assert set(recs) == {("real-only.v1", "-"), ("supplemented.v1", "noise"), ("supplemented.v1", "real"),
                         ("synthetic-only.v2", "noise"), ("synthetic-only.v2", "real")}
    steps = {r["segmenter"]["steps"] for r in recs.values()}
    seen = {r["segmenter"]["images_seen"] for r in recs.values()}
    assert steps == {60} and seen == {60 * 16}
    for rec in recs.values():
        assert "classifier" not in rec and rec["segmenter"]["name"] == "tiny-unet"
        m = rec["metrics"]["phantom:test"]
        assert set(m["classes"]) == {"lungs"} and 0.0 <= m["macro"]["dice"] <= 1.0
        lo, hi = m["macro"]["dice_ci"]
        assert lo <= m["macro"]["dice"] <= hi


def test_the_recorded_dice_is_the_mean_of_the_per_image_file(run):
    rec = _records(run)[("real-only.v1", "-")]
    df = pd.read_csv(rec["artifacts"]["predictions"]["phantom:test"])
    assert len(df) == 24
    assert rec["metrics"]["phantom:test"]["macro"]["dice"] == pytest.approx(df["dice"].mean(), abs=1e-9)
    masks = np.load(Path(rec["artifacts"]["predictions"]["phantom:test"]).with_name("masks-phantom-test.npz"))
    assert list(masks["keys"]) == df["key"].tolist()


def test_reference_pairs_are_real_masks_and_the_comparisons_are_paired(run):
    recs = _records(run)
    # the real generator's pairs are the real pairs: its drawn masks follow its images (adherence is a
    # positive control of the measure), the noise floor's masks are real masks on noise
    real = recs[("synthetic-only.v2", "real")]["generator"]["masks"]
    noise = recs[("synthetic-only.v2", "noise")]["generator"]["masks"]
    assert real["dice_own_mask"] > real["dice_random_pairing"]
    assert noise["dice_own_mask"] == pytest.approx(noise["dice_random_pairing"], abs=0.1)
    sup = recs[("supplemented.v1", "real")]
    cmp = sup["comparisons"]["phantom:test"]
    assert cmp["baseline"] == recs[("real-only.v1", "-")]["cell_id"]
    ours = pd.read_csv(sup["artifacts"]["predictions"]["phantom:test"])["dice"].mean()
    base = pd.read_csv(recs[("real-only.v1", "-")]["artifacts"]["predictions"]["phantom:test"])["dice"].mean()
    assert cmp["difference"] == pytest.approx(ours - base, abs=1e-9)
    assert "phantom:test" in sup["vs_noise_control"]  # the mandatory noise control, paired too


@pytest.mark.parametrize("change, message", [
    ({"segmenter": None}, r"segmenter: task: segmentation needs a segmenter"),
    ({"generators": [{"name": "ddpm"}]}, r"generators: 'ddpm' cannot draw an image for a given mask"),
    ({"protocols": [{"name": "real-only", "schedule": "quick"}]}, r"schedule 'quick' is epoch-defined"),
    ({"task": "classification"}, r"segmenter: applies to task: segmentation"),
    ({"postprocess": [{"name": "crop-border"}]}, r"postprocess\[0\]: post-processor 'crop-border' moves pixels"),
    ({"generators": [{"name": "real", "postprocess": [{"name": "resize-pad"}]}]}, r"'resize-pad' moves pixels"),
])
def test_segmentation_specs_are_checked(change, message):
    with pytest.raises(ConfigError, match=message):
        validate_plugins(spec_from_data({**SPEC, **change}, "seg.yaml"), "seg.yaml")


def test_the_leaderboard_has_a_segmentation_section_with_floor_and_ceiling(run, tmp_path):
    import shutil

    from cxrbench.leaderboard import build_leaderboard

    folder = tmp_path / "seg"
    shutil.copytree(run, folder)
    summary = build_leaderboard([folder], tmp_path / "lb")
    assert "segmentation.md" in summary["files"] and summary["rows"] == 0  # none in the AUROC table
    text = (tmp_path / "lb" / "segmentation.md").read_text()
    recs = _records(run)
    dice = recs[("supplemented.v1", "real")]["metrics"]["phantom:test"]["macro"]["dice"]
    floor = recs[("supplemented.v1", "noise")]["metrics"]["phantom:test"]["macro"]["dice"]
    assert f"| supplemented.v1   | real        | 1   | 0       | {dice:.3f} [" in text
    assert f"The floor (noise images, real masks) under supplemented.v1 r = 1: Dice {floor:.3f} [" in text
    page = (tmp_path / "lb" / "index.html").read_text()
    assert 'id="segmentation"' in page
    # no empty AUROC table, filters or AUROC notes on a leaderboard without classification cells
    body = page.split("<script>")[0]  # the inlined script's comments name both
    assert '<table id="leaderboard"' not in body and '<select data-filter="' not in body and "no AUROC table" in body
    main_md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "no AUROC table" in main_md and "| Generator" not in main_md and "AUROC / AUPR over seeds" not in main_md
    assert "segmentation: segmentation.md" in main_md
