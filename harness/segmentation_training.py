"""Training a segmenter with a protocol's fixed recipe: the segmentation task's twin of training.py.

The same budget schedules as the classifier (``budget-*`` in protocols.py: a fixed number of
optimizer steps of fixed-size batches from consecutive shuffled passes), the same optimizer, LR
schedule, EMA and model selection after each evaluation round on the tuning pairs, so every
protocol at every real-data size gets the same training. What differs:

- the loss: per-pixel BCE-with-logits plus soft Dice (1 - Dice) per mask class, the common
  choice for lung fields (BCE alone under-weights thin structures, Dice alone is unstable early);
- augmentation moves image and mask together (one affine grid for both, the mask resampled
  with nearest-neighbour rounding), so a pair stays a pair;
- ``balance`` / ``label_smoothing`` of a recipe have no meaning here and are ignored (recorded).

Masks are uint8 (N, C, H, W) in {0, 1} aligned with the uint8 (N, 1, H, W) images.
"""

from __future__ import annotations

import math
import time

from cxrbench.batches import _batches, _BatchStream, _Gather
from cxrbench.training import TrainRecipe, TrainResult, _Ema, _lr_factor, _make_optimizer, _prepare, augment_batch


def dice_bce_loss(logits, masks):
    """Mean per-pixel BCE plus mean (1 - soft Dice) over images and classes; masks float {0, 1}."""
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    prob = torch.sigmoid(logits)
    inter = (prob * masks).sum(dim=(2, 3))
    total = prob.sum(dim=(2, 3)) + masks.sum(dim=(2, 3))
    dice = (2 * inter + 1.0) / (total + 1.0)  # +1: both empty = 1, no division by zero
    return bce + (1.0 - dice).mean()


def augment_pairs(x, masks, augment: tuple[str, ...], generator):
    """The classifier's seeded flip + affine applied to image and mask channels at once."""
    import torch

    if not augment:
        return x, masks
    both = torch.cat([x, masks * 2.0 - 1.0], dim=1)  # the mask in [-1, 1] like the image: 0 padding = off
    out = augment_batch(both, augment, generator)
    return out[:, : x.shape[1]], (out[:, x.shape[1]:] > 0).float()


def evaluate_seg_loss(model, images, masks, *, device: str, batch_size: int = 128) -> float:
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, int(images.shape[0]), batch_size):
            x = _prepare(images[i: i + batch_size], device, False)
            m = masks[i: i + batch_size].to(device).float()
            total += float(dice_bce_loss(model(x), m)) * int(x.shape[0])
            n += int(x.shape[0])
    return total / max(n, 1)


def predict_masks(model, images, *, device: str, batch_size: int = 128):
    """uint8 (N, C, H, W) masks: sigmoid(logits) >= 0.5 per class."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, int(images.shape[0]), batch_size):
            logits = model(_prepare(images[i: i + batch_size], device, False))
            out.append((torch.sigmoid(logits.float()) >= 0.5).to(torch.uint8).cpu())
    return torch.cat(out) if out else torch.zeros((0, 1) + tuple(images.shape[2:]), dtype=torch.uint8)


def train_segmenter(built, train_images, train_masks, val_images, val_masks, *, recipe: TrainRecipe, device: str,
                    seed: int, progress: bool | None = None) -> TrainResult:
    """Train ``built.module`` on (image, mask) pairs with ``recipe`` (a steps budget); keep the
    weights of the round with the lowest tuning loss."""
    import numpy as np
    import torch

    from cxrbench.device import seed_everything
    from cxrbench.progress import bar

    if recipe.steps is None:
        raise ValueError("segmentation trains under a steps budget (a budget-* schedule): an epoch-defined "
                         "schedule would give more training to larger training sets")
    n_train = int(train_images.shape[0])
    if n_train < 2:
        raise ValueError(f"need at least 2 training pairs, got {n_train}")
    if tuple(train_masks.shape[2:]) != tuple(train_images.shape[2:]) or train_masks.shape[0] != n_train:
        raise ValueError(f"masks {tuple(train_masks.shape)} do not align with images {tuple(train_images.shape)}")
    has_val = val_images is not None and int(val_images.shape[0]) > 0
    seed_everything(seed)
    shuffle_seed, aug_seed = (int(s) for s in np.random.SeedSequence(int(seed)).generate_state(2))
    g_shuffle = torch.Generator().manual_seed(shuffle_seed)
    g_aug = torch.Generator().manual_seed(aug_seed)
    model = built.module.to(device)
    gather, gather_masks = _Gather(train_images, device), _Gather(train_masks, device)
    optimizer = _make_optimizer(model, recipe)
    ema = _Ema(model, recipe.ema_decay) if recipe.ema_decay is not None else None
    eval_model = ema.module if ema is not None else model
    total_steps, rounds = int(recipe.steps), int(recipe.eval_rounds)
    warmup = min(int(recipe.warmup_steps), total_steps // 2)
    stream = _BatchStream(n_train, int(recipe.batch_size), g_shuffle)
    ends = [round(total_steps * (k + 1) / rounds) for k in range(rounds)]
    for group in optimizer.param_groups:
        group["lr"] = recipe.lr * _lr_factor(0, total_steps, warmup, recipe.schedule)
    history, best_loss, best_round, best_state = [], math.inf, -1, None
    step, images_seen, t_start = 0, 0, time.perf_counter()
    for rnd in range(rounds):
        t_round = time.perf_counter()
        model.train()
        batches = [stream.next() for _ in range(ends[rnd] - step)]
        loss_sum, loss_n = 0.0, 0
        pbar = bar(total=len(batches), desc=f"segmenter {rnd + 1}/{rounds}", unit="step", enabled=progress, leave=False)
        try:
            for idx in batches:
                x = _prepare(gather(idx), device, False)
                m = gather_masks(idx).to(device, non_blocking=True).float()
                x, m = augment_pairs(x, m, recipe.augment, g_aug)
                loss = dice_bce_loss(model(x), m)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr * _lr_factor(step, total_steps, warmup, recipe.schedule)
                if ema is not None:
                    ema.update()
                loss_sum += float(loss.detach())
                loss_n += 1
                images_seen += int(x.shape[0])
                pbar.update(1)
                pbar.set_postfix(loss=f"{loss_sum / loss_n:.4f}", refresh=False)
        finally:
            pbar.close()
        val_loss = evaluate_seg_loss(eval_model, val_images, val_masks, device=device) if has_val else float("nan")
        history.append({"epoch": rnd, "steps": len(batches), "train_loss": loss_sum / max(loss_n, 1),
                        "val_loss": val_loss, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - t_round})
        if recipe.selection != "val_loss" or (math.isfinite(val_loss) and val_loss < best_loss):
            best_loss, best_round = val_loss, rnd
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in eval_model.state_dict().items()}
    if best_state is None:
        best_round, best_loss = len(history) - 1, float("nan")
        best_state = {k: v.detach().to("cpu", copy=True) for k, v in eval_model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, best_epoch=best_round, best_val_loss=float(best_loss) if has_val else float("nan"),
                       history=history, seconds=time.perf_counter() - t_start, images_seen=images_seen, steps=step)
