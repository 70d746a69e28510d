"""The pre-flight of `cxrbench run`: a broken plugin stops the run in seconds with one line naming
it and the problem, before the real-only baseline (or anything else) trains."""

import time

import pytest
import torch

from cxrbench import registry
from cxrbench.checking import PreflightError, preflight
from cxrbench.cells import expand_cells
from cxrbench.config import spec_from_data
from cxrbench.contracts import (
    BuiltClassifier, Classifier, Dataset, Generator, GeneratorCapabilities, Postprocessor, SyntheticBatch,
)
from cxrbench.runner import Runner
from cxrbench.testing import plugins_with

SPEC = {
    "name": "preflight", "size": 16, "classifier": {"name": "tiny-cnn"},
    "dataset": {"name": "phantom", "options": {"n_train": 40, "n_val": 20, "n_test": 20}},
    "generators": [{"name": "noise"}],
    "protocols": [{"name": "synthetic-only", "schedule": "quick"}],
    "evaluation": {"bootstrap_resamples": 20},
}


class FloatImages(Postprocessor):
    name = "float-images"

    def __call__(self, batch):
        return SyntheticBatch(batch.images.float() / 255, batch.conditions)


class Relabels(Postprocessor):
    name = "relabels"

    def __call__(self, batch):
        conds = [type(c)(labels=tuple(1.0 - v for v in c.labels), seed=c.seed) for c in batch.conditions]
        return SyntheticBatch(batch.images, conds)


class OneLogitTooMany(Classifier):
    name = "one-logit-too-many"

    def build(self, num_labels, input_size, pretrained):
        net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, num_labels + 1))
        return BuiltClassifier(net, "scratch")


class IgnoresNumLabels(Classifier):
    """Always one logit: right for a 1-label dataset by accident."""

    name = "ignores-num-labels"

    def build(self, num_labels, input_size, pretrained):
        net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 1))
        return BuiltClassifier(net, "scratch")


class BuildBug(Classifier):
    name = "build-bug"

    def build(self, num_labels, input_size, pretrained):
        return {}["module"]


class GlobalRngBlind(Generator):
    """Never fitted by the runner; draws from the global RNG, so the same seed changes the image."""

    name = "global-rng-blind"
    capabilities = GeneratorCapabilities(needs_training=False, sees_training_data=False)

    def fit(self, train, *, progress=True):  # pragma: no cover - never called
        raise AssertionError

    def generate(self, conditions):
        return torch.randint(0, 256, (len(conditions), 1, self.size, self.size), dtype=torch.uint8)


@pytest.fixture
def no_training(monkeypatch):
    """Any classifier or generator training fails the test: the pre-flight must come first."""
    import cxrbench.training

    def refuse(*a, **k):
        raise AssertionError("a classifier trained before the pre-flight stopped the run")

    monkeypatch.setattr(cxrbench.training, "train_classifier", refuse)


def _run(tmp_path, plugins, **changes):
    spec = spec_from_data({**SPEC, **changes}, "s")
    out = tmp_path / "run"
    start = time.perf_counter()
    with pytest.raises(PreflightError) as info:
        Runner(spec, out=out, cache_dir=tmp_path / "cache", device="cpu", progress=False, plugins=plugins).run()
    assert time.perf_counter() - start < 60
    assert not list((out / "cells").glob("*.json")), "a cell ran before the pre-flight failed"
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("step, expected", [
    (FloatImages, "pre-flight: post-processor 'float-images': a 2-image batch returned images tensor "
                  "torch.float32 (2, 1, 16, 16); expected a tensor torch.uint8 (N, 1, 16, 16)"),
    (Relabels, "pre-flight: post-processor 'relabels': a 2-image batch changed the conditions"),
])
def test_broken_postprocessor_stops_the_run_before_training(tmp_path, no_training, step, expected):
    plugins = plugins_with(("postprocessor", step.name, step))
    assert _run(tmp_path, plugins, postprocess=[{"name": step.name}]).startswith(expected)


def test_broken_classifier_stops_the_run_before_training(tmp_path, no_training):
    plugins = plugins_with(("classifier", "one-logit-too-many", OneLogitTooMany), ("classifier", "build-bug", BuildBug))
    msg = _run(tmp_path, plugins, classifier={"name": "one-logit-too-many"})
    assert msg == ("pre-flight: classifier 'one-logit-too-many': forward of 2 images at 16 px returned tensor "
                   "torch.float32 (2, 2); expected float logits of shape (2, 1)")
    msg = _run(tmp_path, plugins, classifier={"name": "build-bug"})
    assert msg == "pre-flight: classifier 'build-bug' failed in build(): KeyError: 'module'"


def test_a_classifier_that_ignores_num_labels_is_caught_on_a_one_label_dataset(tmp_path, no_training):
    plugins = plugins_with(("classifier", "ignores-num-labels", IgnoresNumLabels))
    msg = _run(tmp_path, plugins, classifier={"name": "ignores-num-labels"})
    assert msg == ("pre-flight: classifier 'ignores-num-labels': forward of 2 images at 16 px built for num_labels=2 "
                   "(the output width must follow num_labels) returned tensor torch.float32 (2, 1); expected float "
                   "logits of shape (2, 2)")


def test_generator_that_needs_no_fit_is_checked_for_seeds(tmp_path, no_training):
    plugins = plugins_with(("generator", "global-rng-blind", GlobalRngBlind))
    msg = _run(tmp_path, plugins, generators=[{"name": "global-rng-blind"}])
    assert msg.startswith("pre-flight: generator 'global-rng-blind': generate() gave other images for the same "
                          "conditions and seeds")


def test_cli_prints_the_one_line_and_exits_2(tmp_path, no_training, monkeypatch, capsys):
    from cxrbench.cli import main

    monkeypatch.setattr(registry, "_CACHED", plugins_with(("postprocessor", "float-images", FloatImages)))
    code = main(["run", "--generator", "noise", "--postprocess", "float-images", "--size", "16", "--no-progress",
                 "--out", str(tmp_path / "cli"), "--cache-dir", str(tmp_path / "c")])
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cxrbench: error:")]
    assert err == ["cxrbench: error: pre-flight: post-processor 'float-images': a 2-image batch returned images "
                   "tensor torch.float32 (2, 1, 16, 16); expected a tensor torch.uint8 (N, 1, 16, 16)"]


def test_preflight_passes_quickly_and_leaves_the_rngs_alone(tmp_path):
    import random

    import numpy as np

    spec = spec_from_data({**SPEC, "postprocess": [{"name": "equalize"}, {"name": "crop-border"}]}, "s")
    runner = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "cache", device="cpu", progress=False)
    runner.device, runner.cache_root = "cpu", tmp_path / "cache"
    def seed():
        torch.manual_seed(5), random.seed(5), np.random.seed(5)

    def draw():
        return torch.rand(1).item(), random.random(), float(np.random.rand())

    seed()
    start = time.perf_counter()
    preflight(runner, expand_cells(spec))
    assert time.perf_counter() - start < 30
    after = draw()
    seed()
    assert after == draw()


class SharedPatient(Dataset):
    """Patient p0 has an image in train and one in test: a leak the loader must refuse."""

    name = "shared-patient"
    label_names = ("y",)
    needs_root = False

    def records(self):
        from cxrbench.contracts import ImageRecord

        rows = [("train", "p0"), ("test", "p0")] + [(s, f"{s}{i}") for s in ("train", "val", "test") for i in range(1, 5)]
        return [ImageRecord(key=f"{s}/{i}", split=s, labels=(float(i % 2),), patient_id=p, source=i)
                for i, (s, p) in enumerate(rows)]

    def read_image(self, record):
        import numpy as np

        return np.full((20, 20), 10 * record.source, np.uint8)


def test_the_passed_line_comes_after_every_check(tmp_path, capsys):
    """issue #29.5: a patient in two splits is reported, and "checks passed" is never printed first."""
    from cxrbench.errors import LeakageError

    plugins = plugins_with(("dataset", "shared-patient", SharedPatient))
    spec = spec_from_data({**SPEC, "dataset": {"name": "shared-patient"}}, "s")
    runner = Runner(spec, out=tmp_path / "run", cache_dir=tmp_path / "c", device="cpu", progress=False,
                    plugins=plugins)
    with pytest.raises(LeakageError, match="p0"):
        runner.run()
    assert "pre-flight checks passed" not in capsys.readouterr().err
