"""Mask adherence: does a generated image follow the mask it was drawn for?

Adherence is the Dice between the conditioning mask and a lung-field *estimate* of the generated
image, beside the same Dice after a seeded random pairing of images and masks (what ignoring the
mask scores). The estimate decides whether the number means anything, so it is validated by a
positive control: real images against their own masks must score well above random pairing.

- **Learned estimate** (datasets with masks: jsrt, phantom): a small U-Net (``tiny-unet``)
  trained on the real training pairs of the cell's training data (a fixed recipe, seed 0),
  cached by the training images' keys and the size. On JSRT the Otsu heuristic below scored real
  images against their own masks at Dice 0.03 (random pairing 0.05): its "air that touches the
  border is not lung" rule removes JSRT's lungs, which reach the frame; the learned estimate is
  the one used wherever real masks exist.
- **Otsu estimate** (``cxrbench.kit.masks.estimate_lung_mask``): for datasets without masks
  (Kermany), where nothing can be learned; recorded as such.
"""

from __future__ import annotations

from pathlib import Path

from cxrbench.hashing import content_key

#: the reference estimator's recipe: a few hundred steps is enough for a tiny U-Net on lung fields
RECIPE = dict(epochs=None, steps=300, eval_rounds=3, warmup_steps=20, warmup_epochs=0, batch_size=16,
              optimizer="adamw", lr=3e-3, weight_decay=1e-4, schedule="cosine", augment=("hflip", "affine"),
              ema_decay=None, selection="last", balance=False)
VERSION = 1


def reference_estimator(train, size: int, cache_dir: Path, device: str = "cpu"):
    """A tiny U-Net trained on ``train``'s real (image, mask) pairs, loaded from the cache when
    it was trained before on the same images at the same size; None without masks."""
    import torch
    from safetensors.torch import load_file, save_file

    from cxrbench.integrity import check_file, write_checksum
    from cxrbench.plugins.segmenters.unet import TinyUnet
    from cxrbench.segmentation_training import train_segmenter
    from cxrbench.training import TrainRecipe

    if train.masks is None or len(train) < 2:
        return None
    key = content_key({"keys": list(train.keys), "size": size, "recipe": RECIPE, "v": VERSION}, 16)
    path = Path(cache_dir) / "reference" / f"adherence-unet-{key}.safetensors"
    built = TinyUnet().build(1, size, False)
    if path.is_file() and check_file(path) is None:
        built.module.load_state_dict(load_file(str(path)))
        return built.module.eval()
    torch.manual_seed(0)
    masks = (train.masks > 0).to(torch.uint8)
    result = train_segmenter(built, train.images, masks, None, None, recipe=TrainRecipe(**RECIPE), device=device,
                             seed=0, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().cpu() for k, v in result.model.state_dict().items()}, str(path))
    write_checksum(path)
    return result.model.eval()


def estimate(model, images, device: str = "cpu"):
    """uint8 (N, 1, H, W) lung-field estimates: the learned estimator when given, else Otsu."""
    from cxrbench.kit.masks import estimate_lung_masks
    from cxrbench.segmentation_training import predict_masks

    if model is None:
        return estimate_lung_masks(images)
    return predict_masks(model, images, device=device)[:, :1]
