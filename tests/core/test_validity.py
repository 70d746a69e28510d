"""Numbers that mean what they say (issue #9): synthetic-only.v2 sees no real data before the
test, runs are reproducible, truncated fits are keyed apart and marked, all-real test sets are
guarded, and seeds pool into aggregate rows."""

import json
from dataclasses import dataclass, field

import pytest
import torch

from cxrbench.config import spec_from_data
from cxrbench.contracts import Generator, GeneratorCapabilities
from cxrbench.runner import Runner
from cxrbench.testing import plugins_with_generator

PHANTOM = {"name": "phantom", "options": {"n_train": 120, "n_val": 60, "n_test": 80}}


def _spec(**over):
    data = {
        "name": "validity", "dataset": PHANTOM, "size": 16, "classifier": {"name": "tiny-cnn"},
        "generators": [{"name": "noise"}],
        "protocols": [{"name": "synthetic-only.v1", "schedule": "quick"},
                      {"name": "synthetic-only.v2", "schedule": "quick"}],
        "evaluation": {"bootstrap_resamples": 30},
    }
    data.update(over)
    return spec_from_data(data, "test-spec")


class PoisonedValRunner(Runner):
    """Replaces the real validation split's labels (flipped) and images (inverted) after loading."""

    def dataset(self, ref):
        loaded = super().dataset(ref)
        if not getattr(loaded, "_poisoned", False):
            loaded.val.labels = 1.0 - loaded.val.labels
            loaded.val.images = 255 - loaded.val.images
            loaded._poisoned = True
        return loaded


def _records(out):
    return {json.loads(p.read_text())["cell"]["protocol"]: json.loads(p.read_text())
            for p in (out / "cells").glob("synthetic-only*.json")}


def _predictions(rec):
    return open(next(iter(rec["artifacts"]["predictions"].values()))).read()


def test_v2_uses_no_real_tuning_data_and_v1_does(tmp_path):
    spec = _spec()
    Runner(spec, out=tmp_path / "clean", cache_dir=tmp_path / "c", device="cpu", progress=False).run()
    PoisonedValRunner(spec, out=tmp_path / "poisoned", cache_dir=tmp_path / "c", device="cpu", progress=False).run()
    clean, poisoned = _records(tmp_path / "clean"), _records(tmp_path / "poisoned")
    v1c, v1p = clean["synthetic-only.v1"], poisoned["synthetic-only.v1"]
    v2c, v2p = clean["synthetic-only.v2"], poisoned["synthetic-only.v2"]
    # v2: not one number moves when every real validation image and label is corrupted
    assert _predictions(v2c) == _predictions(v2p)
    assert v2c["thresholds"] == v2p["thresholds"]
    assert v2c["metrics"] == v2p["metrics"]
    assert "synthetic tuning slice" in v2c["training_set"]["tuning_set"]
    assert v2c["protocol"]["tuning"] == "synthetic" and "none" in v2c["protocol"]["real_data_before_test"]
    # v1 selects and thresholds on the real tuning set, so the same corruption changes it
    assert v1c["thresholds"] != v1p["thresholds"]
    assert v1c["metrics"] != v1p["metrics"]
    # the tuning slice is in the manifest, with seeds apart from the training images'
    manifest = json.loads(open(v2c["artifacts"]["synthetic_manifest"]).read())
    tune = [m for m in manifest if m.get("slice") == "tune"]
    train = [m for m in manifest if "replica" in m]
    assert len(tune) == 64 and len(train) == 120
    assert not {m["seed"] for m in tune} & {m["seed"] for m in train}


def test_same_spec_and_seed_reproduce_to_1e6(tmp_path):
    spec = _spec(protocols=[{"name": "synthetic-only", "schedule": "quick"}])
    aucs = []
    for tag in ("a", "b"):  # separate caches: generation and training both rerun
        Runner(spec, out=tmp_path / tag, cache_dir=tmp_path / f"cache-{tag}", device="cpu", progress=False).run()
        rec = _records(tmp_path / tag)["synthetic-only.v2"]
        aucs.append(rec["metrics"]["phantom:test"]["macro"]["auroc"])
    assert abs(aucs[0] - aucs[1]) < 1e-6


# --------------------------------------------------------------------------- truncated fits

CALLS = {"fit": 0}


@dataclass
class BudgetOptions:
    train_steps: int = 10
    #: a wall-clock budget: runtime-only, so not part of the fit key
    max_train_minutes: float | None = field(default=None, metadata={"runtime": True})


class BudgetedGenerator(Generator):
    """Stops 'training' at half its steps when given a time budget, as a learned one would."""

    name = "budgeted"
    capabilities = GeneratorCapabilities(labels=True, needs_training=True)

    Options = BudgetOptions

    def fit(self, train, *, progress=True):
        CALLS["fit"] += 1
        asked = self.options.train_steps
        done = asked // 2 if self.options.max_train_minutes else asked
        self.steps = done
        return {"steps": done, "steps_requested": asked, "truncated": done < asked}

    def generate(self, conditions):
        value = 40 + 10 * self.steps
        return torch.full((len(conditions), 1, self.size, self.size), value, dtype=torch.uint8)

    def save(self, directory):
        (directory / "steps.json").write_text(json.dumps(self.steps))

    def load(self, directory):
        self.steps = json.loads((directory / "steps.json").read_text())


def _budget_run(tmp_path, tag, options):
    # (its images ignore the seed on purpose: seed_check warn keeps its cells)
    spec = _spec(generators=[{"name": "budgeted", "options": options, "seed_check": "warn"}],
                 protocols=[{"name": "synthetic-only", "schedule": "quick"}])
    Runner(spec, out=tmp_path / tag, cache_dir=tmp_path / "cache", device="cpu", progress=False,
           plugins=plugins_with_generator("budgeted", BudgetedGenerator)).run()
    return _records(tmp_path / tag)["synthetic-only.v2"]


def test_truncated_fit_is_keyed_apart_marked_and_reused(tmp_path, capsys):
    from cxrbench.cli import print_table

    CALLS["fit"] = 0
    cut = _budget_run(tmp_path, "cut", {"max_train_minutes": 1.0})
    assert cut["generator"]["truncated"] is True and cut["generator"]["fit_key"].endswith("-truncated-5")
    assert cut["generator"]["options"]["train_steps"] == 10  # effective options recorded
    # the same budget again reuses the truncated model instead of training once more
    again = _budget_run(tmp_path, "again", {"max_train_minutes": 1.0})
    assert CALLS["fit"] == 1 and again["generator"]["cached"] and again["generator"]["truncated"]
    # every table marks it
    print_table(tmp_path / "cut")
    assert "TRUNCATED fit: 5/10 steps" in capsys.readouterr().out
    # no budget: the truncated model is never taken for the full one
    full = _budget_run(tmp_path, "full", {})
    assert CALLS["fit"] == 2 and full["generator"]["truncated"] is False
    assert cut["generator"]["fit_key"] == f"{full['generator']['fit_key']}-truncated-5"
    assert full["metrics"] != cut["metrics"]
    # once the full fit exists, a budgeted spec gets it (the fit its steps define), not the cut one
    later = _budget_run(tmp_path, "later", {"max_train_minutes": 1.0})
    assert CALLS["fit"] == 2 and later["generator"]["truncated"] is False


def test_train_steps_is_in_the_fit_key_and_presets_resolve(tmp_path):
    from cxrbench.generation import fit_relevant
    from cxrbench.plugins.generators.ddpm import DDPMGenerator, DDPMOptions

    preset = DDPMGenerator(DDPMOptions(preset="tiny"), size=16)
    explicit = DDPMGenerator(DDPMOptions(preset="tiny", train_steps=300, cfg_scale=4.0), size=16)
    longer = DDPMGenerator(DDPMOptions(preset="tiny", train_steps=301), size=16)
    keys = [fit_relevant(DDPMOptions, g.effective_options()) for g in (preset, explicit, longer)]
    assert keys[0] == keys[1]  # the preset's own value, spelt out, is the same fit (cfg_scale: sampling only)
    assert keys[0] != keys[2] and keys[2]["train_steps"] == 301
    assert "max_train_minutes" not in keys[0] and preset.effective_options()["max_train_minutes"] is None


# --------------------------------------------------------------------------- all-real test sets


class BlindGenerator(Generator):
    """Never sees the real data (like a hosted image model): label-dependent flat images."""

    name = "blind"
    capabilities = GeneratorCapabilities(labels=True, needs_training=False, sees_training_data=False)

    def fit(self, train, *, progress=True):  # pragma: no cover - the runner must not call it
        raise AssertionError("fit() called on a generator that never sees training data")

    def generate(self, conditions):
        vals = torch.tensor([90 + 60 * c.labels[0] for c in conditions], dtype=torch.uint8)
        return vals.view(-1, 1, 1, 1).expand(-1, 1, self.size, self.size).clone()


def test_all_real_test_set_needs_a_generator_that_never_saw_it(tmp_path):
    spec = _spec(external=[{**PHANTOM, "test": "all"}],
                 generators=[{"name": "blind", "seed_check": "warn"}, {"name": "noise"}],
                 protocols=[{"name": "synthetic-only", "schedule": "quick"}])
    summary = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "c", device="cpu", progress=False,
                     plugins=plugins_with_generator("blind", BlindGenerator)).run()
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    by = {(r["cell"]["protocol"], (r["cell"]["generator"] or {}).get("name")): r for r in records}
    blind = by[("synthetic-only.v2", "blind")]
    assert blind["status"] == "ok" and blind["generator"]["fitted_on"] is None
    assert len(open(blind["artifacts"]["predictions"]["phantom-ext1:all"]).read().splitlines()) == 1 + 120 + 60 + 80
    # noise was fitted on phantom's training patients: refused
    key = ("synthetic-only.v2", "noise")
    assert by[key]["status"] == "failed" and by[key]["error"]["type"] == "LeakageError"
    assert "phantom-ext1:all" in by[key]["error"]["message"]
    # no real-only baseline is added: it would be tested on its own training patients
    assert ("real-only.v1", None) not in by
    assert len(summary.failed) == 1


# --------------------------------------------------------------------------- aggregates


def test_rubin_interval_matches_its_definition():
    from scipy import stats

    from cxrbench.aggregate import rubin_interval

    est, ses = [0.61, 0.70, 0.52, 0.66, 0.58], [0.02, 0.025, 0.02, 0.03, 0.022]
    out = rubin_interval(est, ses)
    m = 5
    mean = sum(est) / m
    b = sum((x - mean) ** 2 for x in est) / (m - 1)
    w = sum(s * s for s in ses) / m
    t = w + (1 + 1 / m) * b
    df = (m - 1) * (1 + w / ((1 + 1 / m) * b)) ** 2
    half = stats.t.ppf(0.975, df) * t**0.5
    assert out["mean"] == pytest.approx(mean) and out["sd"] == pytest.approx(b**0.5)
    assert out["df"] == pytest.approx(df) and out["ci"] == pytest.approx([mean - half, mean + half])
    # one seed: the cell's own (normal) interval
    one = rubin_interval([0.8], [0.02])
    assert one["ci"] == pytest.approx([0.8 - 1.959964 * 0.02, 0.8 + 1.959964 * 0.02], abs=1e-6)


def test_a_pooled_interval_is_clipped_to_the_range_of_its_quantity():
    """Three seeds that disagree (the external noise floor: 0.53, 0.30, 0.53) give a t interval
    (df ~ 2) past [0, 1]; with bounds it is clipped and says so, and an interval inside its range
    is left exactly as it was."""
    from cxrbench.aggregate import DIFFERENCE, UNIT, rubin_interval
    from cxrbench.external_validity import pool_seeds

    est, ses = [0.532, 0.301, 0.531], [0.026, 0.021, 0.026]
    free, bounded = rubin_interval(est, ses), rubin_interval(est, ses, bounds=UNIT)
    assert free["ci"][0] < 0 and free["ci"][1] > 1  # the unclipped interval holds impossible AUROCs
    assert bounded["ci"] == [0.0, 1.0] and bounded["ci_clipped"] is True
    assert bounded["mean"] == free["mean"] and bounded["total_var"] == free["total_var"]
    one_side = rubin_interval([0.05, 0.30, 0.10], [0.02, 0.02, 0.02], bounds=UNIT)
    assert one_side["ci"][0] == 0.0 and 0.3 < one_side["ci"][1] < 1.0
    inside = [0.90, 0.91, 0.92]
    assert rubin_interval(inside, ses, bounds=UNIT) == rubin_interval(inside, ses)  # no ci_clipped key either
    assert rubin_interval([-0.6, 0.4, 0.9], ses, bounds=DIFFERENCE)["ci"] == [-1.0, 1.0]
    # the leaderboards' pooling (external, subgroups, segmentation) passes the bounds through
    pooled = pool_seeds(est, [[e - 1.96 * s, e + 1.96 * s] for e, s in zip(est, ses)], bounds=UNIT)
    assert pooled["ci"] == [0.0, 1.0] and pooled["ci_clipped"] is True


def test_seeds_give_aggregate_rows_in_summary_and_show(tmp_path, capsys):
    from cxrbench.cli import main

    spec = _spec(seeds=[0, 1, 2], protocols=[{"name": "synthetic-only", "schedule": "quick"}])
    Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "c", device="cpu", progress=False).run()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = {(a["protocol"], a["generator"]): a for a in summary["aggregates"]}
    noise = rows[("synthetic-only.v2", "noise")]
    per_seed = sorted(
        (json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("synthetic-only.v2__noise*.json")),
        key=lambda r: r["cell"]["seed"])
    vals = [r["metrics"]["phantom:test"]["macro"]["auroc"] for r in per_seed]
    assert noise["seeds"] == [0, 1, 2] and noise["metrics"]["auroc"]["per_seed"] == pytest.approx(vals)
    assert noise["metrics"]["auroc"]["mean"] == pytest.approx(sum(vals) / 3)
    lo, hi = noise["metrics"]["auroc"]["ci"]
    assert lo < min(vals) and hi > max(vals)  # pools seed spread with the bootstrap error
    assert noise["vs_real_only"]["n_seeds"] == 3 and len(noise["vs_real_only"]["p_values"]) == 3
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "over seeds" in out and f"{sum(vals) / 3:.3f}" in out


# --------------------------------------------------------------------------- fit seeds


@dataclass
class SeededOptions:
    seed: int = 0  # as a learned generator's preset resolves an unset seed


class SeededGenerator(BudgetedGenerator):
    """Its 'training' depends on its seed option, as a learned generator's weights do."""

    name = "seeded"
    Options = SeededOptions

    def fit(self, train, *, progress=True):
        CALLS["fit"] += 1
        self.steps = 3 + self.options.seed
        return {"steps": self.steps}


def _seeded_run(tmp_path, tag, ref):
    spec = _spec(generators=[{"name": "seeded", "seed_check": "warn", **ref}], seeds=[0, 1],
                 protocols=[{"name": "synthetic-only", "schedule": "quick"}])
    Runner(spec, out=tmp_path / tag, cache_dir=tmp_path / "cache", device="cpu", progress=False,
           plugins=plugins_with_generator("seeded", SeededGenerator)).run()
    recs = [json.loads(p.read_text()) for p in sorted((tmp_path / tag / "cells").glob("synthetic-only*.json"))]
    return sorted(recs, key=lambda r: r["cell"]["seed"])


def test_fit_seed_per_seed_trains_one_fit_per_seed_in_one_row(tmp_path):
    CALLS["fit"] = 0
    shared = _seeded_run(tmp_path, "shared", {})
    assert CALLS["fit"] == 1 and [r["generator"]["fit_seed"] for r in shared] == [0, 0]
    assert shared[0]["generator"]["fit_key"] == shared[1]["generator"]["fit_key"]
    per_seed = _seeded_run(tmp_path, "per-seed", {"fit_seed": "per-seed"})
    # seed 0's fit is the shared one (same options, same seed): reused; seed 1 trains its own
    assert CALLS["fit"] == 2 and [r["generator"]["fit_seed"] for r in per_seed] == [0, 1]
    assert per_seed[0]["generator"]["fit_key"] == shared[0]["generator"]["fit_key"]
    assert per_seed[1]["generator"]["fit_key"] != shared[1]["generator"]["fit_key"]
    assert {r["generator"]["label"] for r in per_seed} == {"seeded"}  # one row over both seeds
    summary = json.loads((tmp_path / "per-seed" / "summary.json").read_text())
    assert [sorted(row["seeds"]) for row in summary["aggregates"] if row["generator"] == "seeded"] == [[0, 1]]


@pytest.mark.parametrize("ref, message", [
    ({"name": "noise", "fit_seed": "per-seed"}, "needs a generator that trains"),
    ({"name": "seeded", "fit_seed": "per-seed", "options": {"seed": 3}}, "remove options.seed"),
    ({"name": "seeded", "fit_seed": "each"}, "fit_seed"),
])
def test_fit_seed_per_seed_is_checked_at_validate(ref, message):
    from cxrbench.spec_validation import validate_plugins
    from cxrbench.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        validate_plugins(_spec(generators=[ref]), "test-spec", plugins_with_generator("seeded", SeededGenerator))
