"""Cache integrity under tampering and concurrency: a truncated, replaced or pickled cache entry
(synthetic set, fitted checkpoint) is detected, moved aside with a one-line warning and rebuilt,
never trusted, never executed, never a permanent failure; leftovers of killed writes are cleaned;
two runs of one spec into one folder and cache compute each cell, fit and set once."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cxrbench.config import spec_from_data
from cxrbench.runner import Runner

pytestmark = pytest.mark.faults

PHANTOM = {"name": "phantom", "options": {"n_train": 60, "n_val": 20, "n_test": 40}}


def _spec(generator, **over):
    data = {"name": "faults", "dataset": PHANTOM, "size": 16, "classifier": {"name": "tiny-cnn"},
            "generators": [generator], "protocols": [{"name": "synthetic-only.v2", "schedule": "quick"}],
            "evaluation": {"bootstrap_resamples": 20}, "quality": {"enabled": False}}
    data.update(over)
    return spec_from_data(data, "faults-spec")


def _run(spec, out, cache):
    return Runner(spec, out=out, cache_dir=cache, device="cpu", progress=False).run()


def _auroc(out):
    rec = json.loads(next(Path(out, "cells").glob("synthetic-only*.json")).read_text())
    assert rec["status"] == "ok", rec.get("error")
    return next(iter(rec["metrics"].values()))["labels"]["pneumonia"]["auroc"]


class Marker:
    """Unpickling this creates a marker file: it must never happen."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tamper(path: Path, how: str, marker: Path):
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero":
        path.write_bytes(b"")
    elif how == "pickle":
        np.save(path, np.array([Marker(marker)], dtype=object), allow_pickle=True)
    elif how == "other-shape":
        np.save(path, np.zeros((3, 1, 16, 16), np.uint8))


@pytest.mark.parametrize("how", ["truncated", "zero", "pickle", "other-shape"])
def test_a_bad_synthetic_set_is_moved_aside_and_regenerated(tmp_path, capfd, how):
    spec, cache = _spec({"name": "noise"}), tmp_path / "cache"
    _run(spec, tmp_path / "a", cache)
    first = _auroc(tmp_path / "a")
    sets = sorted((cache / "synthetic").glob("*.npy"))
    assert sets
    marker = tmp_path / "EXECUTED"
    for p in sets:
        _tamper(p, how, marker)
    capfd.readouterr()
    summary = _run(spec, tmp_path / "b", cache)
    err = capfd.readouterr().err
    assert summary.failed == [] and _auroc(tmp_path / "b") == first  # rebuilt, same numbers
    assert "is corrupt" in err and "moved aside" in err
    assert not marker.exists()
    assert len(list((cache / "synthetic").glob("*.corrupt-*"))) >= len(sets)
    _run(spec, tmp_path / "c", cache)  # and the rebuilt entries are trusted again, silently
    assert "is corrupt" not in capfd.readouterr().err


@pytest.mark.parametrize("how", ["truncated", "pickle"])
def test_a_bad_fitted_checkpoint_is_moved_aside_and_refitted(tmp_path, capfd, how):
    spec = _spec({"name": "ddpm", "options": {"preset": "tiny", "train_steps": 4, "sampling_steps": 4, "gen_batch_size": 64}})
    cache = tmp_path / "cache"
    _run(spec, tmp_path / "a", cache)
    first = _auroc(tmp_path / "a")
    ckpt = next(p for p in (cache / "generators").iterdir() if p.is_dir())
    weights = next(ckpt.glob("*.safetensors"))
    marker = tmp_path / "EXECUTED"
    if how == "pickle":
        import pickle

        weights.write_bytes(pickle.dumps(Marker(marker)))
    else:
        _tamper(weights, how, marker)
    for p in (cache / "synthetic").glob("*.npy"):
        p.unlink()  # force the generator to be loaded and used again
    capfd.readouterr()
    summary = _run(spec, tmp_path / "b", cache)
    err = capfd.readouterr().err
    assert summary.failed == [] and _auroc(tmp_path / "b") == first  # refitted identically
    assert "is corrupt" in err and ("does not match its checksum" in err or "bytes, expected" in err)
    assert not marker.exists()
    assert any(".corrupt-" in p.name for p in (cache / "generators").iterdir())


def test_leftovers_of_killed_writes_are_cleaned_up(tmp_path, capfd):
    spec, cache, out = _spec({"name": "noise"}), tmp_path / "cache", tmp_path / "run"
    _run(spec, out, cache)
    old = time.time() - 2 * 3600
    leftovers = [out / "cells" / ".x.json.abc123", cache / "synthetic" / "noise-1.tmp.npy",
                 cache / "datasets" / ".phantom-16.tmp-zz" / "images.raw.npy"]
    fresh = cache / "synthetic" / "noise-2.tmp.npy"  # a live write of another run: left alone
    for p in leftovers + [fresh]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    for p in leftovers + [leftovers[2].parent]:
        os.utime(p, (old, old))
    capfd.readouterr()
    _run(spec, out, cache)
    assert "temporary file(s) left by interrupted runs" in capfd.readouterr().err
    assert not any(p.exists() for p in leftovers) and not leftovers[2].parent.exists()
    assert fresh.exists()


CONCURRENT = """
import sys
from cxrbench.config import spec_from_data
from cxrbench.runner import Runner
data = {"name": "faults", "dataset": {"name": "phantom", "options": {"n_train": 60, "n_val": 20, "n_test": 40}},
        "size": 16, "classifier": {"name": "tiny-cnn"}, "seeds": [0, 1],
        "generators": [{"name": "ddpm", "options": {"preset": "tiny", "train_steps": 30, "sampling_steps": 4, "gen_batch_size": 64}}],
        "protocols": [{"name": "synthetic-only.v2", "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 20}, "quality": {"enabled": False}}
s = Runner(spec_from_data(data, "c"), out=sys.argv[1], cache_dir=sys.argv[2], device="cpu", progress=False).run()
print("RAN", len(s.ok), "REUSED", len(s.skipped), "FAILED", len(s.failed))
"""


def test_two_concurrent_runs_of_one_spec_compute_everything_once(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(out), str(cache)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    lines = [next(l for l in o.splitlines() if l.startswith("RAN")) for o, _ in results]
    ran = [int(l.split()[1]) for l in lines]
    reused = [int(l.split()[3]) for l in lines]
    assert all(l.endswith("FAILED 0") for l in lines), results
    assert sum(ran) == 4 and sum(reused) == 4  # 4 cells (2 seeds x baseline + generator), each run once
    recs = sorted((out / "cells").glob("*.json"))
    assert len(recs) == 4 and all(json.loads(p.read_text())["status"] == "ok" for p in recs)
    # one fitted generator and one synthetic set per seed, however the two runs interleaved
    assert len([p for p in (cache / "generators").iterdir() if p.is_dir()]) == 1
    assert not list(cache.rglob("*.corrupt-*"))


def test_bad_quality_caches_are_rebuilt_not_fatal(tmp_path, capfd):
    """The reference CNN's weights, the real-image features and a cached quality report."""
    spec = _spec({"name": "noise"}, quality={"pairs": 10, "reference_steps": 20, "features": ["domain"]})
    cache = tmp_path / "cache"
    _run(spec, tmp_path / "a", cache)
    rec_a = json.loads(next(Path(tmp_path / "a", "cells").glob("synthetic-only*.json")).read_text())
    fd = rec_a["generator"]["quality"]["features"]["domain"]["fd"]
    for p in list((cache / "reference").glob("*.safetensors")) + list((cache / "quality").glob("real-features-*.npy")):
        p.write_bytes(b"garbage")
    for p in (cache / "quality").glob("report-*/report.json"):
        p.write_text("{not json")
    capfd.readouterr()
    summary = _run(spec, tmp_path / "b", cache)
    err = capfd.readouterr().err
    rec_b = json.loads(next(Path(tmp_path / "b", "cells").glob("synthetic-only*.json")).read_text())
    assert summary.failed == [] and err.count("is corrupt") >= 3
    assert rec_b["generator"]["quality"]["features"]["domain"]["fd"] == fd  # rebuilt identically
