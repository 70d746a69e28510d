"""Conditional diffusion on the kit: the machinery of the ``ddpm`` and ``ldm`` generators.

:class:`DiffusionGenerator` is a :class:`~cxrbench.kit.LearnedGenerator` whose network is a
diffusers ``UNet2DModel`` conditioned on the encoded condition vector (:func:`build_cond_unet`:
an MLP to the time-embedding width, added to the time embedding, and a learned *null*
embedding that replaces it with probability ``p_uncond`` in training), so one network gives
the conditional and the unconditional noise prediction and sampling uses classifier-free
guidance: ``eps = eps_uncond + cfg_scale * (eps_cond - eps_uncond)`` (0 = unconditional,
1 = plain conditional, > 1 = guided). Training: epsilon prediction on ``DDPMScheduler``'s
1000 steps, AdamW with linear warm-up, gradient clipping, EMA weights (used for sampling),
bf16 autocast on CUDA. Sampling: DDIM (eta = 0), DPM-Solver++ (both deterministic given the
initial noise, drawn per image from its seed) or ancestral DDPM (per-image generators).

A subclass diffuses pixels (``ddpm``) or something else (``ldm``: latents, with a mask as
extra input channels) by calling :meth:`DiffusionGenerator._diffusion_step` and
:meth:`DiffusionGenerator._denoise` with its own tensors. Options it reads: those of
:class:`DiffusionOptions`, which the subclasses' ``Options`` extend, and ``beta_schedule``
(ddpm's; ``ldm`` overrides the noise schedule).

torch and diffusers are imported inside the methods, so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

from cxrbench.errors import ConfigError
from cxrbench.kit.ema import EMA
from cxrbench.kit.images import seed_generator
from cxrbench.kit.learned import LearnedGenerator, OptimizerEMAState
from cxrbench.kit.presets import SAMPLING, LearnedOptions
from cxrbench.kit.runtime import autocast

#: ODE samplers (ddim, dpmsolver++) are deterministic given the start noise; the SDE ones (ddpm,
#: sde-dpmsolver++) add seeded noise at every step, which corrects an imperfect model's errors
#: instead of following them (measured on ldm small, Kermany: see docs/samplers.md)
SAMPLERS = ("ddim", "dpmsolver++", "ddpm", "sde-dpmsolver++")
STOCHASTIC_SAMPLERS = ("ddpm", "sde-dpmsolver++")


@dataclass
class DiffusionOptions(LearnedOptions):
    """The options :class:`DiffusionGenerator` reads (the conditional UNet, its training and
    its sampler); ``ddpm`` and ``ldm`` subclass it. ``None`` = the preset's value."""

    preset: Literal["tiny", "small", "medium", "paper"] = "small"
    #: the UNet (attention only at its lowest resolution and in the mid block)
    block_out_channels: Optional[tuple[int, ...]] = None
    layers_per_block: Optional[int] = None
    attention: Optional[bool] = None
    norm_num_groups: Optional[int] = None
    #: the sampler and its classifier-free guidance scale (not in the fitted-generator key)
    sampler: Optional[Literal["ddim", "dpmsolver++", "ddpm", "sde-dpmsolver++"]] = field(
        default=None, metadata=SAMPLING)
    sampling_steps: Optional[int] = field(default=None, metadata=SAMPLING)
    cfg_scale: Optional[float] = field(default=None, metadata=SAMPLING)
    #: training: AdamW with linear warm-up, EMA, clipping, the condition dropped with p_uncond
    lr: Optional[float] = None
    warmup_steps: Optional[int] = None
    weight_decay: Optional[float] = None
    ema_decay: Optional[float] = None
    grad_clip: Optional[float] = None
    p_uncond: Optional[float] = None


def build_cond_unet(cfg: Mapping[str, Any], cond_dim: int, *, in_channels: int = 1, out_channels: int = 1, sample_size: int | None = None):
    """A diffusers ``UNet2DModel`` + condition MLP + learned null embedding (see the module)."""
    import torch
    from diffusers import UNet2DModel
    from torch import nn

    boc = tuple(int(c) for c in cfg["block_out_channels"])
    n = len(boc)
    attn = bool(cfg["attention"])
    down = tuple("AttnDownBlock2D" if attn and i == n - 1 else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if attn and i == 0 else "UpBlock2D" for i in range(n))
    temb = boc[0] * 4

    class CondUNet(nn.Module):
        """UNet2DModel + condition MLP + learned null embedding (classifier-free guidance)."""

        def __init__(self) -> None:
            super().__init__()
            self.unet = UNet2DModel(
                sample_size=int(sample_size or cfg["resolution"]),
                in_channels=in_channels,
                out_channels=out_channels,
                block_out_channels=boc,
                layers_per_block=int(cfg["layers_per_block"]),
                down_block_types=down,
                up_block_types=up,
                class_embed_type="identity",
                norm_num_groups=int(cfg["norm_num_groups"]),
                attention_head_dim=min(64, boc[-1]),
                add_attention=attn,
            )
            self.cond_dim = cond_dim
            self.cond_mlp = nn.Sequential(nn.Linear(max(1, cond_dim), temb), nn.SiLU(), nn.Linear(temb, temb))
            self.null_embedding = nn.Parameter(torch.zeros(temb))

        def embed(self, c: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
            if self.cond_dim == 0:
                return self.null_embedding.expand(c.shape[0], -1)
            e = self.cond_mlp(c)
            if drop is not None:
                e = torch.where(drop[:, None], self.null_embedding.to(e.dtype).expand_as(e), e)
            return e

        def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, drop: torch.Tensor | None = None):
            return self.unet(x, t, class_labels=self.embed(c, drop)).sample

    return CondUNet()


class DiffusionGenerator(OptimizerEMAState, LearnedGenerator):
    """Conditional diffusion with classifier-free guidance (see the module docstring)."""

    #: clip the samplers' x0 prediction to [-1, 1]: right for pixels; ``ldm``'s unit-variance
    #: latents are not bounded, so it turns this off
    clip_x0 = True

    @classmethod
    def _validate_cfg(cls, cfg: dict[str, Any]) -> None:
        super()._validate_cfg(cfg)
        if cfg["sampler"] not in SAMPLERS:
            raise ConfigError(f"{cls.name}: sampler must be one of {', '.join(SAMPLERS)}, got {cfg['sampler']!r}")
        if float(cfg["cfg_scale"]) < 0:
            raise ConfigError(f"{cls.name}: cfg_scale must be >= 0, got {cfg['cfg_scale']!r}")
        boc = cfg["block_out_channels"]
        if any(int(c) % int(cfg["norm_num_groups"]) for c in boc):
            raise ConfigError(f"{cls.name}: every block_out_channels {boc} must be divisible by norm_num_groups {cfg['norm_num_groups']}")
        if cls._unet_grid(cfg) < 2 ** (len(boc) - 1) * 2:
            raise ConfigError(f"{cls.name}: a {cls._unet_grid(cfg)}-px UNet input (resolution {cfg['resolution']}) "
                              f"is too small for {len(boc)} UNet levels")

    @classmethod
    def _unet_grid(cls, cfg: Mapping[str, Any]) -> int:
        """Side of the UNet's input: the image resolution here, the latent grid in ``ldm``."""
        return int(cfg["resolution"])

    # ---- networks
    def _noise_scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler(
            num_train_timesteps=1000,
            beta_schedule=str(self.cfg["beta_schedule"]),
            prediction_type="epsilon",
            clip_sample=True,
        )

    def _build(self, cond_dim: int) -> None:
        import torch

        self.net = build_cond_unet(self.cfg, cond_dim).to(self.device)
        self.ema = EMA(self.net, float(self.cfg["ema_decay"]))
        self.scheduler = self._noise_scheduler()
        self._alphas_cumprod = self.scheduler.alphas_cumprod.to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=float(self.cfg["lr"]), weight_decay=float(self.cfg["weight_decay"])
        )

    def _inference_modules(self) -> dict[str, Any]:
        return {"model": self.net, "ema": self.ema.shadow}

    # ---- training
    def _train_step(self, step, x, c, g) -> dict[str, float]:
        return self._diffusion_step(step, x, c, g)

    def _diffusion_step(self, step, x, c, g, extra=None) -> dict[str, float]:
        """One epsilon-prediction step on clean samples ``x`` (pixels here, latents in
        ``ldm``); ``extra`` channels (a mask) are concatenated to the noisy input."""
        import torch
        import torch.nn.functional as F

        cfg = self.cfg
        dev = self.device
        b = x.shape[0]
        noise = torch.randn(x.shape, generator=g).to(dev)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=g).to(dev)
        drop = (torch.rand(b, generator=g) < float(cfg["p_uncond"])).to(dev)
        ab = self._alphas_cumprod[t].view(b, 1, 1, 1)
        xt = ab.sqrt() * x + (1 - ab).sqrt() * noise
        if extra is not None:
            if self._guides_extra():
                # the extra channels drop with the condition: the null condition then means "no
                # label and no mask", so guidance (see _eps) pushes towards the mask as well
                extra = torch.where(drop.view(b, 1, 1, 1), torch.zeros_like(extra), extra)
            xt = torch.cat([xt, extra], dim=1)
        warm = int(cfg["warmup_steps"] or 0)
        lr = float(cfg["lr"]) * (min(1.0, (step + 1) / warm) if warm > 0 else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        with autocast(dev):
            pred = self.net(xt, t, c, drop)
        loss = F.mse_loss(pred.float(), noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), float(cfg["grad_clip"]))
        self.optimizer.step()
        self.ema.update(self.net)
        return {"loss": float(loss.detach())}

    # ---- sampling
    def _sampler(self):
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

        base = self._noise_scheduler().config
        name = self.cfg["sampler"]
        if name == "ddim":
            return DDIMScheduler.from_config(base, timestep_spacing="trailing", clip_sample=self.clip_x0)
        if name in ("dpmsolver++", "sde-dpmsolver++"):
            # Data prediction at t=T of a cosine schedule divides by alpha ~ 0; without clipping
            # x0 the solver saturates every pixel (measured: 99.9% of pixels at 0/255).
            return DPMSolverMultistepScheduler.from_config(
                base, algorithm_type=name, solver_order=2, timestep_spacing="trailing",
                thresholding=self.clip_x0, dynamic_thresholding_ratio=0.995, sample_max_value=1.0,
            )
        return DDPMScheduler.from_config(base, timestep_spacing="trailing")

    def _guides_extra(self) -> bool:
        """Whether the extra input channels (a mask) are part of the guided condition: dropped
        with it in training, zeroed in the unconditional half of guidance. Off by default."""
        return bool(self.cfg.get("mask_guidance"))

    def _eps(self, net, x, t, c, scale: float, n_extra: int = 0):
        """Guided noise prediction. ``x`` ends with ``n_extra`` condition channels (a mask):
        with :meth:`_guides_extra` they are zeroed wherever the condition is dropped."""
        import torch

        b = x.shape[0]
        null_extra = n_extra > 0 and self._guides_extra()
        x_null = torch.cat([x[:, :-n_extra], torch.zeros_like(x[:, -n_extra:])], dim=1) if null_extra else x
        # t stays on the device: int(t) would wait for the GPU at every sampling step
        tt = torch.as_tensor(t, device=x.device).long().reshape(1).expand(b)
        with autocast(self.device):
            if scale == 1.0:
                return net(x, tt, c).float()
            if scale == 0.0:
                return net(x_null, tt, c, torch.ones(b, dtype=torch.bool, device=x.device)).float()
            drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
            both = net(torch.cat([x, x_null]), torch.cat([tt, tt]), torch.cat([c, c]), drop).float()
        eps_c, eps_u = both[:b], both[b:]
        return eps_u + scale * (eps_c - eps_u)

    def _compiled(self, net):
        """``net`` through torch.compile when the run asked for it (``--compile``), once."""
        from cxrbench.device import compile_enabled, maybe_compile

        if not compile_enabled():
            return net
        if getattr(self, "_compiled_for", None) is not net:
            self._compiled_for, self._compiled_net = net, maybe_compile(net)
        return self._compiled_net

    def _sample(self, c, seeds: Sequence[int]):
        res = self.native_size
        return self._denoise(c, seeds, (1, res, res)).clamp(-1, 1)

    def _denoise(self, c, seeds: Sequence[int], shape: tuple[int, ...], extra=None):
        """Run the sampler from per-seed noise of ``shape`` (one generator per slot, padding
        included, so image i depends on seeds[i] only); ``extra`` channels are concatenated
        to the model input at every step, as in :meth:`_diffusion_step`."""
        import torch

        gens = [seed_generator(s) for s in seeds]
        x = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(self.device)
        sched = self._sampler()
        sched.set_timesteps(int(self.cfg["sampling_steps"]), device=self.device)
        x = x * sched.init_noise_sigma
        net = self.ema.shadow
        net.eval()
        net = self._compiled(net)
        scale = float(self.cfg["cfg_scale"])
        stochastic = self.cfg["sampler"] in STOCHASTIC_SAMPLERS  # per-image generators: seeded noise
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            if extra is not None:
                xin = torch.cat([xin, extra], dim=1)
            eps = self._eps(net, xin, t, c, scale, 0 if extra is None else int(extra.shape[1]))
            kwargs = {"generator": gens} if stochastic else {}
            x = sched.step(eps, t, x, **kwargs).prev_sample
        return x
