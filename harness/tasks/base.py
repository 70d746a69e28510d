"""The contract of a downstream task (see cxrbench.tasks); each method's docstring is its rule."""

from __future__ import annotations


class Task:
    #: the spec's ``task:`` value
    name: str = ""
    #: the record key of the trained model's block ("classifier", "segmenter")
    model_key: str = ""

    def context(self, spec) -> dict:
        """What this task adds to every cell's context hash (empty for classification, so its
        cell ids are those of specs written before tasks existed)."""
        return {}

    def check_spec(self, spec, plugins, source: str) -> None:
        """Spec-time refusals specific to the task (one-line ConfigError each)."""

    def real_targets(self, split, dataset_name: str):
        """The training targets of a real split (labels (N, L), or masks (N, C, H, W))."""
        raise NotImplementedError

    def synthetic_targets(self, synthetic, generator, n_labels: int):
        """The training targets of a synthetic set (from its conditions, or the masks it was
        drawn with)."""
        raise NotImplementedError

    def train(self, runner, w):
        """Build the task's model and train it on ``w.parts`` with the protocol's fixed recipe,
        tuning on ``w.tune_images`` / ``w.tune_targets``; returns (result, built, recipe)."""
        raise NotImplementedError

    def evaluate(self, runner, w, model) -> dict:
        """The scores on every test set and their comparisons; merged into the record."""
        raise NotImplementedError

    def model_record(self, runner, w, result, built, recipe) -> dict:
        """The record's block about the trained model (name, version, weights, recipe, history)."""
        raise NotImplementedError

    def training_set_record(self, w) -> dict:
        """Task-specific facts about the training set (label prevalence, mask fraction)."""
        return {}
