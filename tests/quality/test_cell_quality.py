"""Every generator cell's record holds the quality report of its synthetic set (issue #13):
`real` scores as real (FD near zero, precision / recall near 1, every image a training copy),
`noise` far worse on every fidelity metric; offline feature networks are skipped with a reason;
the report is cached and shared by the cells that share a synthetic set."""

import json
import socket

import pytest

from cxrbench.config import spec_from_data
from cxrbench.runner import Runner

PHANTOM = {"name": "phantom", "options": {"n_train": 300, "n_val": 60, "n_test": 60}}


def _spec(**over):
    data = {
        "name": "quality", "dataset": PHANTOM, "size": 32, "classifier": {"name": "tiny-cnn"},
        "generators": [{"name": "real"}, {"name": "noise"}],
        "protocols": [{"name": "synthetic-only.v1", "schedule": "quick"},
                      {"name": "synthetic-only.v2", "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 20},
        "quality": {"pairs": 50, "worst_pairs": 4, "reference_steps": 80},
    }
    data.update(over)
    return spec_from_data(data, "test-spec")


@pytest.fixture(scope="module")
def records(tmp_path_factory, monkeypatch_module):
    # nothing may be downloaded: any connection attempt fails the test
    def refuse(*args, **kwargs):
        raise AssertionError("the quality metrics tried to open a network connection")

    monkeypatch_module.setattr(socket.socket, "connect", refuse)
    monkeypatch_module.setenv("HOME", str(tmp_path_factory.mktemp("home")))  # no weights under ~
    monkeypatch_module.setenv("CXRBENCH_INCEPTION_WEIGHTS", str(tmp_path_factory.mktemp("w") / "missing.pt"))
    out = tmp_path_factory.mktemp("run")
    summary = Runner(_spec(), out=out, cache_dir=out / "cache", device="cpu", progress=False).run()
    assert summary.failed == []
    recs = {}
    for p in (out / "cells").glob("synthetic-only*.json"):
        r = json.loads(p.read_text())
        recs[(r["cell"]["protocol"], r["generator"]["label"])] = (r, p.with_suffix(""))
    return recs


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_real_scores_as_real_and_noise_far_worse(records):
    real = records[("synthetic-only.v2", "real")][0]["generator"]["quality"]
    noise = records[("synthetic-only.v2", "noise")][0]["generator"]["quality"]
    rd, nd = real["features"]["domain"], noise["features"]["domain"]
    assert rd["identity"].startswith("reference-cnn") and rd["identity"] == nd["identity"]
    assert rd["fd"] < 0.05 * nd["fd"]
    assert rd["prdc"]["precision"] > 0.9 and rd["prdc"]["recall"] > 0.9 and rd["prdc"]["coverage"] > 0.9
    assert nd["prdc"]["precision"] < 0.2 and nd["prdc"]["coverage"] < 0.2
    assert rd["kid"]["mean"] < nd["kid"]["mean"] and rd["fd_ratio"]["ratio"] > 10 * nd["fd_ratio"]["ratio"]
    assert set(rd["per_label"]) == {"label0=0", "label0=1"}
    # the real set IS the training set: every image a near copy; noise copies nothing
    assert real["memorization"]["pixels"]["near_copy_fraction"] == 1.0
    assert noise["memorization"]["pixels"]["near_copy_fraction"] == 0.0
    # the reference classifier sees the conditioned label in real images far more than in noise
    assert real["label_fidelity"]["synthetic"]["agreement"] > noise["label_fidelity"]["synthetic"]["agreement"]
    assert "real_val" in real["label_fidelity"]
    # diversity: real images (other random pairs of them) are as diverse as real; noise images
    # are alike in structure far less than radiographs are
    ms, nms = real["diversity"]["ms_ssim"], noise["diversity"]["ms_ssim"]
    assert abs(ms["synthetic"]["overall"] - ms["real"]["overall"]) < 0.05
    assert nms["synthetic"]["overall"] < 0.5 * nms["real"]["overall"]
    assert real["diversity"]["pixel_spread"]["ratio"]["overall"] == pytest.approx(1.0, abs=0.05)


def test_offline_feature_networks_are_skipped_with_where_to_put_the_weights(records):
    q = records[("synthetic-only.v2", "noise")][0]["generator"]["quality"]
    assert q["features"]["inception"]["skipped"].startswith("Inception weights not found, put")
    assert "CXRBENCH_INCEPTION_WEIGHTS" in q["features"]["inception"]["skipped"]
    assert "torchxrayvision" in q["features"]["xrv"]["skipped"]


def test_worst_pairs_png_cost_and_a_shared_cached_report(records):
    from PIL import Image

    r1, d1 = records[("synthetic-only.v1", "noise")]
    r2, d2 = records[("synthetic-only.v2", "noise")]
    png = Image.open(d2 / r2["generator"]["quality"]["memorization"]["worst_pairs_png"])
    assert png.mode == "L" and png.size[0] > 2 * 32 and png.size[1] >= 4 * 32
    # v1 and v2 of one seed train on the same synthetic set: the report is computed once
    assert {r1["generator"]["quality"]["cached"], r2["generator"]["quality"]["cached"]} == {True, False}
    q1, q2 = (dict(r["generator"]["quality"]) for r in (r1, r2))
    q1.pop("cached"), q2.pop("cached")
    assert q1 == q2
    cost = r2["generator"]["cost"]
    assert cost["device"] == "cpu" and cost["peak_memory_mb"] > 0 and cost["generate_seconds_per_image"] is not None
    assert "quality_s" in r2["timings"]


def test_quality_can_be_switched_off(tmp_path):
    spec = _spec(generators=[{"name": "noise"}], protocols=[{"name": "synthetic-only.v2", "schedule": "quick"}],
                 quality={"enabled": False})
    Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False).run()
    rec = json.loads(next((tmp_path / "run" / "cells").glob("synthetic-only*.json")).read_text())
    assert rec["generator"]["quality"] == {"skipped": "quality.enabled is false in the spec"}
