"""The dry run's cost estimate (cxrbench.estimate): priced from the folder's own records."""

from cxrbench.cli import main
from cxrbench.device import cpu_model
from cxrbench.estimate import duration, estimate, render


def _record(*, model="resnet18", schedule="budget-quick", generator=None, total=100.0, fit=0.0, gen=0.0,
            fit_seconds=None, per_image=None, device="cpu", status="ok", segmenter=False):
    rec = {"status": status, "hardware": {"device": device},
           "timings": {"total_s": total, "generator_fit_s": fit, "generate_s": gen},
           "cell": {"schedule": schedule, "generator": generator}}
    rec["segmenter" if segmenter else "classifier"] = {"name": model}
    if generator:
        rec["generator"] = {"cost": {"fit_seconds": fit_seconds, "generate_seconds_per_image": per_image}}
    return rec


LDM = {"name": "ldm", "label": "ldm", "options": {"preset": "small"}}


def _plan():
    return {
        "cells": [{"cell": "a", "status": "to run", "model": "resnet18", "schedule": "budget-quick"},
                  {"cell": "b", "status": "to run (stale: ...)", "model": "resnet18", "schedule": "budget-quick"},
                  {"cell": "c", "status": "finished", "model": "resnet18", "schedule": "budget-quick"},
                  {"cell": "d", "status": "to run", "model": "vit", "schedule": "budget-quick"}],
        "fits": {"ldm real=0.1": {"generator": "ldm", "options": {"preset": "small"}, "status": "to fit"},
                 "ldm real=0.05": {"generator": "ldm", "options": {"preset": "small"}, "status": "cached"},
                 "gan real=0.1": {"generator": "gan", "options": {}, "status": "to fit (resumes at step 40)"}},
        "replicas": {"ldm real=0.1 seed 0 replica 0": {"images": 100, "status": "to generate", "fit": "ldm real=0.1"},
                     # only finished cells use it: nothing to price
                     "ldm real=0.1 seed 9 replica 0": {"images": 999, "status": "to generate", "fit": "ldm real=0.1",
                                                       "needed": False},
                     "ldm real=0.1 seed 0 replica 1": {"images": 100, "status": "cached", "fit": "ldm real=0.1"},
                     "gan real=0.1 seed 0 replica 0": {"images": 30, "status": "to generate", "fit": "gan real=0.1"}},
    }


def test_each_kind_of_work_is_priced_by_the_median_of_its_own_records():
    records = [
        # a cell's own time is its total minus the shared fit and generation: 100, 120, 500 -> median 120
        _record(total=100.0),
        _record(total=150.0, fit=20.0, gen=10.0, generator=LDM, fit_seconds=300.0, per_image=0.5),
        _record(total=900.0, fit=350.0, gen=50.0, generator=LDM, fit_seconds=350.0, per_image=0.1),
        _record(total=10_000.0, device="cuda"),        # another kind of device: not this machine's cost
        _record(total=10_000.0, status="failed"),      # a failed cell prices nothing
        _record(total=10_000.0, schedule="budget-standard"),  # another schedule
    ]
    est = estimate(_plan(), records, "cpu")
    assert est["basis"] == 4  # cpu records of any schedule that finished
    assert est["cells"] == {"n": 2, "seconds": 240.0}  # a and b (stale) at the median 120 s; c is done
    assert est["fits"] == [("ldm real=0.1", 325.0)]  # median of 300 and 350; the cached fit costs nothing
    assert est["images"] == {"n": 100, "seconds": 100 * 0.3}  # median of 0.5 and 0.1 s per image
    assert est["total_s"] == 240.0 + 325.0 + 30.0
    # never guessed: no record of this classifier or of gan here
    assert est["unpriced"] == ["cells of vit (budget-quick) (1)", "fit gan real=0.1", "images of gan real=0.1 (30)"]
    text = render(est)
    assert text.startswith("estimate, one process, from 4 finished record(s) on cpu in this folder: "
                           "2 cell(s) x 2 min = 4 min; 1 fit(s) = 5 min (ldm real=0.1 5 min); "
                           "100 image(s) to generate = 30 s; total 10 min")
    assert text.splitlines()[1] == ("not priced (no finished record of it on cpu here): cells of vit (budget-quick) "
                                    "(1); fit gan real=0.1; images of gan real=0.1 (30)")


def test_records_made_on_this_machine_price_it_when_there_are_any():
    plan = {"cells": [{"cell": "a", "status": "to run", "model": "resnet18", "schedule": "budget-quick"}],
            "fits": {}, "replicas": {}}
    records = [_record(total=170.0), _record(total=180.0), _record(total=75.0)]
    records[0]["hardware"]["cpu"] = records[1]["hardware"]["cpu"] = "Intel Xeon"
    records[2]["hardware"]["cpu"] = "AMD EPYC"
    here = estimate(plan, records, "cpu", "AMD EPYC")
    assert (here["basis"], here["machine"], here["cells"]["seconds"]) == (1, "AMD EPYC", 75.0)
    assert "from 1 finished record(s) on this cpu (AMD EPYC) in this folder" in render(here)
    elsewhere = estimate(plan, records, "cpu", "Apple M2")  # no record of this CPU: all of them
    assert (elsewhere["basis"], elsewhere["machine"], elsewhere["cells"]["seconds"]) == (3, None, 170.0)
    assert "from 3 finished record(s) on cpu in this folder" in render(elsewhere)


def test_a_segmenter_s_cells_are_priced_by_its_own_records():
    plan = {"cells": [{"cell": "s", "status": "to run", "model": "unet", "schedule": "budget-quick"}],
            "fits": {}, "replicas": {}}
    est = estimate(plan, [_record(model="unet", segmenter=True, total=60.0)], "cpu")
    assert est["cells"] == {"n": 1, "seconds": 60.0} and not est["unpriced"]


def test_nothing_left_renders_nothing_and_durations_read_as_a_person_plans():
    plan = {"cells": [{"cell": "a", "status": "finished", "model": "m", "schedule": "s"}], "fits": {}, "replicas": {}}
    assert render(estimate(plan, [], "cpu")) == ""
    assert [duration(s) for s in (40, 12 * 60, 3.4 * 3600, 2.1 * 86400)] == ["40 s", "12 min", "3.4 h", "2.1 days"]


def test_the_dry_run_prices_what_is_left_from_the_cells_already_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "spec_version: 1\nname: est\ndataset: {name: phantom, options: {n_train: 40, n_val: 20, n_test: 20}}\n"
        "size: 16\nclassifier: {name: tiny-cnn}\ngenerators: [{name: noise}]\n"
        "protocols: [{name: synthetic-only, schedule: quick}]\nseeds: [0, 1]\n"
        "evaluation: {bootstrap_resamples: 20}\nquality: {enabled: false}\n")
    paths = ["--spec", str(spec), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["run", *paths, "--dry-run"]) == 0
    before = capsys.readouterr().out
    assert "estimate, one process" not in before  # nothing measured yet in this folder
    assert "not priced (no finished record of it on cpu here): cells of tiny-cnn (quick) (4); images of noise (80)" in before  # real-only baselines added
    assert main(["run", *paths, "--seed", "0"]) == 0
    capsys.readouterr()
    assert main(["run", *paths, "--dry-run"]) == 0
    after = capsys.readouterr().out
    here = f"this cpu ({cpu_model()})" if cpu_model() else "cpu"  # priced by the records of this very CPU
    assert f"estimate, one process, from 2 finished record(s) on {here}" in after
    assert " in this folder: 2 cell(s) x " in after
    assert "image(s) to generate" in after and "not priced" not in after
    assert "synthetic set" in after and "noise seed 1" in after
    # a finished grid costs nothing, even on a machine whose cache lacks its fits and images
    import shutil

    shutil.rmtree(tmp_path / "cache")
    assert main(["run", *paths, "--seed", "0", "--dry-run"]) == 0
    finished = capsys.readouterr().out
    assert "to generate" in finished and "estimate, one process" not in finished and "not priced" not in finished


def test_the_dry_run_lists_one_row_per_synthetic_set_with_its_replicas():
    from cxrbench.plan import _synthetic_sets

    reps = {f"ldm real=0.05 seed 1 replica {i}": {"images": 234, "status": "cached" if i < 3 else "to generate"}
            for i in range(10)}
    reps.update({f"noise seed 0 replica {i}": {"images": 1175, "status": "cached"} for i in range(3)})
    assert _synthetic_sets(reps) == [["ldm real=0.05 seed 1", 10, "234", "3 cached, 7 to generate"],
                                     ["noise seed 0", 3, "1,175", "cached"]]


def test_a_fit_shared_by_grid_slices_is_needed_when_any_slice_needs_it():
    from cxrbench.plan import _merge

    fits: dict = {}
    _merge(fits, "kermany | ldm", {"status": "to fit", "needed": True})   # a slice with a cell to run
    _merge(fits, "kermany | ldm", {"status": "to fit", "needed": False})  # a finished slice
    assert fits == {"kermany | ldm": {"status": "to fit", "needed": True}}
