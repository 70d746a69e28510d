"""Records for the leaderboard tests: one real tiny run, plus records derived from its files.

The run (embedded phantom set, 16 px, tiny-cnn, 2 seeds; about 25 s on a busy 2-core CPU) gives
records in the exact shape the runner writes, with quality and cost blocks: real-only,
noise under synthetic-only v1 and v2, and supplemented at r = 0.5 and 1. States a tiny run cannot
produce cheaply are derived from copies of its records, each with its own label and cell_id:
a configuration whose seeds all failed, a truncated generator fit, a configuration with 2 of 3
seeds ok, and a generator label that is an HTML script tag.
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from pathlib import Path

import pytest
from cxrbench.store import seal

SPEC = {
    "name": "lb", "dataset": {"name": "phantom", "options": {"n_train": 120, "n_val": 40, "n_test": 60}},
    "size": 16, "classifier": {"name": "tiny-cnn"},
    "generators": [{"name": "noise"}],
    "protocols": [{"name": "synthetic-only.v1", "schedule": "quick"},
                  {"name": "synthetic-only.v2", "schedule": "quick"},
                  {"name": "supplemented", "ratios": [0.5, 1.0], "schedule": "quick"}],
    "seeds": [0, 1],
    "evaluation": {"bootstrap_resamples": 30},
    "quality": {"features": ["domain"], "pairs": 10, "reference_steps": 20, "worst_pairs": 2},
}
SCRIPT_LABEL = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real run folder made by the runner (read-only for the tests: copy before changing)."""
    from cxrbench.config import spec_from_data
    from cxrbench.runner import Runner

    out = tmp_path_factory.mktemp("lb") / "tiny-run"
    with warnings.catch_warnings():
        # 120 noise images in a 128-d feature space: a singular covariance in FD, expected here
        warnings.filterwarnings("ignore", message="Matrix is singular")
        summary = Runner(spec_from_data(SPEC, "leaderboard-test"), out=out, device="cpu", progress=False).run()
    assert not summary.failed and len(summary.ok) == 10
    return out


def load_cells(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((Path(folder) / "cells").glob("*.json"))}


def _derive(rec: dict, token: str, label: str, seed: int | None = None) -> dict:
    """A copy of ``rec`` as generator ``label`` (cell_id made unique with ``token``)."""
    new = copy.deepcopy(rec)
    old_seed = new["cell"]["seed"]
    seed = old_seed if seed is None else seed
    new["cell"]["seed"] = seed
    new["cell"]["generator"] = {**new["cell"]["generator"], "label": label}
    new["cell_id"] = new["cell_id"].replace("__noise__", f"__{token}__").replace(f"__seed{old_seed}__",
                                                                                  f"__seed{seed}__")
    new["cell"]["id"] = new["cell_id"].rsplit("__", 1)[0]
    if new.get("generator"):
        new["generator"]["label"] = label
    return new


def _fail(rec: dict, message: str) -> dict:
    failed = {k: v for k, v in rec.items() if k not in ("metrics", "comparisons", "generator", "artifacts",
                                                        "thresholds", "training_set", "classifier")}
    failed.update(status="failed", error={"type": "RuntimeError", "message": message, "traceback": "", "cause": None})
    return failed


@pytest.fixture(scope="session")
def mixed_run(tiny_run, tmp_path_factory) -> Path:
    """The tiny run plus derived records: ``broken`` (all seeds failed), ``trunc`` (truncated fit),
    ``flaky`` (seed 2 of 0..2 failed), ``xss`` (label :data:`SCRIPT_LABEL`), under synthetic-only.v2."""
    out = tmp_path_factory.mktemp("lb") / "mixed-run"
    shutil.copytree(tiny_run, out)
    v2 = {r["cell"]["seed"]: r for r in load_cells(tiny_run).values()
          if r["cell"]["protocol"] == "synthetic-only.v2"}
    derived = []
    for seed, rec in sorted(v2.items()):
        derived.append(_fail(_derive(rec, "broken", "broken"), "simulated failure in fit\nsecond line"))
        trunc = _derive(rec, "trunc", "trunc")
        trunc["generator"]["truncated"] = True
        trunc["generator"]["fit_stats"] = {"steps": 5, "steps_requested": 100}
        derived += [trunc, _derive(rec, "flaky", "flaky"), _derive(rec, "xss", SCRIPT_LABEL)]
    derived.append(_fail(_derive(v2[1], "flaky", "flaky", seed=2), "out of memory"))
    for rec in derived:
        (out / "cells" / f"{rec['cell_id']}.json").write_text(json.dumps(seal(rec), indent=2, sort_keys=True) + "\n")
    return out


@pytest.fixture(scope="session")
def mixed_records(mixed_run) -> list[tuple[str, dict]]:
    return [(f"mixed-run/cells/{name}", rec) for name, rec in load_cells(mixed_run).items()]


@pytest.fixture(scope="session")
def script_label() -> str:
    return SCRIPT_LABEL


@pytest.fixture(scope="session")
def derive():
    """``derive(record, token, label, seed=None)``: a copy of a record as another generator label."""
    return _derive
