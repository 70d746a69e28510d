"""Classification: the harness's first task (moved here from the runner, unchanged).

Training examples carry label vectors (real: the split's labels; synthetic: each condition's);
the spec's ``classifier`` is trained with the protocol's fixed recipe (training.py) and scored on
every test set by AUROC / AP with thresholds from the tuning set (cell_evaluation.py).
"""

from __future__ import annotations

import dataclasses

from cxrbench.tasks.base import Task


class ClassificationTask(Task):
    name = "classification"
    model_key = "classifier"

    def real_targets(self, split, dataset_name: str):
        return split.labels

    def synthetic_targets(self, synthetic, generator, n_labels: int):
        from cxrbench.celldata import condition_labels

        return condition_labels(synthetic, n_labels)

    def train(self, runner, w):
        """The classifier, trained with the protocol's fixed recipe."""
        import torch

        from cxrbench.celldata import recipe_fields
        from cxrbench.config import plugin_options
        from cxrbench.device import seed_everything
        from cxrbench.errors import CxrbenchError
        from cxrbench.generation import plugin_call
        from cxrbench.training import TrainRecipe, train_classifier

        spec, cell = runner.spec, w.cell
        if not w.parts:
            raise CxrbenchError("empty training set")
        recipe = TrainRecipe(**recipe_fields(TrainRecipe, cell.protocol.schedules[cell.schedule]))
        ccls = runner.plugins.load("classifier", spec.classifier.name)
        classifier = ccls(plugin_options(ccls, spec.classifier.options, "classifier.options", runner.spec_source))
        seed_everything(cell.seed)
        with plugin_call("classifier", spec.classifier.name, "build"):
            built = classifier.build(len(w.source.label_names), spec.size, spec.classifier.pretrained)
        images = torch.cat([p[1] for p in w.parts])
        labels = torch.cat([p[2] for p in w.parts])
        result = train_classifier(built, images, labels, w.tune_images, w.tune_targets,
                                  recipe=recipe, device=runner.device, seed=cell.seed, progress=runner.progress)
        return result, built, recipe

    def evaluate(self, runner, w, model) -> dict:
        """Scores on every real test set and what they are read against (cell_evaluation.py)."""
        from cxrbench.cell_evaluation import evaluate_cell

        return evaluate_cell(runner, w, model)

    def training_set_record(self, w) -> dict:
        import torch

        labels = torch.nan_to_num(torch.cat([p[2] for p in w.parts]), nan=0.0)
        return {"prevalence": [round(float(v), 5) for v in labels.mean(0).tolist()]}

    def model_record(self, runner, w, result, built, recipe) -> dict:
        from cxrbench.generation import jsonable

        spec = runner.spec
        return {
            "name": spec.classifier.name, "version": runner.plugins.classifiers.get(spec.classifier.name).version,
            "weights": built.weights, "recipe": dataclasses.asdict(recipe), "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss, "history": jsonable(result.history),
            "train_s": round(result.seconds, 3),
            # the optimization budget this cell got (equal across protocols under a budget schedule)
            "steps": result.steps, "images_seen": result.images_seen,
        }
