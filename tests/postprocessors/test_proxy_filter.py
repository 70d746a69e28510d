"""`proxy-filter`: drops what a real-data proxy contradicts, records rejection rates, caches its
proxy; the runner tops the filtered set back up, or fails in one line when it cannot."""

import pytest
import torch

from cxrbench.contracts import Condition, SyntheticBatch
from cxrbench.errors import CxrbenchError
from cxrbench.plugins.postprocessors.proxy_filter import ProxyFilter, ProxyFilterOptions
from cxrbench.testing import make_toy_images, make_toy_split

SIZE = 16


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    torch.set_num_threads(1)
    step = ProxyFilter(ProxyFilterOptions(steps=150, width=8))
    cache = tmp_path_factory.mktemp("cache")
    info = step.prepare(make_toy_split(256, SIZE, seed=1), cache_dir=cache, progress=False)
    return step, cache, info


def _batch(labels, drawn_as, seed=0):
    """Images drawn as ``drawn_as`` labels, conditioned on ``labels``."""
    images = make_toy_images(drawn_as, SIZE, seed)
    return SyntheticBatch(images, [Condition(labels=(float(y),), seed=1000 + i) for i, y in enumerate(labels)])


def test_contradicting_images_are_dropped_and_rates_recorded(prepared):
    step, _, _ = prepared
    # 20 faithful images of each label, then 20 label-1 conditions drawn as label 0
    labels = [0] * 20 + [1] * 20 + [1] * 20
    drawn = [0] * 20 + [1] * 20 + [0] * 20
    out = step(_batch(labels, drawn))
    kept_seeds = {c.seed for c in out.conditions}
    faithful = sum(1000 + i in kept_seeds for i in range(40))
    wrong = sum(1000 + i in kept_seeds for i in range(40, 60))
    assert faithful >= 34 and wrong <= 4, (faithful, wrong)
    s = step.stats
    assert s["in"] == 60 and s["kept"] == len(out.conditions) and s["rejected"] == 60 - s["kept"]
    assert s["rejection_rate"]["label0=1"] > s["rejection_rate"]["label0=0"]
    # kept in order, never relabelled
    seeds = [c.seed for c in out.conditions]
    assert seeds == sorted(seeds)


def test_the_proxy_is_cached_by_data_and_options(prepared):
    _, cache, info = prepared
    assert not info["cached"]
    again = ProxyFilter(ProxyFilterOptions(steps=150, width=8))
    assert again.prepare(make_toy_split(256, SIZE, seed=1), cache_dir=cache, progress=False)["cached"]
    # the threshold does not change the network; training options do
    stricter = ProxyFilter(ProxyFilterOptions(steps=150, width=8, threshold=0.7))
    assert stricter.prepare(make_toy_split(256, SIZE, seed=1), cache_dir=cache, progress=False)["cached"]
    other = ProxyFilter(ProxyFilterOptions(steps=150, width=8, seed=1))
    assert not other.prepare(make_toy_split(256, SIZE, seed=1), cache_dir=cache, progress=False)["cached"]


def test_unprepared_filter_says_what_to_do():
    with pytest.raises(Exception, match="prepare"):
        ProxyFilter()(_batch([1], [1]))


class _Drawer:
    """A generator stand-in that draws label 0 for the first ``bad`` seeds it sees per call."""

    name = "drawer"

    def __init__(self, faithful: bool):
        self.faithful = faithful

    def generate(self, conditions):
        drawn = [c.labels[0] if self.faithful else 0.0 for c in conditions]
        return make_toy_images(drawn, SIZE, seed=int(conditions[0].seed) % 1000 if conditions else 0)


class _Chain:
    def __init__(self, step):
        self.step = step

    def __call__(self, batch):
        return self.step(batch)


def test_fill_to_size_tops_up_with_new_seeds(prepared):
    from cxrbench.postprocessing import fill_to_size

    step, _, _ = prepared
    labels = [0, 1] * 10
    original = _batch(labels, [0] * 20)  # every label-1 image contradicts its condition
    kept = step(original)
    assert len(kept.conditions) < 20
    filled, info = fill_to_size(_Drawer(faithful=True), _Chain(step), original, kept, label="drawer", seed=0)
    assert len(filled.conditions) == 20 and filled.images.shape[0] == 20
    assert info["rounds"] >= 1 and info["kept_first_pass"] == len(kept.conditions)
    assert info["rejected_first_pass"] == pytest.approx(1 - len(kept.conditions) / 20)
    assert sorted(c.labels for c in filled.conditions) == sorted(c.labels for c in original.conditions)
    assert not set(info["topup_seeds"]) & {c.seed for c in original.conditions}  # new seeds


def test_fill_to_size_fails_in_one_line_when_the_generator_cannot(prepared):
    from cxrbench.postprocessing import fill_to_size

    step, _, _ = prepared
    original = _batch([1] * 8, [0] * 8)
    with pytest.raises(CxrbenchError, match=r"kept \d of 8 images of 'drawer' after \d+ top-up rounds "
                                            r"\((\d+) images generated, budget 24; labels \(1\): \d of 8 still missing\)") as err:
        fill_to_size(_Drawer(faithful=False), _Chain(step), original, step(original), label="drawer", seed=0)
    assert int(err.value.args[0].split("(")[1].split(" ")[0]) <= 24  # the budget bounds what is generated
    assert "\n" not in str(err.value)


def test_a_run_with_proxy_filter_records_the_chain(tmp_path):
    """`cxrbench run --postprocess proxy-filter` end to end on phantom: the proxy is trained on
    the real train split (its patients counted as seen), the set is filled to its size."""
    import json

    from cxrbench.config import spec_from_data
    from cxrbench.runner import Runner

    spec = spec_from_data({
        "spec_version": 1, "name": "pf", "dataset": {"name": "phantom"}, "size": 16,
        "generators": [{"name": "real"}], "classifier": {"name": "tiny-cnn"},
        "protocols": [{"name": "synthetic-only.v2", "ratios": [1], "schedule": "quick"}],
        "postprocess": [{"name": "proxy-filter", "options": {"steps": 100, "width": 8}}],
        "seeds": [0], "evaluation": {"bootstrap_resamples": 20},
    }, "pf")
    Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "c", device="cpu", progress=False).run()
    rec = json.loads(next((tmp_path / "run" / "cells").glob("synthetic-only*.json")).read_text())
    assert rec["status"] == "ok", rec.get("error")
    pp = rec["generator"]["postprocessing"]
    step = pp["steps"][0]
    assert step["name"] == "proxy-filter" and step["prepare"]["proxy"].endswith(".safetensors")
    first = step["calls"][0]
    assert first["in"] == pp["topup"]["requested"] and first["kept"] == pp["topup"]["kept_first_pass"]
    assert set(first["rejection_rate"]) == {"label0=0", "label0=1"}
    assert rec["training_set"]["n_synthetic"] == pp["topup"]["requested"]
    # an image delivered costs its draw plus the chain's seconds (top-ups included, the proxy's
    # one-off training not) spread over the images delivered (training set + tuning slice)
    from cxrbench.quality.cost import seconds_per_delivered_image

    cost, t, syn = rec["generator"]["cost"], rec["timings"], rec["generator"]["synthetic"]
    assert cost["postprocess_seconds"] == pytest.approx(t["postprocess_s"] - t["postprocess_prepare_s"], abs=2e-3)
    delivered = syn["n"] + syn["tuning_slice"]["n"]
    assert cost["seconds_per_image_delivered"] == pytest.approx(
        cost["generate_seconds_per_image"] + cost["postprocess_seconds"] / delivered, abs=1e-5)
    assert cost["seconds_per_image_delivered"] > cost["generate_seconds_per_image"]
    assert seconds_per_delivered_image(rec) == cost["seconds_per_image_delivered"]


class _CoinDrawer(_Drawer):
    """Draws the condition's label for about half the seeds, the other label otherwise."""

    def generate(self, conditions):
        drawn = [c.labels[0] if (int(c.seed) * 2654435761) >> 7 & 1 else 1.0 - c.labels[0] for c in conditions]
        return make_toy_images(drawn, SIZE, seed=int(conditions[0].seed) % 1000 if conditions else 0)


def test_fill_to_size_keeps_going_while_the_budget_lasts(prepared):
    """Half the images rejected every round: 64 conditions need more than 5 rounds (the old
    bound) but well under the budget of 3 x 64 generated images."""
    from cxrbench.postprocessing import fill_to_size

    step, _, _ = prepared
    original = _batch([0, 1] * 32, [0] * 64)
    gen = _CoinDrawer(faithful=True)
    kept = step(SyntheticBatch(gen.generate(original.conditions), original.conditions))
    filled, info = fill_to_size(gen, _Chain(step), original, kept, label="coin", seed=0)
    assert len(filled.conditions) == 64 and info["rounds"] > 5 and info["generated"] <= 3 * 64
