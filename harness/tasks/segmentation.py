"""Segmentation: image-mask pairs, a segmenter, Dice on real masks.

- **Training pairs.** Real: each training image with its own mask (the dataset must have masks:
  jsrt, phantom). Synthetic: each generated image with the mask it was drawn with
  (``generator.conditioning_masks``: the training subset's masks, as perturbed by the generator,
  recorded with the cell); a generator that cannot say which mask it drew (capability ``mask``)
  is refused at validate. ``real`` returns the real pairs, ``noise`` noise images with real
  masks (the floor).
- **Model.** The spec's ``segmenter`` (a fifth plugin kind), trained with the protocol's steps
  budget by segmentation_training.py (BCE + soft Dice, pair-preserving augmentation), selected
  on the tuning pairs (real validation pairs; synthetic ones under synthetic-only.v2).
- **Scores** (evaluation/segmentation.py): per test set Dice, IoU and HD95 with patient-level
  bootstrap CIs, and the paired per-image Dice difference vs real-only at the same seed
  (bootstrap CI, Wilcoxon on patient means). Predicted masks and per-image scores are written
  beside the record, so everything can be rescored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cxrbench.errors import ConfigError, CxrbenchError
from cxrbench.tasks.base import Task


class SegmentationTask(Task):
    name = "segmentation"
    model_key = "segmenter"

    def context(self, spec) -> dict:
        from cxrbench.config import to_dict

        return {"task": self.name, "segmenter": to_dict(spec.segmenter)}

    def check_spec(self, spec, plugins, source: str) -> None:
        from cxrbench import protocols

        if spec.segmenter is None:
            raise ConfigError(f"{source}: segmenter: task: segmentation needs a segmenter, e.g. "
                              "segmenter: {name: unet-resnet18}")
        if spec.external:
            raise ConfigError(f"{source}: external: segmentation tests on the training dataset's own test split; "
                              "external test sets are not supported for this task yet")
        for ref in spec.protocols:
            proto = protocols.get(ref.name, source)
            if proto.schedules.get(ref.schedule, {}).get("steps") is None:
                raise ConfigError(f"{source}: protocols: {ref.name} schedule {ref.schedule!r} is epoch-defined; "
                                  f"segmentation trains under a steps budget: use one of {', '.join(protocols.BUDGET_SCHEDULES)}")
            if proto.external_training:
                raise ConfigError(f"{source}: protocols: {ref.name} is not defined for segmentation")
        chains = [("postprocess", spec.postprocess)] + [(f"chains[{i}]", c) for i, c in enumerate(spec.chains or [])]
        chains += [(f"generators[{i}].postprocess", g.postprocess) for i, g in enumerate(spec.generators)]
        for where, chain in chains:
            for k, step in enumerate(chain):
                if getattr(plugins.load("postprocessor", step.name), "moves_pixels", False):
                    raise ConfigError(f"{source}: {where}[{k}]: post-processor {step.name!r} moves pixels, so an "
                                      "image would no longer match its mask; it is refused for task: segmentation")
        for g in spec.generators:
            if not any(protocols.get(r.name, source).uses_generator for r in spec.protocols):
                break
            cls = plugins.load("generator", g.name)
            if not getattr(cls.capabilities, "mask", False) or not hasattr(cls, "conditioning_masks"):
                raise ConfigError(f"{source}: generators: {g.name!r} cannot draw an image for a given mask (capability "
                                  "mask=True and conditioning_masks()); segmentation needs image-mask pairs")

    def real_targets(self, split, dataset_name: str):
        if split.masks is None:
            raise CxrbenchError(f"dataset {dataset_name!r} has no masks: task segmentation needs a dataset with "
                                "masks (e.g. jsrt, phantom)")
        return (split.masks > 0).to(split.masks.dtype)

    def synthetic_targets(self, synthetic, generator, n_labels: int):
        import torch

        from cxrbench.generation import plugin_call

        with plugin_call("generator", type(generator).name, "conditioning_masks"):
            masks = generator.conditioning_masks(list(synthetic.conditions))
        if masks is None:
            raise CxrbenchError(f"generator {type(generator).name!r} drew no masks (the training split has none); "
                                "task segmentation needs a dataset with masks")
        masks = torch.as_tensor(masks)
        if tuple(masks.shape[-2:]) != tuple(synthetic.images.shape[-2:]) or masks.shape[0] != synthetic.images.shape[0]:
            raise CxrbenchError(f"generator {type(generator).name!r}: conditioning_masks gave {tuple(masks.shape)} for "
                                f"{tuple(synthetic.images.shape)} images; one mask per image at the image size")
        return (masks > 0).to(torch.uint8).reshape(masks.shape[0], -1, *masks.shape[-2:])

    def _segmenter(self, runner):
        from cxrbench.config import plugin_options

        ref = runner.spec.segmenter
        cls = runner.plugins.load("segmenter", ref.name)
        return ref, cls(plugin_options(cls, ref.options, "segmenter.options", runner.spec_source))

    def train(self, runner, w):
        import torch

        from cxrbench.celldata import recipe_fields
        from cxrbench.device import seed_everything
        from cxrbench.generation import plugin_call
        from cxrbench.segmentation_training import train_segmenter
        from cxrbench.training import TrainRecipe

        cell = w.cell
        if not w.parts:
            raise CxrbenchError("empty training set")
        recipe = TrainRecipe(**recipe_fields(TrainRecipe, cell.protocol.schedules[cell.schedule]))
        ref, segmenter = self._segmenter(runner)
        masks = torch.cat([p[2] for p in w.parts])
        seed_everything(cell.seed)
        with plugin_call("segmenter", ref.name, "build"):
            built = segmenter.build(int(masks.shape[1]), runner.spec.size, ref.pretrained)
        images = torch.cat([p[1] for p in w.parts])
        result = train_segmenter(built, images, masks, w.tune_images, w.tune_targets, recipe=recipe,
                                 device=runner.device, seed=cell.seed, progress=runner.progress)
        return result, built, recipe

    def evaluate(self, runner, w, model) -> dict:
        import numpy as np

        from cxrbench.evaluation.segmentation import compare_dice, segmentation_per_image, segmentation_summary
        from cxrbench.segmentation_training import predict_masks

        settings = runner.spec.evaluation
        out = {"metrics": {}, "comparisons": {}}
        baseline = runner._baseline_record(w.cell)
        control = runner._finished(w.cell.noise_control())
        if control is not None:
            out["vs_noise_control"] = {}
        files = {}
        for tname, split in w.test_sets.items():
            truth = self.real_targets(split, tname)
            pred = predict_masks(model, split.images, device=runner.device)
            per_image = segmentation_per_image(pred.numpy(), truth.numpy())
            out["metrics"][tname] = segmentation_summary(
                per_image, patient_ids=split.patient_ids, class_names=_class_names(runner, truth),
                n_resamples=settings.bootstrap_resamples, seed=w.cell.seed, confidence=settings.confidence)
            scores = {k: _class_mean(v) for k, v in per_image.items()}
            path = w.adir / f"predictions-{tname.replace(':', '-')}.csv"
            _write_scores(path, split, scores)
            np.savez_compressed(w.adir / f"masks-{tname.replace(':', '-')}.npz", keys=np.array(split.keys),
                                masks=np.packbits(pred.numpy().astype(bool), axis=-1))
            files[tname] = str(path)
            for name, other, into in (("baseline", baseline, "comparisons"), ("noise control", control,
                                                                                "vs_noise_control")):
                theirs = _read_dice(runner.predictions_of(other, tname) if other else None, split.keys)
                if theirs is not None:
                    out[into][tname] = {"baseline": other["cell_id"],
                                        **compare_dice(scores["dice"], theirs, patient_ids=split.patient_ids,
                                                       n_resamples=settings.bootstrap_resamples, seed=w.cell.seed,
                                                       confidence=settings.confidence)}
        w.artifacts["predictions"] = files
        return out

    def training_set_record(self, w) -> dict:
        import torch

        masks = torch.cat([p[2] for p in w.parts]).float()
        return {"mask_fraction": [round(float(v), 5) for v in masks.mean(dim=(0, 2, 3)).tolist()]}

    def model_record(self, runner, w, result, built, recipe) -> dict:
        from cxrbench.generation import jsonable

        ref = runner.spec.segmenter
        return {"name": ref.name, "version": runner.plugins.segmenters.get(ref.name).version,
                "weights": built.weights, "recipe": dataclasses.asdict(recipe), "best_round": result.best_epoch,
                "best_val_loss": result.best_val_loss, "history": jsonable(result.history),
                "train_s": round(result.seconds, 3), "steps": result.steps, "images_seen": result.images_seen,
                "loss": "BCE + soft Dice per class (segmentation_training.py)"}


def _class_names(runner, truth) -> tuple[str, ...]:
    """The dataset plugin's mask class names (``mask_classes``), else mask / class1, class2..."""
    names = tuple(getattr(runner.plugins.load("dataset", runner.spec.dataset.name), "mask_classes", None) or ())
    n = int(truth.shape[1])
    return names if len(names) == n else (("mask",) if n == 1 else tuple(f"class{i + 1}" for i in range(n)))


def _class_mean(values):
    """Per image, the mean over mask classes of an (N, C) array (one class: that class); NaN
    (an undefined HD95) where no class has a value."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():  # an all-NaN row is NaN: said, not warned about
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1)


def _write_scores(path: Path, split, scores: dict) -> None:
    import pandas as pd

    from cxrbench.celldata import write_csv

    write_csv(pd.DataFrame({"key": split.keys, "patient_id": split.patient_ids,
                            **{k: v for k, v in scores.items() if len(v) == len(split.keys)}}), path)


def _read_dice(path: Path | None, keys):
    """Another cell's per-image Dice on the same test images (its predictions file), in ``keys``
    order (None: absent)."""
    import pandas as pd

    if path is None:
        return None
    df = pd.read_csv(path).set_index("key")
    if "dice" not in df or any(k not in df.index for k in keys[:5]):
        return None
    return df.loc[list(keys), "dice"].to_numpy()
