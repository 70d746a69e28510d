"""The real-data axis (issue #27): nested, label-stratified, patient-level subsets; the tuning
split that shrinks with them; generators that learn only from their size's subset; and one
optimization budget for every protocol at a size."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrbench import protocols
from cxrbench.cells import expand_cells
from cxrbench.config import spec_from_data
from cxrbench.contracts import Generator, GeneratorCapabilities, Split
from cxrbench.errors import ConfigError
from cxrbench.runner import Runner
from cxrbench.subsets import draw_subset, size_text, size_token
from cxrbench.testing import plugins_with_generator


def make_split(name: str, n_patients: int, positive_share: float, seed: int, labels: int = 1) -> Split:
    """Patients with 1-3 images each; a patient's label is the same on each of its images."""
    rng = np.random.default_rng(seed)
    ids, rows = [], []
    for p in range(n_patients):
        value = [float(rng.random() < positive_share) for _ in range(labels)]
        for _ in range(int(rng.integers(1, 4))):
            ids.append(f"{name}-p{p:04d}")
            rows.append(value)
    n = len(ids)
    return Split(name=name, images=torch.zeros((n, 1, 4, 4), dtype=torch.uint8),
                 labels=torch.tensor(rows, dtype=torch.float32), label_names=tuple(f"y{j}" for j in range(labels)),
                 patient_ids=ids, keys=[f"{name}/{i:05d}" for i in range(n)])


TRAIN = make_split("train", 400, 0.3, seed=1)
VAL = make_split("val", 60, 0.3, seed=2)


def keys(split, idx):
    return {split.keys[i] for i in idx}


def test_subsets_are_nested_for_train_and_val():
    sizes = [0.02, 0.05, 0.1, 0.25, 0.5, 1.0]
    subs = [draw_subset(TRAIN, VAL, s, seed=0, tuning_min_per_class=3) for s in sizes]
    for small, large in zip(subs, subs[1:]):
        assert keys(TRAIN, small.train) < keys(TRAIN, large.train)
        assert keys(VAL, small.val) <= keys(VAL, large.val)
    assert len(subs[-1].train) == len(TRAIN) and len(subs[-1].val) == len(VAL)


def test_subsets_keep_whole_patients_and_the_label_share():
    full_share = float(TRAIN.labels.mean())
    for size in (0.05, 0.1, 0.25):
        sub = draw_subset(TRAIN, VAL, size, seed=0, tuning_min_per_class=3)
        kept = set(sub.train)
        for p in {TRAIN.patient_ids[i] for i in kept}:  # every image of a kept patient is kept
            assert all(i in kept for i, q in enumerate(TRAIN.patient_ids) if q == p)
        assert abs(len(sub.train) - size * len(TRAIN)) <= 2 * 3  # within a patient per stratum
        share = float(TRAIN.labels[sub.train].mean())
        assert abs(share - full_share) <= 3 / len(sub.train) + 0.02, (size, share, full_share)
        counts = sub.record["train_label_counts"]["y0"]
        assert counts["positive"] + counts["negative"] == len(sub.train) == sub.record["n_train"]


def test_a_count_size_gives_about_that_many_images():
    sub = draw_subset(TRAIN, VAL, 100, seed=0, tuning_min_per_class=3)
    assert 100 <= len(sub.train) <= 100 + 2 * 3
    assert sub.record["size_text"] == "100 images"


def test_the_subset_seed_decides_which_patients():
    a = draw_subset(TRAIN, VAL, 0.1, seed=0, tuning_min_per_class=3)
    b = draw_subset(TRAIN, VAL, 0.1, seed=0, tuning_min_per_class=3)
    c = draw_subset(TRAIN, VAL, 0.1, seed=1, tuning_min_per_class=3)
    assert a.train == b.train and a.record["fingerprint"] == b.record["fingerprint"]
    assert a.train != c.train and a.record["fingerprint"] != c.record["fingerprint"]


def test_the_tuning_split_shrinks_with_the_training_split_but_keeps_a_minimum_per_class():
    val = make_split("val", 300, 0.3, seed=3)
    small = draw_subset(TRAIN, val, 0.1, seed=0, tuning_min_per_class=12)
    counts = small.record["val_label_counts"]["y0"]
    assert counts["positive"] >= 12 and counts["negative"] >= 12
    # about 10% of the validation images, not all 300 patients' worth
    assert len(small.val) < 0.25 * len(val)
    larger = draw_subset(TRAIN, val, 0.5, seed=0, tuning_min_per_class=12)
    assert abs(len(larger.val) - 0.5 * len(val)) <= 2 * 3
    assert small.record["n_val"] == len(small.val) and small.record["n_val_full"] == len(val)


def test_multi_label_subsets_are_stratified_by_label_pattern():
    train = make_split("train", 500, 0.4, seed=4, labels=2)
    val = make_split("val", 80, 0.4, seed=5, labels=2)
    sub = draw_subset(train, val, 0.2, seed=0, tuning_min_per_class=5)
    for j in range(2):
        assert abs(float(train.labels[sub.train, j].mean()) - float(train.labels[:, j].mean())) < 0.05
        c = sub.record["val_label_counts"][f"y{j}"]
        assert c["positive"] >= 5 and c["negative"] >= 5


def test_a_subset_without_both_label_values_is_a_one_line_error_with_the_counts():
    rare = make_split("train", 400, 0.01, seed=6)
    with pytest.raises(ConfigError) as err:
        draw_subset(rare, VAL, 0.01, seed=0, tuning_min_per_class=3)
    message = str(err.value)
    assert "\n" not in message and "1%" in message and "0 positive" in message and "use a larger size" in message


@pytest.mark.parametrize("sizes, match", [
    ([0.0], "fraction must be in"), ([1.5], "fraction must be in"), ([1], "write 1.0"),
    ([0.1, 0.1], "listed twice"), (["x"], "expected"), ([], "empty"),
])
def test_bad_sizes_are_refused_at_validate(sizes, match):
    spec = {"name": "t", "real_data": sizes, "protocols": [{"name": "real-only", "schedule": "budget-quick"}]}
    with pytest.raises(ConfigError, match=match):
        spec_from_data(spec, "s.yaml")


def test_an_epoch_defined_schedule_is_refused_on_the_real_data_axis():
    spec = {"name": "t", "real_data": [0.1, 1.0], "protocols": [{"name": "real-only", "schedule": "quick"}]}
    with pytest.raises(ConfigError, match=r"'quick' is epoch-defined.*budget-quick"):
        spec_from_data(spec, "s.yaml")


def test_the_axis_joins_cell_ids_and_adds_the_noise_control():
    spec = spec_from_data({
        "name": "t", "real_data": [0.05, 200, 1.0], "generators": [{"name": "real"}], "seeds": [0, 1],
        "protocols": [{"name": "supplemented", "ratios": [1, 3], "schedule": "budget-quick"}],
    }, "s.yaml")
    cells = expand_cells(spec)
    ids = [c.id for c in cells]
    assert len(ids) == len(set(ids))
    # per size and seed: real-only, then the noise control of each ratio, then the generator
    assert "real-only.v1__none__r0__real=0.05__budget-quick__seed1" in ids
    assert "supplemented.v1__noise__r3__real=200__budget-quick__seed0" in ids
    assert "supplemented.v1__real__r1__real=all__budget-quick__seed0" in ids
    assert len(cells) == 3 * 2 * (1 + 2 + 2)
    first_generator = next(i for i, c in enumerate(cells) if c.generator is not None and c.generator.name == "real")
    assert all(c.generator is None or c.generator.name == "noise" for c in cells[:first_generator])
    assert all(c.auto_baseline for c in cells[:first_generator])
    # without the axis, ids are what they always were
    plain = expand_cells(spec_from_data({"name": "t", "generators": [{"name": "real"}],
                                         "protocols": [{"name": "synthetic-only", "schedule": "quick"}]}, "s.yaml"))
    assert [c.id for c in plain] == ["real-only.v1__none__r0__quick__seed0", "synthetic-only.v2__real__r1__quick__seed0"]


def test_size_names():
    assert [size_token(s) for s in (0.05, 1.0, 200)] == ["0.05", "all", "200"]
    assert [size_text(s) for s in (0.05, 1.0, 200, None)] == ["5%", "all", "200 images", "-"]


# --------------------------------------------------------------------------- through the runner


class RecordingGenerator(Generator):
    """Remembers every real image it is shown and every condition it is asked for."""

    name = "recording"
    capabilities = GeneratorCapabilities(needs_training=False)
    seen: list = []
    asked: list = []

    def fit(self, train, *, progress=True):
        RecordingGenerator.seen.append(list(train.keys))
        return {}

    def generate(self, conditions):
        RecordingGenerator.asked.append([c.labels for c in conditions])
        out = torch.empty((len(conditions), 1, self.size, self.size), dtype=torch.uint8)
        for i, c in enumerate(conditions):
            g = torch.Generator().manual_seed(c.seed)
            out[i] = torch.randint(0, 256, (1, self.size, self.size), generator=g, dtype=torch.uint8)
        return out


SPEC = {
    "name": "t", "dataset": {"name": "phantom", "options": {"n_train": 200, "n_val": 80, "n_test": 80}},
    "size": 16, "classifier": {"name": "tiny-cnn"}, "real_data": [0.2, 0.5], "seeds": [0],
    "generators": [{"name": "recording"}],
    "protocols": [{"name": "supplemented", "ratios": [1, 3], "schedule": "budget-quick"},
                  {"name": "synthetic-only", "ratios": [1], "schedule": "budget-quick"}],
    "subsets": {"tuning_min_per_class": 6},
    "evaluation": {"bootstrap_resamples": 20}, "quality": {"enabled": False},
}


@pytest.fixture(scope="module")
def scarce_run(tmp_path_factory):
    # a short budget for the test (the schedule dict is shared by every protocol, like the real one)
    mp = pytest.MonkeyPatch()
    mp.setitem(protocols._SCHEDULES_V1["budget-quick"], "steps", 12)
    mp.setitem(protocols._SCHEDULES_V1["budget-quick"], "eval_rounds", 3)
    mp.setitem(protocols._SCHEDULES_V1["budget-quick"], "warmup_steps", 2)
    RecordingGenerator.seen.clear()
    RecordingGenerator.asked.clear()
    out = tmp_path_factory.mktemp("scarce")
    spec = spec_from_data(SPEC, "test-spec")
    runner = Runner(spec, out=out, device="cpu", progress=False,
                    plugins=plugins_with_generator("recording", RecordingGenerator))
    summary = runner.run()
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    yield runner, summary, records
    mp.undo()


def test_every_protocol_at_a_size_gets_the_same_optimization_budget(scarce_run):
    _, summary, records = scarce_run
    assert not summary.failed and len(records) == 2 * (1 + 2 + 2 + 1)  # real-only, noise r1 r3, gen r1 r3, syn-only
    for rec in records:
        clf = rec["classifier"]
        assert clf["recipe"]["steps"] == 12 and clf["recipe"]["epochs"] is None
        assert clf["steps"] == 12 and clf["images_seen"] == 12 * 64, rec["cell_id"]
        assert len(clf["history"]) == 3
    # while the training sets differ in size by a factor of 4
    sizes = {rec["training_set"]["n"] for rec in records if rec["cell"]["real_data"] == 0.2}
    assert len(sizes) >= 3


def test_the_generator_learns_only_from_its_sizes_subset(scarce_run):
    runner, _, records = scarce_run
    full = runner.dataset(runner.spec.dataset)
    subsets = {size: set(runner.training_source(size).train.keys) for size in (0.2, 0.5)}
    assert subsets[0.2] < subsets[0.5] < set(full.train.keys)
    # one fit per size, each shown exactly its subset (and never a validation or test image)
    assert sorted(map(frozenset, RecordingGenerator.seen)) == sorted(frozenset(s) for s in subsets.values())
    # the conditions it is asked for are those of the subset, r times
    by_size = {rec["cell"]["real_data"]: rec for rec in records
               if rec["cell"]["protocol"] == "synthetic-only.v2"}
    for size, rec in by_size.items():
        assert rec["generator"]["synthetic"]["n"] == len(subsets[size])
        assert f"{len(subsets[size])} images" in rec["generator"]["fitted_on"]
    for rec in records:  # the leakage guard's groups are the subset's patients
        if rec["cell"]["protocol"] != "real-only.v1":
            continue
        assert rec["training_set"]["n_real"] == rec["real_data"]["n_train"] == len(subsets[rec["cell"]["real_data"]])


def test_records_carry_the_subset_and_the_tuning_split_rule(scarce_run):
    runner, _, records = scarce_run
    full = runner.dataset(runner.spec.dataset)
    for rec in records:
        sub = rec["real_data"]
        assert sub["size"] == rec["cell"]["real_data"] and sub["seed"] == 0 and sub["fingerprint"]
        assert sub["n_val"] < len(full.val) or sub["size"] == 1.0
        counts = sub["val_label_counts"][full.label_names[0]]
        assert min(counts["positive"], counts["negative"]) >= 6
        if rec["cell"]["protocol"] != "synthetic-only.v2":
            assert rec["training_set"]["tuning_set"].endswith(f"n={sub['n_val']})")


def test_supplemented_cells_are_compared_with_real_only_and_the_noise_control_of_their_size(scarce_run):
    _, _, records = scarce_run
    ids = {rec["cell_id"] for rec in records}
    for rec in records:
        cell = rec["cell"]
        if cell["protocol"] != "supplemented.v1" or cell["generator"]["name"] != "recording":
            continue
        size = size_token(cell["real_data"])
        (comp,) = rec["comparisons"].values()
        assert f"real-only.v1__none__r0__real={size}__" in comp["baseline"] and comp["baseline"] in ids
        (control,) = rec["vs_noise_control"].values()
        assert f"supplemented.v1__noise__r{cell['ratio']:g}__real={size}__" in control["baseline"]
        assert math.isfinite(control["labels"][next(iter(control["labels"]))]["delta"])


def _copy_records(run, dest, *, drop: str = ""):
    """The run's records without their cell folders (what a published leaderboard keeps)."""
    (dest / "cells").mkdir(parents=True)
    for path in (run / "cells").glob("*.json"):
        if not drop or drop not in path.name:
            shutil.copy(path, dest / "cells" / path.name)


def _resumed(runner, out):
    return Runner(runner.spec, out=out, device="cpu", progress=False,
                  plugins=plugins_with_generator("recording", RecordingGenerator))


GENERATOR_CELL = "supplemented.v1__recording__r1__real=0.2__"


def test_a_run_resumed_from_records_alone_re_runs_the_cells_it_is_paired_with(scarce_run, tmp_path):
    """Records copied without their predictions (a published leaderboard's records/) hold no
    per-image scores, so a new generator cell could not be paired with them: the real-only and
    noise-control cells are re-run first (the same numbers), then the new cell is compared."""
    from cxrbench.plan import plan

    runner, _, records = scarce_run
    _copy_records(runner.store.out, tmp_path, drop=GENERATOR_CELL)
    resumed = _resumed(runner, tmp_path)
    status = {c["cell"]: c["status"] for c in plan(resumed)["cells"]}
    for cell, text in status.items():
        if cell.startswith(("real-only", "supplemented.v1__noise")):
            assert text.startswith("to run (its predictions for phantom:test are missing"), (cell, text)
        elif cell.startswith(GENERATOR_CELL):
            assert text == "to run"
        else:
            assert text == "finished", (cell, text)
    summary = resumed.run()
    assert not summary.failed and len(summary.ok) == 2 + 4 + 1  # real-only x 2 sizes, noise x 2 r x 2 sizes, one cell
    new = {json.loads(p.read_text())["cell_id"]: json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*.json")}
    (cell,) = [rec for cid, rec in new.items() if cid.startswith(GENERATOR_CELL)]
    (comp,) = cell["comparisons"].values()
    (control,) = cell["vs_noise_control"].values()
    assert comp["baseline"].startswith("real-only.v1__none__r0__real=0.2__")
    assert control["baseline"].startswith("supplemented.v1__noise__r1__real=0.2__")
    for rec in records:  # the re-run references reproduce the originals' numbers
        if rec["cell_id"].startswith(("real-only", "supplemented.v1__noise")):
            assert new[rec["cell_id"]]["metrics"] == rec["metrics"], rec["cell_id"]


def test_a_moved_results_folder_pairs_with_the_predictions_beside_its_records(scarce_run, tmp_path):
    """Records store their predictions' path as the run wrote it (relative to where it was
    started): a folder moved or renamed since is read from its own cell folders."""
    from cxrbench.store import atomic_write_json, seal

    runner, _, _ = scarce_run
    moved = tmp_path / "moved"
    shutil.copytree(runner.store.out, moved)
    for path in (moved / "cells").glob("*.json"):
        rec = json.loads(path.read_text())
        if GENERATOR_CELL in path.name:
            path.unlink()
            continue
        for tname, stored in (rec.get("artifacts") or {}).get("predictions", {}).items():
            rec["artifacts"]["predictions"][tname] = f"runs/gone/cells/{rec['cell_id']}/{Path(stored).name}"
        atomic_write_json(path, seal(rec))
    summary = _resumed(runner, moved).run()
    assert not summary.failed and len(summary.ok) == 1 and summary.ok[0].startswith(GENERATOR_CELL)
    (path,) = [p for p in (moved / "cells").glob("*.json") if GENERATOR_CELL in p.name]
    rec = json.loads(path.read_text())
    assert rec["comparisons"] and rec["vs_noise_control"]


def test_a_run_resumed_from_a_published_leaderboard_re_runs_nothing_it_has(scarce_run, tmp_path):
    """A leaderboard ships every record's predictions beside its images (assets/): records +
    assets copied into a run folder is the run itself, so a new cell is paired with the
    published references as they are (none is re-run, so none can score differently)."""
    from cxrbench.leaderboard import build_leaderboard
    from cxrbench.plan import plan
    from cxrbench.rescore import rescore_run

    runner, _, records = scarce_run
    source = tmp_path / "scarce"
    _copy_records(runner.store.out, source, drop=GENERATOR_CELL)
    for rec in records:  # the cell folders (predictions, images) of the records kept
        if GENERATOR_CELL not in rec["cell_id"] and (runner.store.out / "cells" / rec["cell_id"]).is_dir():
            shutil.copytree(runner.store.out / "cells" / rec["cell_id"], source / "cells" / rec["cell_id"])
    summary = build_leaderboard([source], tmp_path / "published")
    assert not any("without their predictions" in n for n in summary["notes"])
    published_assets = tmp_path / "published" / "assets" / "scarce"
    n_records = len(list((source / "cells").glob("*.json")))
    assert len(list(published_assets.rglob("predictions-*.csv"))) == n_records  # one test set: one file each
    assert len(list(published_assets.rglob("tuning-predictions.csv"))) == n_records  # for rescore --threshold
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "published" / "records" / "scarce", resumed_dir)
    shutil.copytree(tmp_path / "published" / "assets" / "scarce", resumed_dir, dirs_exist_ok=True)
    # rescorable as it is, thresholds re-chosen on the shipped tuning-set scores included
    report = rescore_run(resumed_dir, threshold="f1", dry_run=True)
    assert not report.errors and not any("store no tuning-set scores" in line for line in report.lines), report.lines
    resumed = _resumed(runner, resumed_dir)
    status = {c["cell"]: c["status"] for c in plan(resumed)["cells"]}
    assert {c for c, text in status.items() if text != "finished"} == {
        c for c in status if c.startswith(GENERATOR_CELL)}, status
    result = resumed.run()
    assert not result.failed and len(result.ok) == 1 and result.ok[0].startswith(GENERATOR_CELL)
    (path,) = [p for p in (resumed_dir / "cells").glob("*.json") if GENERATOR_CELL in p.name]
    assert json.loads(path.read_text())["comparisons"]


def test_a_leaderboard_says_which_records_came_without_their_predictions(scarce_run, tmp_path):
    from cxrbench.leaderboard import build_leaderboard

    from cxrbench.store import atomic_write_json, seal

    runner, _, records = scarce_run
    _copy_records(runner.store.out, tmp_path / "bare")
    for path in (tmp_path / "bare" / "cells").glob("*.json"):  # where the run wrote them is gone too
        rec = json.loads(path.read_text())
        for tname, stored in rec["artifacts"]["predictions"].items():
            rec["artifacts"]["predictions"][tname] = f"runs/gone/cells/{rec['cell_id']}/{Path(stored).name}"
        atomic_write_json(path, seal(rec))
    summary = build_leaderboard([tmp_path / "bare"], tmp_path / "published")
    (note,) = [n for n in summary["notes"] if "without their predictions" in n]
    assert note.startswith(f"{len(records)} record(s) without their predictions files")
    assert not list((tmp_path / "published").rglob("predictions-*.csv"))


def test_a_cell_compared_with_an_earlier_run_of_its_reference_is_re_run(scarce_run, tmp_path):
    """A reference re-run since (another CPU, its predictions gone) can score differently: the
    cells whose comparisons were made against its earlier run are outdated and re-run."""
    from cxrbench.plan import plan
    from cxrbench.store import atomic_write_json, seal

    runner, _, _ = scarce_run
    run = tmp_path / "run"
    shutil.copytree(runner.store.out, run)
    (path,) = [p for p in (run / "cells").glob("*.json") if GENERATOR_CELL in p.name]
    rec = json.loads(path.read_text())
    for entry in rec["comparisons"].values():  # as if real-only scored 0.01 higher back then
        for label in entry["labels"].values():
            label["auroc_baseline"] += 0.01
    atomic_write_json(path, seal(rec))
    status = {c["cell"]: c["status"] for c in plan(_resumed(runner, run))["cells"]}
    (todo,) = [c for c, text in status.items() if text != "finished"]
    assert todo.startswith(GENERATOR_CELL)
    assert status[todo].startswith("to run (compared with an earlier run of real-only seed0 on phantom:test (AUROC")
    summary = _resumed(runner, run).run()
    assert not summary.failed and len(summary.ok) == 1 and summary.ok[0].startswith(GENERATOR_CELL)
    assert all(c["status"] == "finished" for c in plan(_resumed(runner, run))["cells"])


HOLD = """
import sys, time
from cxrbench.integrity import CellLock
lock = CellLock(sys.argv[1])
assert lock.acquire(blocking=False)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_cell_waits_for_the_reference_another_run_is_computing(scarce_run, tmp_path, caplog):
    """Two runs into one folder: while the other holds the real-only cell, this one leaves it and
    every cell compared with it, and comes back to them in order (the comparisons need its record)."""
    import logging
    import subprocess
    import sys

    from cxrbench.config import spec_from_data

    runner, _, _ = scarce_run
    spec = spec_from_data({**SPEC, "real_data": [0.2], "protocols": [
        {"name": "supplemented", "ratios": [1], "schedule": "budget-quick"}]}, "test-spec")
    mine = Runner(spec, out=tmp_path, device="cpu", progress=False,
                  plugins=plugins_with_generator("recording", RecordingGenerator))
    (base,) = [c for c in expand_cells(spec) if c.protocol.name == "real-only"]
    record = mine.store.record_path(f"{base.id}__{mine._context_key(base)}")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(record), "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level(logging.INFO, logger="cxrbench"):
            summary = mine.run()
    finally:
        holder.kill()
        holder.wait()
    assert not summary.failed and len(summary.ok) == 3
    log = caplog.text
    assert f"{base.id}: another run is computing it; waiting" in log
    assert f"compared with {base.id}, which another run is computing; waiting" in log
    (cell,) = [json.loads(p.read_text()) for p in (tmp_path / "cells").glob("supplemented.v1__recording*.json")]
    assert cell["comparisons"] and cell["vs_noise_control"]


def test_show_says_when_only_one_seed_of_a_row_finished(scarce_run, tmp_path, capsys):
    """A row over two seeds, one failed: its mean has no sd, and ``show`` says so (it crashed)."""
    from cxrbench.cli import print_table
    from cxrbench.store import atomic_write_json, seal

    runner, _, records = scarce_run
    _copy_records(runner.store.out, tmp_path)
    (rec,) = [r for r in records if r["cell_id"].startswith(GENERATOR_CELL)]
    failed = {k: v for k, v in rec.items() if k in ("cell", "cell_id", "protocol", "spec", "created", "versions")}
    failed["cell"] = {**rec["cell"], "seed": 1}
    failed["cell_id"] = rec["cell_id"].replace("__seed0__", "__seed1__")
    failed.update(status="failed", error={"type": "RuntimeError", "message": "out of memory", "cause": None})
    atomic_write_json(tmp_path / "cells" / f"{failed['cell_id']}.json", seal(failed))
    print_table(tmp_path)
    text = capsys.readouterr().out
    assert f"FAILED {failed['cell_id']}: out of memory" in text
    assert "n/a (1 seed ok)" in text and "1/2" in text


def test_show_has_a_real_data_column_and_the_content_gain(scarce_run, capsys):
    from cxrbench.cli import print_table

    runner, _, _ = scarce_run
    print_table(runner.store.out)
    text = capsys.readouterr().out
    assert "real data (n)" in text and "20% (" in text and "50% (" in text
    assert "learning curve: phantom 16 px, tiny-cnn budget-quick" in text and "worth (real images)" in text


def test_learning_curves_put_every_size_on_the_real_only_curve(scarce_run):
    from cxrbench.learning_curves import learning_curves, plain_reading

    _, _, records = scarce_run
    (group,) = learning_curves(records)
    ns = [p["n"] for p in group["real_only"]]
    assert ns == sorted(ns) and len(ns) == 2
    assert {p["n"] for p in group["points"]} == set(ns)
    for p in group["points"]:
        assert p["equivalent"]["text"] and p["gain"] is not None
        assert (p["content_gain"] is not None) == (p["protocol"] == "supplemented.v1" and p["generator"] != "noise")
    assert plain_reading(group)  # always says something, "no generator helps" included


def test_the_convergence_script_compares_each_size_under_twice_the_steps(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    mp = pytest.MonkeyPatch()
    for name, steps in (("budget-quick", 8), ("budget-standard", 16)):
        mp.setitem(protocols._SCHEDULES_V1[name], "steps", steps)
        mp.setitem(protocols._SCHEDULES_V1[name], "eval_rounds", 2)
        mp.setitem(protocols._SCHEDULES_V1[name], "warmup_steps", 1)
    try:
        spec = spec_from_data({**SPEC, "generators": [], "seeds": [0, 1], "real_data": [0.3, 1.0],
                               "protocols": [{"name": "real-only", "schedule": "budget-quick"},
                                             {"name": "real-only", "schedule": "budget-standard"}]}, "test-spec")
        summary = Runner(spec, out=tmp_path / "run", device="cpu", progress=False).run()
    finally:
        mp.undo()
    assert len(summary.ok) == 8
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "scarce_convergence.py"
    module_spec = importlib.util.spec_from_file_location("scarce_convergence", path)
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)
    code = script.main([str(tmp_path / "run"), "--json", str(tmp_path / "c.json")])
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert [r["size_text"] for r in rows] == ["30%", "all"] and all(r["seeds"] == [0, 1] for r in rows)
    for r in rows:
        assert r["difference"] == pytest.approx(r["budget-standard"]["mean"] - r["budget-quick"]["mean"])
        lo, hi = r["budget-quick"]["ci"]
        assert r["long_mean_inside_quick_ci"] == (lo <= r["budget-standard"]["mean"] <= hi)
    assert code == (0 if all(r["long_mean_inside_quick_ci"] for r in rows) else 3)
    assert "converged" in capsys.readouterr().out
    assert script.main([str(tmp_path)]) == 2  # not a run folder: one line, exit 2
