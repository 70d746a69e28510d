"""Classifier training: the harness, not the plugins, owns it, so every generator's synthetic data
is judged with the same recipe.

* :class:`TrainRecipe` is plain, frozen data recorded with every result (``dataclasses.asdict``).
* :func:`train_classifier` trains a :class:`~cxrbench.contracts.BuiltClassifier` on uint8 images
  with a masked multi-label BCE (NaN labels contribute nothing), on-device seeded augmentation,
  AdamW + warmup/cosine, an EMA of the weights, and model selection on the *real* tuning-set
  loss; it returns the selected weights in eval mode plus a per-epoch history.
* :func:`predict` returns sigmoid probabilities; :func:`to_model_input` is the one uint8 -> float
  conversion used for training and inference alike.

Reproducibility: model initialisation depends on the global RNG at ``build`` time, so seed before
building (:func:`build_seeded` does both). Shuffling and augmentation draw from their own
``torch.Generator`` seeded from ``seed``; on CPU two runs with the same seed, data and thread
count give bit-identical weights. torch and numpy are imported lazily.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

from cxrbench.batches import _batches, _BatchStream, _Gather  # noqa: F401 - _Gather: the device tests
from cxrbench.errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")
AUGMENTATIONS = ("hflip", "affine")
SELECTIONS = ("val_loss", "last")

#: the small affine of the CXR study recipes: rotation (degrees), translation (fraction of the
#: half-size, as ``affine_grid`` measures it), isotropic scale range
AFFINE_DEGREES = 10.0
AFFINE_TRANSLATE = 0.1
AFFINE_SCALE = (0.9, 1.1)


@dataclass(frozen=True)
class TrainRecipe:
    """How a classifier is trained. Fixed data, recorded in every result.

    :param epochs: passes over the training set (epoch-defined recipes; ``None`` with ``steps``).
    :param steps: a fixed budget of optimizer steps that does not depend on the training set's
        size (budget recipes; ``epochs`` must then be ``None``). Batches of exactly
        ``batch_size`` images are drawn from consecutive shuffled passes over the data, so 47
        real images and 47 + 470 synthetic ones get the same steps and the same images seen:
        adding data, even noise, never buys training. Model selection happens after each of
        ``eval_rounds`` equal rounds of steps.
    :param eval_rounds: evaluation rounds of a ``steps`` budget (the "epochs" of its history).
    :param warmup_steps: linear warmup of a ``steps`` budget, in steps (clamped to half of them).
    :param batch_size: images per step (a last batch of a single image is dropped: BatchNorm).
    :param optimizer: ``adamw`` (default), ``adam`` or ``sgd`` (momentum 0.9, nesterov).
        Weight decay is not applied to biases and norm parameters.
    :param lr: peak learning rate.
    :param weight_decay: decoupled (adamw) / L2 (adam, sgd) weight decay.
    :param schedule: ``cosine`` (per-step, to 0 at the end) or ``constant``; both after warmup.
    :param warmup_epochs: linear warmup, in epochs (clamped to half of the total steps).
    :param augment: any of ``hflip`` (random horizontal flip) and ``affine`` (rotation +-10 deg,
        translation +-5 % of the size, scale 0.9-1.1; black fill). No vertical flip, ever.
    :param ema_decay: EMA of the weights (with the usual ``(1+n)/(10+n)`` warmup of the decay);
        the EMA weights are the ones evaluated and returned. None: no EMA.
    :param selection: ``val_loss``: keep the epoch whose (EMA) weights have the lowest loss on the
        real tuning set; ``last``: keep the last epoch (no tuning set needed).
    :param label_smoothing: targets become ``t * (1 - s) + s / 2`` (training loss only).
    :param max_steps: optional cap on optimizer steps (quick schedules); the schedule is laid
        over the capped length and the epoch in which the cap is reached is the last one.
    :param balance: weight positives by ``negatives / positives`` per label, from the training
        labels (BCE ``pos_weight``, clamped to [1/100, 100]); also used in the tuning-set loss.
    """

    epochs: int | None = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: int = 1
    augment: tuple[str, ...] = ("hflip", "affine")
    ema_decay: float | None = 0.999
    selection: str = "val_loss"
    label_smoothing: float = 0.0
    max_steps: int | None = None
    balance: bool = False
    steps: int | None = None
    eval_rounds: int | None = None
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        # YAML gives lists; the recipe must stay hashable and comparable
        object.__setattr__(self, "augment", tuple(self.augment or ()))
        problems = []
        if self.steps is None:
            if self.epochs is None or int(self.epochs) < 1:
                problems.append(f"epochs={self.epochs} must be >= 1 (or give a steps budget)")
            if self.eval_rounds is not None or self.warmup_steps:
                problems.append("eval_rounds and warmup_steps belong to a steps budget")
        else:
            if self.epochs is not None:
                problems.append("give epochs or steps, not both (a steps budget sets epochs: null)")
            if int(self.steps) < 1:
                problems.append(f"steps={self.steps} must be >= 1")
            if self.eval_rounds is None or not 1 <= int(self.eval_rounds) <= int(self.steps):
                problems.append(f"eval_rounds={self.eval_rounds} must be in 1..steps with a steps budget")
            if int(self.warmup_steps) < 0:
                problems.append(f"warmup_steps={self.warmup_steps} must be >= 0")
            if self.max_steps is not None:
                problems.append("max_steps caps an epoch-defined recipe; a steps budget is its own cap")
        if int(self.batch_size) < 2:
            problems.append(f"batch_size={self.batch_size} must be >= 2")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer={self.optimizer!r} not one of {OPTIMIZERS}")
        if not float(self.lr) > 0:
            problems.append(f"lr={self.lr} must be > 0")
        if float(self.weight_decay) < 0:
            problems.append(f"weight_decay={self.weight_decay} must be >= 0")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} not one of {SCHEDULES}")
        if int(self.warmup_epochs) < 0:
            problems.append(f"warmup_epochs={self.warmup_epochs} must be >= 0")
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            problems.append(f"augment {unknown} not among {AUGMENTATIONS}")
        if self.ema_decay is not None and not 0.0 < float(self.ema_decay) < 1.0:
            problems.append(f"ema_decay={self.ema_decay} must be in (0, 1) or null")
        if self.selection not in SELECTIONS:
            problems.append(f"selection={self.selection!r} not one of {SELECTIONS}")
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            problems.append(f"label_smoothing={self.label_smoothing} must be in [0, 1)")
        if self.max_steps is not None and int(self.max_steps) < 1:
            problems.append(f"max_steps={self.max_steps} must be >= 1 or null")
        if problems:
            raise ConfigError("invalid training recipe: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        return d


@dataclass
class TrainResult:
    """What :func:`train_classifier` returns.

    :param model: the module with the selected weights (EMA weights when EMA is on), eval mode,
        on the training device.
    :param best_epoch: 0-based epoch whose weights were kept.
    :param best_val_loss: the tuning-set loss of those weights (NaN with ``selection="last"``
        and no tuning set).
    :param history: one dict per epoch (per evaluation round of a steps budget): epoch, steps,
        train_loss, val_loss, lr (at the end of the epoch), images_per_s (training throughput),
        seconds (epoch incl. validation).
    """

    model: Any
    best_epoch: int
    best_val_loss: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0
    steps: int = 0
    pos_weight: list[float] | None = None


# --------------------------------------------------------------------------- helpers


def to_model_input(uint8_batch):
    """The canonical conversion: uint8 (N, 1, H, W) -> float32 in [-1, 1] (same device)."""
    import torch

    if uint8_batch.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 image batch, got {uint8_batch.dtype}")
    return uint8_batch.float().div_(127.5).sub_(1.0)


def build_seeded(classifier, num_labels: int, input_size: int, pretrained: bool, *, seed: int):
    """Seed every RNG, then ``classifier.build(...)``: reproducible initial weights."""
    from cxrbench.device import seed_everything

    seed_everything(seed)
    return classifier.build(num_labels, input_size, pretrained)


def masked_bce(logits, targets, *, pos_weight=None, label_smoothing: float = 0.0):
    """Mean BCE-with-logits over the observed (non-NaN) entries of ``targets``.

    Masked entries contribute neither loss nor gradient. Returns (loss, number of observed
    entries); the loss is 0 (with a zero gradient) when nothing is observed.
    """
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    mask = ~torch.isnan(targets)
    t = torch.where(mask, targets, torch.zeros_like(targets))
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    per = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight, reduction="none")
    per = torch.where(mask, per, torch.zeros_like(per))
    n = mask.sum()
    return per.sum() / n.clamp(min=1), int(n)


def compute_pos_weight(labels) -> Any:
    """Per-label ``negatives / positives`` over observed entries, clamped to [0.01, 100]."""
    import torch

    mask = ~torch.isnan(labels)
    pos = torch.where(mask, labels, torch.zeros_like(labels)).sum(0)
    neg = (mask.float() - torch.where(mask, labels, torch.zeros_like(labels))).sum(0)
    return (neg.clamp(min=1.0) / pos.clamp(min=1.0)).clamp(0.01, 100.0).float()


def augment_batch(x, augment: tuple[str, ...], generator):
    """Seeded on-device augmentation of a float batch in [-1, 1].

    Random parameters are drawn on the CPU from ``generator`` (so they do not depend on the
    device), then one ``affine_grid`` / ``grid_sample`` applies flip + rotation + translation +
    scale together; out-of-image pixels are black (-1).
    """
    import torch
    import torch.nn.functional as F

    if not augment:
        return x
    n = x.shape[0]
    flip = torch.zeros(n, dtype=torch.bool)
    if "hflip" in augment:
        flip = torch.rand(n, generator=generator) < 0.5
    if "affine" not in augment:
        if flip.any():
            f = flip.to(x.device).view(n, 1, 1, 1)
            x = torch.where(f, x.flip(-1), x)
        return x
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(AFFINE_DEGREES)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * AFFINE_TRANSLATE
    lo, hi = AFFINE_SCALE
    scale = lo + torch.rand(n, generator=generator) * (hi - lo)
    # theta maps output coords to input coords: zoom in (scale > 1) = sample a smaller region
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    sx = torch.where(flip, -torch.ones(n), torch.ones(n))
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = cos
    theta[:, :, 2] = shift
    theta = theta.to(device=x.device, dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float() + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out - 1.0).to(x.dtype)


class _Ema:
    """Exponential moving average of a module's parameters and float buffers (BN statistics).

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` so short runs are not dominated by the
    initial weights. Integer buffers (``num_batches_tracked``) are copied.
    """

    def __init__(self, model, decay: float):
        import torch

        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._pairs_float = []
        self._pairs_copy = []
        src = dict(model.state_dict(keep_vars=True))
        for k, v in self.module.state_dict(keep_vars=True).items():
            (self._pairs_float if torch.is_floating_point(v) else self._pairs_copy).append((v, src[k]))

    def update(self) -> None:
        import torch

        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        with torch.no_grad():
            ema = [e.data if hasattr(e, "data") else e for e, _ in self._pairs_float]
            cur = [m.detach() for _, m in self._pairs_float]
            torch._foreach_lerp_(ema, cur, 1.0 - d)
            for e, m in self._pairs_copy:
                e.copy_(m.detach())


def _make_optimizer(model, recipe: TrainRecipe):
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": float(recipe.weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)


def _lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak lr for optimizer step ``step`` (0-based) of ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _check_data(images, labels, what: str):
    import torch

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
        desc = f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}"
        raise ValueError(f"{what} images must be a uint8 tensor (N, 1, H, W), got {desc}")
    labels = torch.as_tensor(labels, dtype=torch.float32)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{what} labels must be (N, L) with N = {images.shape[0]} images, got {tuple(labels.shape)}"
        )
    return labels


def _prepare(images_uint8, device: str, channels_last: bool):
    import torch

    x = to_model_input(images_uint8.to(device, non_blocking=True))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def evaluate_loss(model, images, labels, *, device: str, batch_size: int = 256, pos_weight=None) -> float:
    """Mean masked BCE of ``model`` (eval mode) on a labelled set."""
    import torch

    from cxrbench.device import autocast

    model.eval()
    total, count = 0.0, 0
    cl = str(device).startswith("cuda")
    with torch.inference_mode():
        for i in range(0, int(images.shape[0]), batch_size):
            x = _prepare(images[i : i + batch_size], device, cl)
            y = labels[i : i + batch_size].to(device)
            with autocast(device):
                logits = model(x)
            loss, n = masked_bce(logits, y, pos_weight=pos_weight)
            total += float(loss) * n
            count += n
    return total / count if count else float("nan")


def predict(model, images, *, device: str, batch_size: int = 256):
    """Sigmoid probabilities, numpy float32 (N, L), of ``model`` in eval mode on uint8 images."""
    import numpy as np
    import torch

    from cxrbench.device import autocast

    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"predict needs uint8 (N, 1, H, W) images, got {images.dtype} {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    cl = str(device).startswith("cuda")
    out = []
    with torch.inference_mode():
        for i in range(0, int(images.shape[0]), batch_size):
            x = _prepare(images[i : i + batch_size], device, cl)
            with autocast(device):
                logits = model(x)
            out.append(torch.sigmoid(logits.float()).cpu())
    if was_training:
        model.train()
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32, copy=False)


# --------------------------------------------------------------------------- training


def train_classifier(
    built,
    train_images,
    train_labels,
    val_images,
    val_labels,
    *,
    recipe: TrainRecipe,
    device: str,
    seed: int,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``built.module`` with ``recipe``; return the selected weights (see module doc).

    ``train_images`` / ``val_images``: uint8 (N, 1, H, W) tensors (CPU is fine; batches move to
    ``device``). Labels: float32 (N, L), NaN = unknown (masked out of the loss). The tuning set
    (``val_*``) must be real images; it may be None only with ``selection="last"``.
    """
    import numpy as np
    import torch

    from cxrbench.device import autocast, maybe_compile, seed_everything
    from cxrbench.progress import bar

    train_labels = _check_data(train_images, train_labels, "training")
    has_val = val_images is not None and int(val_images.shape[0]) > 0
    if has_val:
        val_labels = _check_data(val_images, val_labels, "tuning")
        if val_labels.shape[1] != train_labels.shape[1]:
            raise ValueError(
                f"tuning labels have {val_labels.shape[1]} columns, training labels {train_labels.shape[1]}"
            )
    elif recipe.selection == "val_loss":
        raise ValueError("selection 'val_loss' needs a non-empty tuning set (val_images)")
    n_train = int(train_images.shape[0])
    if n_train < 2:
        raise ValueError(f"need at least 2 training images, got {n_train}")

    seed_everything(seed)
    shuffle_seed, aug_seed = (int(s) for s in np.random.SeedSequence(int(seed)).generate_state(2))
    g_shuffle = torch.Generator().manual_seed(shuffle_seed)
    g_aug = torch.Generator().manual_seed(aug_seed)

    model = built.module.to(device)
    on_gpu = str(device).startswith("cuda")
    channels_last = on_gpu  # NHWC convolutions are the fast path of cuDNN under bf16
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # Batches are gathered by index from the (memory-mapped, preprocessed) uint8 cache into
    # page-locked staging buffers and copied asynchronously (see _Gather): a DataLoader's worker
    # processes would only add copies of data that is already decoded.
    gather = _Gather(train_images, device)
    optimizer = _make_optimizer(model, recipe)
    forward = maybe_compile(model)  # the same parameters; only the forward is compiled
    ema = _Ema(model, recipe.ema_decay) if recipe.ema_decay is not None else None
    eval_model = ema.module if ema is not None else model

    pos_weight = compute_pos_weight(train_labels).to(device) if recipe.balance else None
    train_labels_dev = train_labels  # moved per batch

    if recipe.steps is None:  # epoch-defined: the number of steps follows the data's size
        bs = min(int(recipe.batch_size), n_train)
        steps_per_epoch = len(_batches(n_train, bs, torch.Generator().manual_seed(0)))
        total_steps = steps_per_epoch * int(recipe.epochs)
        if recipe.max_steps is not None:
            total_steps = min(total_steps, int(recipe.max_steps))
        warmup = min(int(recipe.warmup_epochs) * steps_per_epoch, total_steps // 2)
        rounds, stream = int(recipe.epochs), None
    else:  # a steps budget: the same steps and images seen whatever the data's size
        total_steps, rounds = int(recipe.steps), int(recipe.eval_rounds)
        warmup = min(int(recipe.warmup_steps), total_steps // 2)
        stream = _BatchStream(n_train, int(recipe.batch_size), g_shuffle)
        ends = [round(total_steps * (k + 1) / rounds) for k in range(rounds)]  # last step of each round
    for group in optimizer.param_groups:
        group["lr"] = recipe.lr * _lr_factor(0, total_steps, warmup, recipe.schedule)

    history: list[dict] = []
    best_loss, best_epoch, best_state = math.inf, -1, None
    step, images_seen = 0, 0
    t_start = time.perf_counter()
    for epoch in range(rounds):
        if step >= total_steps:
            break
        t_epoch = time.perf_counter()
        model.train()
        batches = (_batches(n_train, bs, g_shuffle)[: total_steps - step] if stream is None
                   else [stream.next() for _ in range(ends[epoch] - step)])
        # the loss is summed on the device: reading it every step would stall a GPU each step
        loss_sum, loss_n, epoch_images = torch.zeros((), device=device), 0, 0
        pbar = bar(total=len(batches), desc=f"train {epoch + 1}/{rounds}", unit="step", enabled=progress, leave=False)
        try:
            for idx in batches:
                x = _prepare(gather(idx), device, channels_last)
                x = augment_batch(x, recipe.augment, g_aug)
                y = train_labels_dev[idx].to(device, non_blocking=True)
                with autocast(device):
                    logits = forward(x)
                loss, _ = masked_bce(logits, y, pos_weight=pos_weight, label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr * _lr_factor(step, total_steps, warmup, recipe.schedule)
                if ema is not None:
                    ema.update()
                loss_sum += loss.detach()
                loss_n += 1
                epoch_images += int(x.shape[0])
                pbar.update(1)
                if not on_gpu or loss_n % 50 == 0:  # the postfix reads the loss: a sync on a GPU
                    elapsed = time.perf_counter() - t_epoch
                    pbar.set_postfix(loss=f"{float(loss_sum) / loss_n:.4f}", img_s=f"{epoch_images / max(elapsed, 1e-9):.0f}",
                                     refresh=False)
        finally:
            pbar.close()
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        train_seconds = time.perf_counter() - t_epoch
        images_seen += epoch_images

        val_loss = (
            evaluate_loss(eval_model, val_images, val_labels, device=device, pos_weight=pos_weight)
            if has_val
            else float("nan")
        )
        history.append(
            {
                "epoch": epoch,
                "steps": len(batches),
                "train_loss": float(loss_sum) / max(loss_n, 1),
                "val_loss": val_loss,
                "lr": optimizer.param_groups[0]["lr"],
                "images_per_s": epoch_images / max(train_seconds, 1e-9),
                "seconds": time.perf_counter() - t_epoch,
            }
        )
        if recipe.selection == "val_loss":
            improved = math.isfinite(val_loss) and val_loss < best_loss
        else:
            improved = True
        if improved:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in eval_model.state_dict().items()}

    if best_state is None:  # every tuning loss was NaN/inf: keep the last weights, say so
        best_epoch = len(history) - 1
        best_loss = float("nan")
        best_state = {k: v.detach().to("cpu", copy=True) for k, v in eval_model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        best_epoch=best_epoch,
        best_val_loss=float(best_loss) if has_val else float("nan"),
        history=history,
        seconds=time.perf_counter() - t_start,
        images_seen=images_seen,
        steps=step,
        pos_weight=None if pos_weight is None else [float(v) for v in pos_weight.cpu()],
    )
