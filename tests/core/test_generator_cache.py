"""Fitted generators and synthetic sets are cached by content: a changed ``version`` refits,
a changed ``sampling_version`` only regenerates, and nothing changed reuses both."""

import json

import torch

from cxrbench.config import spec_from_data
from cxrbench.contracts import Generator, GeneratorCapabilities
from cxrbench.runner import Runner
from cxrbench.testing import plugins_with_generator

CALLS = {"fit": 0, "generate": 0}


class CountingGenerator(Generator):
    """Paints each image with its label's mean training intensity; counts fit/generate calls."""

    name = "counting"
    capabilities = GeneratorCapabilities(labels=True, needs_training=True)

    def fit(self, train, *, progress=True):
        CALLS["fit"] += 1
        y = train.labels[:, 0]
        self.means = [float(train.images[y == v].float().mean()) for v in (0.0, 1.0)]
        return {"train_seconds": 0.0}

    def generate(self, conditions):
        CALLS["generate"] += len(conditions)
        vals = torch.tensor([self.means[int(c.labels[0])] for c in conditions])
        return vals.round().to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, self.size, self.size).clone()

    def save(self, directory):
        (directory / "means.json").write_text(json.dumps(self.means))

    def load(self, directory):
        self.means = json.loads((directory / "means.json").read_text())


def _plugins(**class_attrs):
    return plugins_with_generator("counting", type("Variant", (CountingGenerator,), class_attrs))


SPEC = {
    "name": "cache", "size": 16, "classifier": {"name": "tiny-cnn"},
    "dataset": {"name": "phantom", "options": {"n_train": 60, "n_val": 30, "n_test": 40}},
    "generators": [{"name": "counting", "seed_check": "warn"}],  # one image per label, whatever the seed
    "protocols": [{"name": "synthetic-only", "schedule": "quick"}],
    "evaluation": {"bootstrap_resamples": 20},
}


def _run(tmp_path, tag, **class_attrs):
    spec = spec_from_data(SPEC, "s")
    summary = Runner(spec, out=tmp_path / tag, cache_dir=tmp_path / "cache", device="cpu", progress=False,
                     plugins=_plugins(**class_attrs)).run()
    assert not summary.failed
    return dict(CALLS)


# synthetic-only.v2 generates the training replica (60) and its tuning slice (min(60, 64) = 60);
# every cell also runs the 4-image seed check, cached or not
PER_RUN = 120
SEED_CHECK = 4


def test_versions_decide_what_is_refitted_and_regenerated(tmp_path):
    CALLS.update(fit=0, generate=0)
    first = _run(tmp_path, "a")
    assert first == {"fit": 1, "generate": PER_RUN + SEED_CHECK}
    # same code: fitted generator and synthetic set both come from the cache
    assert _run(tmp_path, "b") == {"fit": 1, "generate": PER_RUN + 2 * SEED_CHECK}
    # a sampler change: same fit, new images
    assert _run(tmp_path, "c", sampling_version="2") == {"fit": 1, "generate": 2 * PER_RUN + 3 * SEED_CHECK}
    # a training change: refit (and so regenerate)
    assert _run(tmp_path, "d", version="2") == {"fit": 2, "generate": 3 * PER_RUN + 4 * SEED_CHECK}
