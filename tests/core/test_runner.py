"""End to end through the runner on the embedded phantom set: failures are isolated, finished
cells are reused, records are self-describing, synthetic data never reaches tuning or test."""

import json

import pytest

from cxrbench.config import spec_from_data
from cxrbench.contracts import Generator, GeneratorCapabilities
from cxrbench.errors import CxrbenchError, LeakageError
from cxrbench.runner import Runner
from cxrbench.testing import plugins_with_generator


class ExplodingGenerator(Generator):
    """A generator whose fit raises, to show one failing cell does not stop the others."""

    name = "exploding"
    capabilities = GeneratorCapabilities(needs_training=False)

    def fit(self, train, *, progress=True):
        raise RuntimeError("simulated failure in fit")

    def generate(self, conditions):  # pragma: no cover - never reached
        raise AssertionError


def plugins_with_exploding():
    return plugins_with_generator("exploding", ExplodingGenerator)


SPEC = {
    "name": "t", "dataset": {"name": "phantom", "options": {"n_train": 160, "n_val": 60, "n_test": 80}},
    "size": 16, "classifier": {"name": "tiny-cnn"},
    "generators": [{"name": "real"}, {"name": "exploding"}, {"name": "noise"}],
    "protocols": [{"name": "synthetic-only", "schedule": "quick"},
                  {"name": "supplemented", "ratios": [1.5], "schedule": "quick"}],
    "evaluation": {"bootstrap_resamples": 50},
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    spec = spec_from_data(SPEC, "test-spec")
    plugins = plugins_with_exploding()
    first = Runner(spec, out=out, device="cpu", progress=False, plugins=plugins).run()
    return spec, plugins, out, first


def test_failing_cell_is_recorded_and_others_finish(finished_run):
    spec, plugins, out, first = finished_run
    # real-only baseline + 3 generators x (synthetic-only r1, supplemented r1.5)
    assert len(first.ok) == 5 and len(first.failed) == 2
    failed = [json.loads((out / "cells" / f"{c}.json").read_text()) for c in first.failed]
    for rec in failed:
        assert rec["status"] == "failed" and "simulated failure in fit" in rec["error"]["message"]
        assert rec["cell"]["generator"]["name"] == "exploding"


def test_rerun_skips_finished_cells_and_retries_failed(finished_run):
    spec, plugins, out, first = finished_run
    second = Runner(spec, out=out, device="cpu", progress=False, plugins=plugins).run()
    assert sorted(second.skipped) == sorted(first.ok)
    assert sorted(second.failed) == sorted(first.failed)


def test_a_label_that_now_names_other_options_is_refused_not_reused(finished_run):
    spec, plugins, out, first = finished_run
    # the noise row under the same label (its name) but smoother noise: the finished records of
    # the old configuration must not be reported as the new one's
    changed = {**SPEC, "generators": [{"name": "noise", "options": {"smoothness": 5.0}, "label": "noise"}]}
    with pytest.raises(CxrbenchError, match=r"synthetic-only.*'noise' = noise \{\}.*smoothness.*own label"):
        Runner(spec_from_data(changed, "test-spec"), out=out, device="cpu", progress=False, plugins=plugins).run()
    # the default written out is the same configuration: reused, nothing recomputed
    same = {**SPEC, "generators": [{"name": "noise", "options": {"smoothness": 2.0}, "label": "noise"}]}
    again = Runner(spec_from_data(same, "test-spec"), out=out, device="cpu", progress=False, plugins=plugins).run()
    assert again.ok == [] and len(again.skipped) == 3


def test_records_are_self_describing(finished_run):
    spec, plugins, out, first = finished_run
    rec = json.loads((out / "cells" / f"{first.ok[0]}.json").read_text())
    for key in ("spec", "protocol", "versions", "seeds", "dataset", "hardware", "timings", "metrics", "artifacts"):
        assert key in rec, key
    assert rec["dataset"]["fingerprint"] and rec["protocol"]["id"].endswith(".v1")
    test = rec["metrics"]["phantom:test"]["macro"]
    assert 0 <= test["auroc_ci"][0] <= test["auroc"] <= test["auroc_ci"][1] <= 1
    from cxrbench.store import code_fingerprint

    assert rec["versions"]["code_fingerprint"] == code_fingerprint() and len(code_fingerprint()) == 16


def test_the_code_fingerprint_names_the_code_not_where_it_lies(tmp_path):
    """A checkout (harness/ + plugins/) and a wheel (cxrbench/ holding plugins/) of the same files
    give one fingerprint; changing one byte of any code file changes it."""
    import shutil

    from cxrbench.store import fingerprint_files

    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "runner.py").write_text("x = 1\n")
    (tmp_path / "harness" / "data.bin").write_bytes(b"not code")
    (tmp_path / "plugins" / "generators").mkdir(parents=True)
    (tmp_path / "plugins" / "generators" / "ldm.py").write_text("y = 2\n")
    checkout = fingerprint_files({"cxrbench.plugins": tmp_path / "plugins", "cxrbench": tmp_path / "harness"})
    wheel = tmp_path / "site" / "cxrbench"
    shutil.copytree(tmp_path / "harness", wheel)
    shutil.copytree(tmp_path / "plugins", wheel / "plugins")
    assert fingerprint_files({"cxrbench.plugins": wheel / "plugins", "cxrbench": wheel}) == checkout
    (tmp_path / "plugins" / "generators" / "ldm.py").write_text("y = 3\n")
    assert fingerprint_files({"cxrbench.plugins": tmp_path / "plugins", "cxrbench": tmp_path / "harness"}) != checkout


def test_training_sets_have_promised_sizes_and_no_synthetic_in_tuning(finished_run):
    spec, plugins, out, first = finished_run
    records = [json.loads((out / "cells" / f"{c}.json").read_text()) for c in first.ok]
    by = {(r["cell"]["protocol"], (r["cell"]["generator"] or {}).get("name"), r["cell"]["ratio"]): r for r in records}
    n_real = by[("real-only.v1", None, 0.0)]["training_set"]["n_real"]
    assert by[("real-only.v1", None, 0.0)]["training_set"]["n_synthetic"] == 0
    syn = by[("synthetic-only.v2", "real", 1.0)]["training_set"]
    assert syn["n_real"] == 0 and syn["n_synthetic"] == n_real
    sup = by[("supplemented.v1", "noise", 1.5)]["training_set"]
    assert sup["n_real"] == n_real and sup["n_synthetic"] == round(1.5 * n_real)
    assert syn["prevalence"] == by[("real-only.v1", None, 0.0)]["training_set"]["prevalence"]
    for r in records:
        # supplemented and real-only tune on real images; synthetic-only.v2 on a synthetic slice,
        # never on the real tuning split (see test_validity.py for the proof by poisoning)
        real_tuning = r["cell"]["protocol"] != "synthetic-only.v2"
        assert ("(real" in r["training_set"]["tuning_set"]) == real_tuning
    manifest = json.loads(open(by[("supplemented.v1", "noise", 1.5)]["artifacts"]["synthetic_manifest"]).read())
    assert len({m["file"] for m in manifest}) == len(manifest) == round(1.5 * n_real)
    assert len({m["seed"] for m in manifest}) == len(manifest)
    assert {m["replica"] for m in manifest} == {0, 1}


def test_leakage_guard_refuses_test_patient_in_training(monkeypatch, tmp_path):
    spec = spec_from_data({**SPEC, "generators": [{"name": "real"}], "protocols": [{"name": "real-only", "schedule": "quick"}]}, "s")
    runner = Runner(spec, out=tmp_path, device="cpu", progress=False)
    runner.run()  # loads the dataset
    loaded = next(iter(runner._datasets.values()))
    loaded.train.patient_ids[0] = loaded.tests["test"].patient_ids[0]
    from cxrbench.cells import expand_cells

    cell = expand_cells(spec)[0]
    with pytest.raises(LeakageError, match=loaded.tests["test"].patient_ids[0]):
        runner.run_cell(cell, "leak")


def test_mixed_external_trains_on_second_dataset_and_tests_on_both(tmp_path):
    small = {"n_train": 120, "n_val": 40, "n_test": 60}
    spec = spec_from_data({
        "name": "mx", "size": 16, "classifier": {"name": "tiny-cnn"},
        "dataset": {"name": "phantom", "options": small},
        "external": [{"name": "phantom", "options": {**small, "seed": 7, "n_train": 80}}],
        "generators": [{"name": "real"}],
        "protocols": [{"name": "mixed-external", "ratios": [0.5], "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 30},
    }, "s")
    summary = Runner(spec, out=tmp_path, device="cpu", progress=False).run()
    assert not summary.failed
    records = [json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*.json")]
    mixed = next(r for r in records if r["cell"]["protocol"] == "mixed-external.v1")
    ts = mixed["training_set"]
    # 80 real images of the external set + 0.5 x the source's 120 training conditions
    assert ts["dataset"] == "phantom-ext1" and ts["n_real"] == 80 and ts["n_synthetic"] == 60
    assert set(mixed["metrics"]) == {"phantom:test", "phantom-ext1:test"}
    assert mixed["generator"]["fitted_on"] == "phantom:train"


def test_a_post_processing_chain_reuses_the_real_only_baseline_and_reruns_generator_cells(tmp_path):
    data = {**SPEC, "generators": [{"name": "noise"}], "protocols": [{"name": "synthetic-only.v2", "schedule": "quick"}]}
    first = Runner(spec_from_data(data, "t"), out=tmp_path / "run", cache_dir=tmp_path / "cache",
                   device="cpu", progress=False).run()
    assert sorted(c.split("__")[0] for c in first.ok) == ["real-only.v1", "synthetic-only.v2"]
    chained = {**data, "postprocess": [{"name": "equalize"}]}
    second = Runner(spec_from_data(chained, "t"), out=tmp_path / "run", cache_dir=tmp_path / "cache",
                    device="cpu", progress=False).run()
    # the baseline does not depend on the chain: reused; the generator cell does: run again
    assert [c.split("__")[0] for c in second.skipped] == ["real-only.v1"]
    assert [c.split("__")[0] for c in second.ok] == ["synthetic-only.v2"]
    rec = json.loads((tmp_path / "run" / "cells" / f"{second.ok[0]}.json").read_text())
    assert [s["name"] for s in rec["generator"]["postprocessing"]["steps"]] == ["equalize"]
    assert rec["comparisons"], "the chained cell is compared with the reused baseline"
