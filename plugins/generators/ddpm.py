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

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from cxrbench.kit.diffusion import DiffusionGenerator, DiffusionOptions

# Every default lives here: "small" in full, the other presets as what they change.
# "tiny": tests (seconds); "small": 32 px, <= 30 min on a 2-core CPU;
# "medium": 64 px (a long CPU run or a GPU); "paper": 256 px on a GPU.
_SMALL: dict[str, Any] = dict(
    # the UNet
    resolution=32, block_out_channels=(32, 64, 128, 128), layers_per_block=1,
    attention=True,  # only at the lowest resolution (and in the mid block)
    norm_num_groups=16, beta_schedule="squaredcos_cap_v2",
    # training
    train_steps=1200,  # ~1.2 s/step at 2 free cores: ~25 min
    batch_size=64, lr=5e-4, warmup_steps=100, weight_decay=0.0, ema_decay=0.995, grad_clip=1.0, p_uncond=0.1,
    # sampling
    sampler="dpmsolver++",  # ~2x faster than DDIM-50 at similar quality
    sampling_steps=25, cfg_scale=1.0, gen_batch_size=64,
    max_train_minutes=None,  # sized by steps: a wall-clock budget would make the fit machine-dependent
    checkpoint_every=200, seed=0,
)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        _SMALL, resolution=16, block_out_channels=(16, 32), attention=False, norm_num_groups=8,
        train_steps=300, batch_size=32, lr=3e-3, warmup_steps=20, ema_decay=0.99, sampler="ddim",
        sampling_steps=20, gen_batch_size=8,
        cfg_scale=2.0,  # guided: a robust label signal after a seconds-long fit
    ),
    "small": dict(_SMALL),
    "medium": dict(
        _SMALL, resolution=64, block_out_channels=(64, 128, 256, 256), layers_per_block=2, norm_num_groups=32,
        train_steps=30000, lr=2e-4, warmup_steps=500, ema_decay=0.999, checkpoint_every=1000,
    ),
    "paper": dict(
        _SMALL, resolution=256, block_out_channels=(128, 128, 256, 256, 512, 512),  # attention at 8x8 and in the mid block
        layers_per_block=2, norm_num_groups=32, train_steps=100000, batch_size=32, lr=1e-4, warmup_steps=1000,
        ema_decay=0.9999, sampler="ddim", sampling_steps=200, gen_batch_size=32, checkpoint_every=2000,
    ),
}


@dataclass
class DDPMOptions(DiffusionOptions):
    """Options of the ``ddpm`` generator. ``None`` = the preset's value (see ``PRESETS``);
    the UNet, training and sampler fields are the kit's :class:`DiffusionOptions`."""

    beta_schedule: Optional[str] = None


class DDPMGenerator(DiffusionGenerator):
    """Conditional DDPM on pixels (diffusers UNet2DModel) with classifier-free guidance."""

    name: ClassVar[str] = "ddpm"
    version: ClassVar[str] = "1"
    sampling_version: ClassVar[str] = "2"  # 2: DPM-Solver++ thresholds x0 (1 saturated every pixel)
    Options: ClassVar[type] = DDPMOptions
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS
