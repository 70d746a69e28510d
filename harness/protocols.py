"""Fixed, versioned protocols: the recipe that turns a generator into comparable numbers.

A protocol is data, not a code path inside plugins. Its id (``synthetic-only.v1``) is recorded
with every result, and results of different versions never share a leaderboard column.
Changing anything below that can change a score means adding a new version, never editing one.

Khosravi et al.'s rules hold for all of them: synthetic images only ever enter *training*, never
the tuning (validation) set or a test set; every replica of the training set has its own seeds,
recorded in a manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cxrbench.errors import ConfigError

# Classifier schedules shared by the v1 protocols. "quick" is CPU-feasible at 32-64 px;
# "standard" and "paper" are for GPUs (paper: the studies' 224-256 px recipes). These three are
# epoch-defined: their number of steps grows with the training set.
_SCHEDULES_V1: dict[str, dict[str, Any]] = {
    "quick": dict(epochs=6, batch_size=64, optimizer="adamw", lr=2e-3, weight_decay=1e-4,
                  schedule="cosine", warmup_epochs=1, augment=("hflip", "affine"),
                  ema_decay=0.99, selection="val_loss", balance=True),
    "standard": dict(epochs=20, batch_size=64, optimizer="adamw", lr=1e-3, weight_decay=1e-4,
                     schedule="cosine", warmup_epochs=1, augment=("hflip", "affine"),
                     ema_decay=0.999, selection="val_loss", balance=True),
    "paper": dict(epochs=50, batch_size=32, optimizer="adamw", lr=1e-4, weight_decay=1e-5,
                  schedule="cosine", warmup_epochs=2, augment=("hflip", "affine"),
                  ema_decay=0.9998, selection="val_loss", balance=True),
    # Budget schedules: a fixed number of optimizer steps, the same for every real-data size and
    # every protocol, so more training images (even noise) never buy more training. Measured
    # trap (issue #27): at 218 real Kermany images `quick` gave real-only 24 steps and r = 3
    # 84 steps; noise r = 3 "gained" +0.18 AUROC, all of it undertraining of real-only.
    # Model selection after each of `eval_rounds` equal rounds; budget-standard is budget-quick
    # trained twice as long (everything else equal): the convergence check of
    # benchmarks/scarce_convergence.py. budget-quick (300 steps, 19,200 images seen) is sized for
    # a CPU: resnet18 at 32 px trains 40-75 images/s on one shared core here, ~5 min a cell.
    "budget-quick": dict(epochs=None, steps=300, eval_rounds=10, warmup_steps=30, warmup_epochs=0, batch_size=64,
                         optimizer="adamw", lr=2e-3, weight_decay=1e-4, schedule="cosine",
                         augment=("hflip", "affine"), ema_decay=0.99, selection="val_loss", balance=True),
    "budget-standard": dict(epochs=None, steps=600, eval_rounds=20, warmup_steps=60, warmup_epochs=0,
                            batch_size=64, optimizer="adamw", lr=2e-3, weight_decay=1e-4, schedule="cosine",
                            augment=("hflip", "affine"), ema_decay=0.99, selection="val_loss", balance=True),
    "budget-paper": dict(epochs=None, steps=20000, eval_rounds=40, warmup_steps=1000, warmup_epochs=0, batch_size=32,
                         optimizer="adamw", lr=1e-4, weight_decay=1e-5, schedule="cosine",
                         augment=("hflip", "affine"), ema_decay=0.9998, selection="val_loss", balance=True),
}

#: schedules whose optimization budget does not depend on the training set's size: the only
#: ones a spec with a real-data axis accepts (an epoch-defined one measures the budget)
BUDGET_SCHEDULES = tuple(k for k, v in _SCHEDULES_V1.items() if v.get("steps") is not None)


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    description: str
    uses_real_train: bool
    uses_generator: bool
    #: train on the first external dataset's real train split instead of the source's
    external_training: bool = False
    default_ratios: tuple[float, ...] = (0.0,)
    min_ratio: float = 0.0
    max_ratio: float = 0.0
    schedules: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(_SCHEDULES_V1))
    #: where model selection and thresholds come from: "real" (the training dataset's real
    #: validation split) or "synthetic" (a held-out synthetic slice; no real data before the test)
    tuning: str = "real"
    #: size of the synthetic tuning slice: this fraction of the training conditions, at least
    #: ``tuning_minimum`` images (only with tuning="synthetic")
    tuning_fraction: float = 0.0
    tuning_minimum: int = 0
    tuning_set: str = "real validation split of the training dataset (never synthetic)"
    model_selection: str = "lowest real tuning-set loss (EMA weights)"
    thresholds: str = "chosen on the real tuning set (spec evaluation.threshold)"
    test_sets: str = "internal test split + every external dataset's test split (real only)"
    #: what real data reaches training or tuning before the test (recorded, for the reader)
    real_data_before_test: str = "real training split (images, labels) and real validation split"

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def check_ratios(self, ratios: list[float] | None, where: str) -> None:
        if ratios is None:
            return
        if not ratios:
            raise ConfigError(f"{where}: give at least one ratio or leave it out")
        for r in ratios:
            if not self.min_ratio <= r <= self.max_ratio:
                raise ConfigError(
                    f"{where}: ratio {r} is outside {self.min_ratio:g}..{self.max_ratio:g} "
                    f"allowed by {self.id}"
                )

    def recipe(self, schedule: str) -> dict[str, Any]:
        """Everything fixed by this protocol for one schedule (recorded in every result)."""
        data = asdict(self)
        data["schedules"] = {schedule: self.schedules[schedule]}
        data["id"] = self.id
        return data


PROTOCOLS: dict[str, Protocol] = {
    p.id: p
    for p in [
        Protocol(
            name="real-only", version=1, uses_real_train=True, uses_generator=False,
            description="Baseline: the classifier trains on the real training split only (0% synthetic).",
        ),
        Protocol(
            name="synthetic-only", version=1, uses_real_train=False, uses_generator=True,
            default_ratios=(1.0,), min_ratio=0.1, max_ratio=10.0,
            description=(
                "Train only on synthetic images generated for the conditions (labels, demographics) "
                "of the real training split, r times its size; tune and test on real images."
            ),
            real_data_before_test="real validation split (model selection and thresholds) and the generator's fit",
        ),
        Protocol(
            name="synthetic-only", version=2, uses_real_train=False, uses_generator=True,
            default_ratios=(1.0,), min_ratio=0.1, max_ratio=10.0,
            tuning="synthetic", tuning_fraction=0.1, tuning_minimum=64,
            description=(
                "Train only on synthetic images generated for the conditions (labels, demographics) "
                "of the real training split, r times its size. No real image and no real label "
                "reaches classifier training, model selection or thresholds: they use a held-out "
                "synthetic slice with seeds of its own. Real images are used only to test."
            ),
            tuning_set=(
                "held-out synthetic slice: 10% of the training conditions (at least 64), drawn with "
                "seed derive(cell seed, 'tune-subset'), image seeds derive(cell seed, 'tune', i); "
                "post-processed like the training images"
            ),
            model_selection="lowest loss on the synthetic tuning slice (EMA weights)",
            thresholds="chosen on the synthetic tuning slice (spec evaluation.threshold)",
            real_data_before_test=(
                "none, except what the generator learned in fit() on the real training split and "
                "that split's condition list (label vectors, demographics), which defines what to generate"
            ),
        ),
        Protocol(
            name="supplemented", version=1, uses_real_train=True, uses_generator=True,
            default_ratios=(1.0,), min_ratio=0.1, max_ratio=10.0,
            description="Real training split plus r x synthetic (r = 1..10 is 100%..1000%); one cell per ratio.",
        ),
        Protocol(
            name="mixed-external", version=1, uses_real_train=True, uses_generator=True,
            external_training=True, default_ratios=(1.0,), min_ratio=0.0, max_ratio=10.0,
            description=(
                "Train on a second dataset's real training split plus r x synthetic images from a "
                "generator fitted on the source dataset; test on both datasets' test splits."
            ),
        ),
    ]
}

LATEST: dict[str, str] = {}
for _p in PROTOCOLS.values():
    if _p.name not in LATEST or PROTOCOLS[LATEST[_p.name]].version < _p.version:
        LATEST[_p.name] = _p.id


def get(name: str, where: str = "protocol") -> Protocol:
    """Look up ``name`` (``synthetic-only`` = its latest version, or ``synthetic-only.v1``)."""
    key = LATEST.get(name, name)
    if key not in PROTOCOLS:
        import difflib

        known = sorted(set(LATEST) | set(PROTOCOLS))
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(f"{where}: unknown protocol {name!r}{hint}; known: {', '.join(known)}")
    return PROTOCOLS[key]
