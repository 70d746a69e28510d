"""benchmarks/nano-banana.yaml end to end against the local fake Gemini server, at a tiny size
(the scores are meaningless; the pipeline is what is tested), and without a key."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("google.genai")

from cxrbench.config import spec_from_data  # noqa: E402
from cxrbench.runner import Runner  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from fake_image_api import FakeImageAPI  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-cxrbench-FAKE-KEY-nanobanana-55aa"
ENV = "CXRBENCH_TEST_GEMINI_KEY"


def kermany(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    files = {"train/NORMAL": [f"IM-{i:04d}-0001.jpeg" for i in range(1, 9)],
             "train/PNEUMONIA": [f"person{i}_bacteria_{i}.jpeg" for i in range(1, 9)],
             "test/NORMAL": [f"IM-{i:04d}-0001.jpeg" for i in range(50, 54)],
             "test/PNEUMONIA": [f"person{i}_virus_{i}.jpeg" for i in range(50, 54)]}
    for sub, names in files.items():
        for name in names:
            path = root / "chest_xray" / sub / name
            path.parent.mkdir(parents=True, exist_ok=True)
            arr = np.clip(rng.normal(120, 30, (36, 44)), 0, 255).astype(np.uint8)
            Image.fromarray(arr, "L").convert("RGB").save(path, quality=90)
    return root


def nano_banana_spec(url: str, root: Path):
    data = yaml.safe_load((REPO / "benchmarks" / "nano-banana.yaml").read_text())
    data["external"][0]["root"] = str(root)  # --data-root applies to the training dataset only
    data["size"] = 32
    data["classifier"] = {"name": "tiny-cnn"}
    data["protocols"][0]["schedule"] = "quick"
    data["evaluation"] = {"bootstrap_resamples": 50}
    data["quality"] = {"pairs": 10, "reference_steps": 20}  # computed, at test size
    data["generators"][0]["options"].update(base_url=url, api_key_env=ENV, requests_per_minute=60000.0,
                                            backoff_s=0.01, max_backoff_s=0.05, timeout_s=2.0)
    return data


def test_nano_banana_end_to_end_on_the_fake_server(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(ENV, KEY)
    root = kermany(tmp_path / "data")
    with FakeImageAPI(KEY, fail_rate=0.3, modes=("429", "500", "503", "malformed", "noimage", "truncated"), seed=3) as api:
        spec = spec_from_data(nano_banana_spec(api.url, root), "nano-banana.yaml")
        summary = Runner(spec, out=tmp_path / "run", data_root=str(root), cache_dir=tmp_path / "cache",
                         device="cpu", progress=False).run()
        # the api cell runs; no real-only baseline is added: with `test: all` every real image
        # is a test image, so a real-only classifier would train on test patients
        assert [c.split("__")[0] for c in summary.ok] == ["synthetic-only.v2"]
        assert summary.failed == []
        served = api.requests
        # a second run (fresh output) requests no image again: the per-image cache
        Runner(spec, out=tmp_path / "run2", data_root=str(root), cache_dir=tmp_path / "cache",
               device="cpu", progress=False).run()
        assert api.requests == served
    record = json.loads(next((tmp_path / "run").rglob(f"{summary.ok[0]}.json")).read_text())
    gen = record["generator"]
    stats = gen["synthetic"]["generator"]
    assert stats["provider"] == "gemini" and stats["produced"] > 0 and stats["failed"] == 0 and stats["retried"] > 0
    assert [s["name"] for s in gen["postprocessing"]["steps"]] == ["crop-watermark", "grayscale", "resize-pad"]
    # RSNA is optional and its data is not under this data root: skipped, and the record says so
    assert [s["name"] for s in record["external_skipped"]] == ["rsna-pneumonia"]
    assert gen["fitted_on"] is None and gen["options"]["api_key_env"] == ENV
    # everything paid for, by purpose, adds up to what the server counted (issue #28 point 4):
    # the training set, the synthetic tuning slice, pre-flight and the seed check, retries included
    paid = gen["paid"]
    assert {"pre-flight", "training set", "tuning slice", "seed check"} <= set(paid["by_purpose"])
    assert paid["total"]["requested"] == served == sum(api.by_mode.values())
    assert paid["total"]["produced"] == api.by_mode.get("ok", 0)
    assert paid["total"]["requested"] == paid["total"]["produced"] + paid["total"]["retried"] + paid["total"]["failed"]
    assert paid["by_purpose"]["seed check"]["produced"] == 3  # its base image once, two others
    assert paid["total"]["estimated_cost_usd"] == pytest.approx(paid["total"]["produced"] * stats["price_per_image_usd"])
    manifest = json.loads(next((tmp_path / "run").rglob("synthetic-manifest.json")).read_text())
    assert manifest and all("a frontal chest X-ray of a child with" in m["prompt"] for m in manifest)
    out, err = capfd.readouterr()
    assert KEY not in out and KEY not in err
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p


def test_nano_banana_without_a_key_fails_in_one_line_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    root = kermany(tmp_path / "data")
    with FakeImageAPI(KEY) as api:
        spec = spec_from_data(nano_banana_spec(api.url, root), "nano-banana.yaml")
        with pytest.raises(Exception) as info:
            Runner(spec, out=tmp_path / "run", data_root=str(root), cache_dir=tmp_path / "cache",
                   device="cpu", progress=False).run()
        assert api.requests == 0
    msg = str(info.value)
    assert ENV in msg and "\n" not in msg, msg
