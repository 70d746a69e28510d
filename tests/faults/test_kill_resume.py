"""`kill -9` of a run at a spread of points (dataset decode, generator fit, generation, classifier
training, record writing), then the same command again: it must finish with the same numbers as
an uninterrupted run and leave no corrupt file anywhere (every JSON parses, every cached array
and checkpoint passes its check)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults

RUN = """
import sys
from cxrbench.config import spec_from_data
from cxrbench.logs import log_to_stderr
from cxrbench.runner import Runner
log_to_stderr()  # the progress lines below are the kill points
data = {"name": "kill", "dataset": {"name": "phantom", "options": {"n_train": 80, "n_val": 30, "n_test": 40}},
        "size": 16, "classifier": {"name": "tiny-cnn"},
        "generators": [{"name": "ddpm", "options": {"preset": "tiny", "train_steps": 20}}, {"name": "noise"}],
        "protocols": [{"name": "synthetic-only.v2", "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 20}, "quality": {"pairs": 10, "reference_steps": 20}}
Runner(spec_from_data(data, "kill"), out=sys.argv[1], cache_dir=sys.argv[2], device="cpu", progress=False).run()
"""

#: (log line that marks the point, extra seconds to wait after it before SIGKILL)
POINTS = [
    ("cells ->", 0.3),                                   # pre-flight / dataset decode
    ("synthetic-only.v2__ddpm", 1.0),                    # inside the ddpm fit
    ("synthetic-only.v2__ddpm", 4.0),                    # fit done: generation / quality / training
    ("real-only.v1__none__r0__quick__seed0: phantom", 0.0),  # just after a record was written
]


def _start(out, cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", RUN, str(out), str(cache)], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _aurocs(out: Path) -> dict:
    res = {}
    for p in sorted((out / "cells").glob("*.json")):
        rec = json.loads(p.read_text())
        assert rec["status"] == "ok", rec.get("error")
        res[p.name] = next(iter(rec["metrics"].values()))["labels"]["pneumonia"]["auroc"]
    return res


def _no_corrupt_file(*roots: Path) -> None:
    import numpy as np

    from cxrbench.integrity import verify

    for root in roots:
        for p in root.rglob("*.json"):
            json.loads(p.read_text())
        for p in root.rglob("*.npy"):
            if ".tmp" not in p.name:
                np.load(p, allow_pickle=False)
        for done in root.rglob("cxrbench-fit.json"):
            assert verify(json.loads(done.read_text()).get("manifest") or {}, done.parent) is None, done
        assert not list(root.rglob("*.corrupt-*")), "a cache entry had to be rebuilt"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out, cache = tmp_path_factory.mktemp("ref"), tmp_path_factory.mktemp("refcache")
    proc = _start(out, cache)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    return _aurocs(out)


@pytest.mark.parametrize("marker,delay", POINTS, ids=[f"{m.split('__')[0][:20]}+{d}s" for m, d in POINTS])
def test_a_killed_run_resumes_to_the_same_numbers(marker, delay, reference, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = _start(out, cache)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            time.sleep(delay)
            break
    else:
        pytest.fail(f"the run ended before {marker!r}: {''.join(seen)[-1500:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    again = _start(out, cache)
    _, err = again.communicate(timeout=900)
    assert again.returncode == 0, err[-2000:]
    assert _aurocs(out) == reference
    _no_corrupt_file(out, cache)
