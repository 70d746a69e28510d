"""Conditional DDPM: a diffusers ``UNet2DModel`` with classifier-free guidance.

The condition vector (labels + demographics, see ``cxrbench.kit.ConditionEncoder``) goes through a
small MLP to the UNet's time-embedding width and is added to the time embedding
(``class_embed_type="identity"``). During training it is replaced by a learned *null*
embedding with probability ``p_uncond``, so one network gives both the conditional and the
unconditional noise prediction and sampling can use classifier-free guidance::

    eps = eps_uncond + cfg_scale * (eps_cond - eps_uncond)

``cfg_scale`` 0 = unconditional, 1 = plain conditional, > 1 = guided (Khosravi et al. used
0 / 4 / 7.5 with 200 DDIM steps). Training: ``DDPMScheduler`` (1000 steps, epsilon prediction),
AdamW with linear warm-up then a constant rate, gradient clipping, EMA weights (used for
sampling), bf16 autocast on CUDA. Sampling: DDIM (eta = 0: the initial noise, drawn on the CPU
from ``torch.Generator().manual_seed(condition.seed)``, is the only randomness), DPM-Solver++
(deterministic) or ancestral DDPM (stochastic; its noise comes from per-image generators).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional

from cxrbench.contracts import GeneratorCapabilities
from cxrbench.kit import NOT_FIT, RUNTIME, SAMPLING
from cxrbench.kit.diffusion import DiffusionGenerator

# Every default lives here. "tiny": tests (seconds); "small": 32 px, <= 30 min on a 2-core CPU;
# "medium": 64 px (a long CPU run or a GPU); "paper": 256 px on a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        resolution=16,
        block_out_channels=(16, 32),
        layers_per_block=1,
        attention=False,
        norm_num_groups=8,
        beta_schedule="squaredcos_cap_v2",
        train_steps=300,
        batch_size=32,
        lr=3e-3,
        warmup_steps=20,
        weight_decay=0.0,
        ema_decay=0.99,
        grad_clip=1.0,
        p_uncond=0.1,
        sampler="ddim",
        sampling_steps=20,
        cfg_scale=2.0,  # guided: a robust label signal after a seconds-long fit
        gen_batch_size=8,
        max_train_minutes=None,
        checkpoint_every=200,
        seed=0,
    ),
    "small": dict(
        resolution=32,
        block_out_channels=(32, 64, 128, 128),
        layers_per_block=1,
        attention=True,  # only at the lowest resolution (and in the mid block)
        norm_num_groups=16,
        beta_schedule="squaredcos_cap_v2",
        train_steps=1200,  # ~1.2 s/step at 2 free cores: ~25 min
        batch_size=64,
        lr=5e-4,
        warmup_steps=100,
        weight_decay=0.0,
        ema_decay=0.995,
        grad_clip=1.0,
        p_uncond=0.1,
        sampler="dpmsolver++",  # ~2x faster than DDIM-50 at similar quality
        sampling_steps=25,
        cfg_scale=1.0,
        gen_batch_size=64,
        max_train_minutes=None,  # sized by steps: a wall-clock budget would make the fit machine-dependent
        checkpoint_every=200,
        seed=0,
    ),
    "medium": dict(
        resolution=64,
        block_out_channels=(64, 128, 256, 256),
        layers_per_block=2,
        attention=True,
        norm_num_groups=32,
        beta_schedule="squaredcos_cap_v2",
        train_steps=30000,
        batch_size=64,
        lr=2e-4,
        warmup_steps=500,
        weight_decay=0.0,
        ema_decay=0.999,
        grad_clip=1.0,
        p_uncond=0.1,
        sampler="dpmsolver++",  # ~2x faster than DDIM-50 at similar quality
        sampling_steps=25,
        cfg_scale=1.0,
        gen_batch_size=64,
        max_train_minutes=None,
        checkpoint_every=1000,
        seed=0,
    ),
    "paper": dict(
        resolution=256,
        block_out_channels=(128, 128, 256, 256, 512, 512),
        layers_per_block=2,
        attention=True,  # at 8x8 and in the mid block
        norm_num_groups=32,
        beta_schedule="squaredcos_cap_v2",
        train_steps=100000,
        batch_size=32,
        lr=1e-4,
        warmup_steps=1000,
        weight_decay=0.0,
        ema_decay=0.9999,
        grad_clip=1.0,
        p_uncond=0.1,
        sampler="ddim",
        sampling_steps=200,
        cfg_scale=1.0,
        gen_batch_size=32,
        max_train_minutes=None,
        checkpoint_every=2000,
        seed=0,
    ),
}

@dataclass
class DDPMOptions:
    """Options of the ``ddpm`` generator. ``None`` = the preset's value (see ``PRESETS``)."""

    preset: Literal["tiny", "small", "medium", "paper"] = "small"
    resolution: Optional[int] = None
    block_out_channels: Optional[tuple[int, ...]] = None
    layers_per_block: Optional[int] = None
    attention: Optional[bool] = None
    norm_num_groups: Optional[int] = None
    beta_schedule: Optional[str] = None
    train_steps: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    warmup_steps: Optional[int] = None
    weight_decay: Optional[float] = None
    ema_decay: Optional[float] = None
    grad_clip: Optional[float] = None
    p_uncond: Optional[float] = None
    sampler: Optional[Literal["ddim", "dpmsolver++", "ddpm"]] = field(default=None, metadata=SAMPLING)
    sampling_steps: Optional[int] = field(default=None, metadata=SAMPLING)
    cfg_scale: Optional[float] = field(default=None, metadata=SAMPLING)
    gen_batch_size: Optional[int] = field(default=None, metadata=SAMPLING)
    #: stop training after this much wall-clock time (counted across resumed runs)
    max_train_minutes: Optional[float] = field(default=None, metadata=RUNTIME)
    #: where fit() saves every ``checkpoint_every`` steps and resumes from
    checkpoint_dir: Optional[str] = field(default=None, metadata=NOT_FIT)
    checkpoint_every: Optional[int] = field(default=None, metadata=NOT_FIT)
    seed: Optional[int] = None


class DDPMGenerator(DiffusionGenerator):
    """Conditional DDPM on pixels (diffusers UNet2DModel) with classifier-free guidance."""

    name: ClassVar[str] = "ddpm"
    version: ClassVar[str] = "1"
    sampling_version: ClassVar[str] = "2"  # 2: DPM-Solver++ thresholds x0 (1 saturated every pixel)
    capabilities: ClassVar[GeneratorCapabilities] = GeneratorCapabilities(
        labels=True, demographics=True, mask=False, text=False, needs_training=True, native_size=None
    )
    Options: ClassVar[type] = DDPMOptions
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS
