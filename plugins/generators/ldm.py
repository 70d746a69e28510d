"""Latent diffusion with mask conditioning (the Prakash et al. pipeline, label-conditioned).

Two stages, trained one after the other in one step-defined fit (the kit's training loop;
steps ``[0, vae_steps)`` train the autoencoder, the next ``train_steps`` the latent UNet):

1. a diffusers ``AutoencoderKL`` (KL-regularised, downsampling by ``2 ** (len(vae_channels) - 1)``)
   trained on the real training split with an MSE reconstruction loss plus ``kl_weight`` x KL;
   or, with ``vae_path``, a pretrained one loaded from a local diffusers folder (nothing is
   downloaded; a grayscale image is fed to a 3-channel VAE as three equal channels);
2. the conditional UNet of ``cxrbench.kit.diffusion`` (the ``ddpm`` generator's training step,
   samplers and classifier-free guidance) on the autoencoder's latents scaled to unit
   variance. Mask conditioning is *concatenation*: the lung mask, average-pooled to the latent
   grid and mapped to [-1, 1], is an extra input channel of the UNet at every step. It was
   chosen over a ControlNet branch because it trains from scratch in minutes on a CPU and
   costs one input channel; a ControlNet needs a pretrained base model to be worth it.

Masks: the dataset's own (phantom lung fields, RSNA boxes) when it has them, else the
classical lung-field estimate of ``cxrbench.kit.masks`` (recorded as ``mask_source``). A bank
of ``mask_bank_size`` training masks is kept with the weights. At generation time each image
gets the mask of its condition (the harness passes the source training image's mask) or one
drawn by its seed from the bank masks of training images with the same labels (an estimated
lung field has a hole where an opacity is: a mask of the other label would contradict it), then a seeded affine + elastic perturbation, as in the study;
:meth:`LDMGenerator.conditioning_masks` returns exactly the masks used, for storage and for
the mask-adherence measurement (lung-field estimate of the generated image vs its mask).

Text prompts (``text_model``): with a local pretrained text-to-image model (a diffusers folder
laid out like Stable Diffusion: Stable Diffusion, RoentGen...), its autoencoder is used as is,
its text-conditioned UNet is fine-tuned here (the mask as one more, zero-initialised input
channel) and the condition is a prompt built from the spec's ``prompt_template`` and
``label_phrases`` (``cxrbench.kit.text``), as in the study; the empty prompt is the null
condition of classifier-free guidance. Without such weights the label vector (plus
demographics) is the condition. A large pretrained UNet wants a fine-tuning learning rate
(``lr: 1e-5``), not the from-scratch presets'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence

from cxrbench.contracts import GeneratorCapabilities, Split
from cxrbench.errors import ConfigError
from cxrbench.kit import EMA, autocast, optimizer_from_tensors, optimizer_to_tensors
from cxrbench.kit import resize_uint8
from cxrbench.kit.diffusion import DiffusionGenerator, DiffusionOptions, build_cond_unet
from cxrbench.kit.masks import estimate_lung_masks, perturb_masks
from cxrbench.kit.text import check_prompt_template, check_text_model

# Every default lives here. "tiny": tests (seconds); "small": 64 px in <= 30 min on a 2-core
# CPU (a 16x16 latent grid costs the UNet what 16 px would); "medium" / "paper": a GPU.
_SHARED = dict(latent_channels=4, kl_weight=1e-5, weight_decay=0.0, grad_clip=1.0, p_uncond=0.1,
               mask_conditioning=True, mask_bank_size=256, vae_path=None, max_train_minutes=None, seed=0)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(_SHARED, resolution=16, vae_channels=(8, 16), vae_steps=100, vae_lr=2e-3, vae_batch_size=32,
                 block_out_channels=(32, 64), layers_per_block=1, attention=False, norm_num_groups=8,
                 train_steps=300, batch_size=32, lr=3e-3, warmup_steps=20, ema_decay=0.99,
                 sampler="ddim", sampling_steps=20, cfg_scale=2.0, gen_batch_size=16, checkpoint_every=200),
    # measured on the 2-core CPU shared with 2-3 other jobs: 1.1-1.4 s/step, 1,732 s for the fit
    # (phantom); the UNet stage draws
    # latents from posteriors encoded once, so it costs what a 16 px pixel model would
    "small": dict(_SHARED, resolution=64, vae_channels=(8, 16, 32), vae_steps=500, vae_lr=1e-3, vae_batch_size=16,
                  block_out_channels=(32, 64, 128), layers_per_block=1, attention=True, norm_num_groups=16,
                  train_steps=800, batch_size=32, lr=5e-4, warmup_steps=100, ema_decay=0.995,
                  sampler="dpmsolver++", sampling_steps=25, cfg_scale=1.5, gen_batch_size=64, checkpoint_every=200),
    "medium": dict(_SHARED, resolution=128, vae_channels=(64, 128, 128), vae_steps=10000, vae_lr=5e-4, vae_batch_size=32,
                   block_out_channels=(128, 256, 256), layers_per_block=2, attention=True, norm_num_groups=32,
                   train_steps=30000, batch_size=64, lr=2e-4, warmup_steps=500, ema_decay=0.999,
                   sampler="dpmsolver++", sampling_steps=25, cfg_scale=1.5, gen_batch_size=64, checkpoint_every=1000),
    "paper": dict(_SHARED, resolution=256, vae_channels=(64, 128, 256, 256), vae_steps=50000, vae_lr=2e-4, vae_batch_size=16,
                  block_out_channels=(192, 384, 384, 768), layers_per_block=2, attention=True, norm_num_groups=32,
                  train_steps=200000, batch_size=32, lr=1e-4, warmup_steps=1000, ema_decay=0.9999,
                  sampler="ddim", sampling_steps=200, cfg_scale=4.0, gen_batch_size=32, checkpoint_every=2000),
}

# The prompt options, used only with a text_model (and only then part of the config and fit key)
TEXT_DEFAULTS: dict[str, Any] = dict(prompt_template="a frontal chest radiograph of {patient} showing {findings}",
                                     label_phrases=None, no_finding_phrase="no acute cardiopulmonary findings")


@dataclass
class LDMOptions(DiffusionOptions):
    """Options of the ``ldm`` generator. ``None`` = the preset's value (see ``PRESETS``); the
    latent UNet's, training and sampler fields are the kit's :class:`DiffusionOptions` (as in ddpm)."""

    #: autoencoder: channels per level (downsampling 2 ** (levels - 1)), latent channels, KL weight
    vae_channels: Optional[tuple[int, ...]] = None
    latent_channels: Optional[int] = None
    kl_weight: Optional[float] = None
    vae_steps: Optional[int] = None
    vae_lr: Optional[float] = None
    vae_batch_size: Optional[int] = None
    #: a local diffusers AutoencoderKL folder (config.json + weights): used as is, not trained
    vae_path: Optional[str] = None
    #: the lung mask as an extra UNet input channel; the bank of training masks kept for sampling
    mask_conditioning: Optional[bool] = None
    mask_bank_size: Optional[int] = None
    #: the mask is part of the guided condition: dropped with the label (p_uncond) in training and
    #: zeroed in guidance's unconditional half, so cfg_scale > 1 pushes images towards their masks
    #: as well as their labels (off unless set: fits made before it existed keep their fit key)
    mask_guidance: Optional[bool] = None
    #: a local text-to-image diffusers folder (unet/, vae/, text_encoder/, tokenizer/): its UNet
    #: is fine-tuned with prompts as the condition, its autoencoder used as is
    text_model: Optional[str] = None
    #: the prompt: {findings} = the positive labels' phrases joined by ", " (else no_finding_phrase);
    #: {patient} = "a 61-year-old female patient" from what the dataset knows ({sex}, {age} alone)
    prompt_template: Optional[str] = None
    #: label name -> phrase (default: the label name, "_" and "-" read as spaces)
    label_phrases: Optional[dict[str, str]] = None
    no_finding_phrase: Optional[str] = None


def _perturbation_seed(cond) -> int:
    """The seed of a condition's mask perturbation (derived from the image's seed)."""
    return int(cond.seed) * 1000003 + 17


def _pretrained_vae(cfg: Mapping[str, Any]) -> str | None:
    """The local folder of a pretrained autoencoder: ``vae_path``, else the text model's ``vae/``."""
    if cfg.get("vae_path"):
        return str(cfg["vae_path"])
    return str(Path(cfg["text_model"]) / "vae") if cfg.get("text_model") else None


def _build_autoencoder(cfg: Mapping[str, Any]):
    from diffusers import AutoencoderKL

    if _pretrained_vae(cfg):
        return AutoencoderKL.from_pretrained(_pretrained_vae(cfg), local_files_only=True, low_cpu_mem_usage=False)
    ch = tuple(int(c) for c in cfg["vae_channels"])
    return AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=int(cfg["latent_channels"]),
        down_block_types=("DownEncoderBlock2D",) * len(ch), up_block_types=("UpDecoderBlock2D",) * len(ch),
        block_out_channels=ch, layers_per_block=1, norm_num_groups=min(32, ch[0]),
        sample_size=int(cfg["resolution"]),
    )


class LDMGenerator(DiffusionGenerator):
    """Latent diffusion: AutoencoderKL + the ddpm conditional UNet on latents, mask-conditioned."""

    name: ClassVar[str] = "ldm"
    version: ClassVar[str] = "1"
    sampling_version: ClassVar[str] = "1"
    clip_x0: ClassVar[bool] = False  # unit-variance latents: the samplers' x0 is not clipped
    # the kit's learned-generator capabilities plus the mask
    capabilities: ClassVar[GeneratorCapabilities] = GeneratorCapabilities(labels=True, demographics=True, mask=True)
    Options: ClassVar[type] = LDMOptions
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    # ---- configuration
    @classmethod
    def _resolve_cfg(cls, options: Any) -> dict[str, Any]:
        cfg = super()._resolve_cfg(options)
        for key, default in TEXT_DEFAULTS.items():
            if not cfg.get("text_model"):
                cfg.pop(key, None)  # unused: kept out of the record and of the fit key
            elif cfg.get(key) is None:
                cfg[key] = default
        if not cfg.get("text_model"):
            cfg.pop("text_model", None)
        if not cfg.get("mask_guidance") or not cfg.get("mask_conditioning"):
            cfg.pop("mask_guidance", None)  # off: out of the record and the fit key, as before it existed
        return cfg

    @classmethod
    def _downsampling(cls, cfg: Mapping[str, Any]) -> int:
        if _pretrained_vae(cfg):
            import json

            conf = json.loads((Path(_pretrained_vae(cfg)) / "config.json").read_text())
            return 2 ** (len(conf["block_out_channels"]) - 1)
        return 2 ** (len(cfg["vae_channels"]) - 1)

    @classmethod
    def _unet_grid(cls, cfg: Mapping[str, Any]) -> int:
        return int(cfg["resolution"]) // cls._downsampling(cfg)

    @classmethod
    def _validate_cfg(cls, cfg: dict[str, Any]) -> None:
        path = cfg.get("vae_path")
        if path and not (Path(path) / "config.json").is_file():
            raise ConfigError(f"ldm: vae_path {path!r} is not a local diffusers AutoencoderKL folder (no config.json); "
                              "download it beforehand (e.g. huggingface-cli download ... --local-dir DIR), nothing is fetched at run time")
        arch = {}
        if cfg.get("text_model"):
            check_text_model("ldm", str(cfg["text_model"]))
            check_prompt_template("ldm", str(cfg["prompt_template"]))
            arch = cls._check_text_unet(cfg)
        super()._validate_cfg({**cfg, **arch})  # the UNet rules, on the UNet that will train
        path = _pretrained_vae(cfg)
        if not path and any(int(c) % min(32, int(cfg["vae_channels"][0])) for c in cfg["vae_channels"]):
            raise ConfigError(f"ldm: vae_channels {cfg['vae_channels']} must be multiples of min(32, first)")
        for key, low in (("vae_steps", 0), ("mask_bank_size", 1), ("vae_batch_size", 1)):
            if not isinstance(cfg.get(key), int) or cfg[key] < low:
                raise ConfigError(f"ldm: {key} must be an integer >= {low}, got {cfg.get(key)!r}")
        if not path and int(cfg["vae_steps"]) < 1:
            raise ConfigError("ldm: vae_steps must be >= 1 unless a pretrained vae_path (or text_model) is given")
        if float(cfg["kl_weight"]) < 0:
            raise ConfigError(f"ldm: kl_weight must be >= 0, got {cfg['kl_weight']!r}")

    @classmethod
    def _check_text_unet(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The pretrained UNet's levels must fit the latent grid, as the own UNet's must;
        returns its architecture fields, which replace the preset's in the shared checks."""
        import json

        conf = json.loads((Path(cfg["text_model"]) / "unet" / "config.json").read_text())
        levels, grid = len(conf["block_out_channels"]), cls._unet_grid(cfg)
        if grid % 2 ** (levels - 1):
            raise ConfigError(f"ldm: the text model's UNet has {levels} levels, so its latent grid must be a multiple of "
                              f"{2 ** (levels - 1)}; resolution {cfg['resolution']} gives {grid}: raise resolution")
        return {"block_out_channels": tuple(conf["block_out_channels"]), "norm_num_groups": int(conf.get("norm_num_groups") or 32)}

    def _stage_steps(self) -> tuple[int, int]:
        """(autoencoder steps, UNet steps): a pretrained autoencoder is used as is."""
        return (0 if _pretrained_vae(self.cfg) else int(self.cfg["vae_steps"])), int(self.cfg["train_steps"])

    def _total_steps(self) -> int:
        return sum(self._stage_steps())

    # ---- networks
    def _noise_scheduler(self):
        from diffusers import DDPMScheduler

        # Stable Diffusion's latent schedule: unit-variance latents need no sample clipping
        return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                             beta_end=0.012, prediction_type="epsilon", clip_sample=False)

    def _build(self, cond_dim: int) -> None:
        import torch
        from torch import nn

        cfg = self.cfg
        self.vae = _build_autoencoder(cfg).to(self.device)
        lat = int(self.vae.config.latent_channels)
        masks = 1 if cfg["mask_conditioning"] else 0
        if cfg.get("text_model"):
            self.net = self._build_text_unet(lat, masks)
        else:
            self.net = build_cond_unet(cfg, cond_dim, in_channels=lat + masks, out_channels=lat,
                                       sample_size=self._unet_grid(cfg)).to(self.device)
        # the latent grid, fixed from here on (with vae_path, _unet_grid reads its config.json)
        self.grid = self._unet_grid(cfg)
        self.ema = EMA(self.net, float(cfg["ema_decay"]))
        self.scheduler = self._noise_scheduler()
        self._alphas_cumprod = self.scheduler.alphas_cumprod.to(self.device)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
        self.vae_optimizer = torch.optim.AdamW(self.vae.parameters(), lr=float(cfg["vae_lr"]))
        res = self.native_size
        k, n_labels = int(cfg["mask_bank_size"]), len(self.encoder.label_names)
        bank = getattr(self, "_bank_source", None)
        bank_labels = getattr(self, "_bank_labels", None)
        if bank is None:  # load(): the saved bank replaces these
            bank = torch.zeros((k, 1, res, res), dtype=torch.uint8)
            bank_labels = torch.zeros((k, n_labels), dtype=torch.float32)
        # one module holds every weight of the model: the autoencoder, the UNet, the latent
        # scale (0 until the UNet stage starts) and the mask bank
        holder = nn.Module()
        holder.vae, holder.net = self.vae, self.net
        pretrained_scale = float(self.vae.config.scaling_factor) if _pretrained_vae(cfg) else 0.0
        holder.register_buffer("latent_scale", torch.tensor(pretrained_scale))
        holder.register_buffer("mask_bank", bank.to(self.device))
        holder.register_buffer("mask_bank_labels", bank_labels.to(self.device))
        self.model = holder

    def _build_text_unet(self, latent_channels: int, mask_channels: int):
        """The text model's UNet (widened for the mask) behind the kit's ``net(x, t, c, drop)``;
        the frozen text encoder and the prompt builder stay outside the saved weights."""
        from cxrbench.kit.text import PromptBuilder, TextEncoder, build_text_cond_unet, load_text_unet

        cfg = self.cfg
        self.text = TextEncoder(str(cfg["text_model"]), self.device)
        self.prompter = PromptBuilder(self.encoder, str(cfg["prompt_template"]), cfg.get("label_phrases"),
                                      str(cfg["no_finding_phrase"]))
        unet = load_text_unet(str(cfg["text_model"]), mask_channels)
        if int(unet.config.out_channels) != latent_channels:
            raise ConfigError(f"ldm: the text model's UNet predicts {unet.config.out_channels} channels but its "
                              f"autoencoder has {latent_channels} latent channels: not one model's parts")
        if int(unet.config.cross_attention_dim) != self.text.width:
            raise ConfigError(f"ldm: the text model's UNet attends to width {unet.config.cross_attention_dim} but its "
                              f"text encoder gives {self.text.width}: not one model's parts")
        return build_text_cond_unet(unet, self.text.encode([""])).to(self.device)

    def _context(self, c):
        """What the UNet is conditioned on: the condition vectors, or with a text model the
        token embeddings of their prompts."""
        if not self.cfg.get("text_model"):
            return c
        return self.text.encode(self.prompter.prompts(c))

    def _inference_modules(self) -> dict[str, Any]:
        return {"model": self.model, "ema": self.ema.shadow}

    def _training_state(self):
        unet, self._opt_meta = optimizer_to_tensors(self.optimizer)
        vae, self._vae_opt_meta = optimizer_to_tensors(self.vae_optimizer)
        return {"optimizer": unet, "vae_optimizer": vae}

    def _training_meta(self) -> dict[str, Any]:
        return {**super()._training_meta(), "vae_optimizer": getattr(self, "_vae_opt_meta", None)}

    def _load_training_state(self, tensors, meta) -> None:
        super()._load_training_state(tensors, meta)
        if "vae_optimizer" in tensors and meta.get("vae_optimizer"):
            optimizer_from_tensors(self.vae_optimizer, tensors["vae_optimizer"], meta["vae_optimizer"])

    # ---- data: the image and its mask, stacked as two channels
    def _training_images(self, train: Split):
        import torch

        images = resize_uint8(train.images.detach().cpu(), self.native_size)
        if train.masks is not None and bool((train.masks > 0).any()):
            masks, self.mask_source = resize_uint8((train.masks > 0).to(torch.uint8) * 255, self.native_size), "dataset"
        else:  # no masks in the dataset: the classical lung-field estimate
            masks, self.mask_source = estimate_lung_masks(images) * 255, "estimated (cxrbench.kit.masks)"
        masks = (masks > 127).to(torch.uint8)
        g = torch.Generator().manual_seed(int(self.cfg.get("seed") or 0))
        pick = torch.randint(masks.shape[0], (int(self.cfg["mask_bank_size"]),), generator=g)
        # each bank mask keeps its image's labels: an estimated lung field has a hole where an
        # opacity is, so a mask drawn for a positive condition must come from a positive image
        # (measured on the kit's toy set: bank masks of any label gave label-probe AUROC 0.56,
        # the label read off the mask instead of the condition)
        self._bank_source, self._bank_labels = masks[pick], train.labels.detach().cpu().float()[pick]
        self._train_pixels, self._latent_moments = images, None
        return torch.cat([images, masks * 255], dim=1)

    def fit(self, train: Split, *, progress: bool = True) -> dict[str, Any]:
        stats = super().fit(train, progress=progress)
        vae_steps, unet_steps = self._stage_steps()
        extra = {"mask_source": self.mask_source, "vae_steps": vae_steps, "unet_steps": unet_steps,
                 "latent_grid": self.grid, "latent_scale": float(self.model.latent_scale)}
        if self.cfg.get("text_model"):
            from cxrbench.kit.text import folder_fingerprint

            prompts = sorted(set(self.prompter.prompts(self.encoder.encode_split(train))))
            extra.update(prompts={"distinct": len(prompts), "examples": prompts[:: max(1, len(prompts) // 8)][:8]},
                         text_model_files=folder_fingerprint(str(self.cfg["text_model"])))
        self.train_stats.update(extra)
        return {**stats, **extra}

    # ---- training: autoencoder first, then the UNet on frozen latents
    def _decode(self, z):
        x = self.vae.decode(z).sample
        return x.mean(dim=1, keepdim=True) if x.shape[1] != 1 else x

    def _mask_channel(self, mask_pm1):
        import torch.nn.functional as F

        return F.adaptive_avg_pool2d(mask_pm1, self.grid)

    def _train_step(self, step, x, c, g) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        img, mask = x[:, :1], x[:, 1:2]
        vae_steps, _ = self._stage_steps()
        if step < vae_steps:
            img = img[: int(self.cfg["vae_batch_size"])]  # pixel space is the costly stage on a CPU
            self.vae.train()
            dist = self.vae.encode(img).latent_dist
            recon = self.vae.decode(dist.sample(generator=g)).sample
            rec, kl = F.mse_loss(recon, img), dist.kl().mean() / img[0].numel()
            loss = rec + float(self.cfg["kl_weight"]) * kl
            self.vae_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.vae.parameters(), 1.0)
            self.vae_optimizer.step()
            return {"loss": float(loss.detach()), "recon": float(rec.detach())}
        if getattr(self, "_latent_moments", None) is None:
            self._latent_moments = self._encode_training_set()
        mean, std = (m[self.batch_index.cpu()].to(self.device) for m in self._latent_moments)
        z = (mean + std * torch.randn(mean.shape, generator=g).to(self.device)) * self.model.latent_scale
        extra = self._mask_channel(mask) if self.cfg["mask_conditioning"] else None
        return self._diffusion_step(step - vae_steps, z, self._context(c), g, extra=extra)

    def _encode_training_set(self):
        """Encode every training image once (the autoencoder is frozen from here on): the UNet
        stage then draws its latents from the cached posteriors instead of running the encoder
        on every batch, which halves its cost on a CPU. Sets the latent scale on first use."""
        import torch

        from cxrbench.kit import to_model_range

        self.vae.eval()
        means, stds = [], []
        with torch.no_grad():
            for start in range(0, self._train_pixels.shape[0], 256):
                x = to_model_range(self._train_pixels[start : start + 256]).to(self.device)
                x = x.expand(-1, 3, -1, -1) if self.vae.config.in_channels == 3 else x
                dist = self.vae.encode(x).latent_dist
                means.append(dist.mean.cpu())
                stds.append(dist.std.cpu())
            mean = torch.cat(means)
            if float(self.model.latent_scale) == 0.0:
                # scale latents to unit variance (Stable Diffusion's scaling_factor, measured here)
                self.model.latent_scale.fill_(1.0 / float(mean.std().clamp_min(1e-6)))
        return mean, torch.cat(stds)

    # ---- generation
    def conditioning_masks(self, conditions, size: int | None = None):
        """uint8 (N, 1, size, size) 0/1: the mask each condition is generated with (its own
        mask or a bank mask chosen by its seed, then a seeded affine + elastic perturbation)."""
        import numpy as np
        import torch

        self._require_fitted()
        res = self.native_size
        bank = self.model.mask_bank.cpu()
        base = []
        for cond in conditions:
            pick = self._bank_pick(cond)
            if pick is None:
                m = torch.as_tensor(np.asarray(cond.mask)).reshape(1, 1, *np.asarray(cond.mask).shape[-2:])
                base.append(resize_uint8((m > 0).to(torch.uint8) * 255, res) > 127)
            else:
                base.append(bank[pick : pick + 1] > 0)
        if not base:
            return torch.zeros((0, 1, size or self.size, size or self.size), dtype=torch.uint8)
        masks = perturb_masks(torch.cat(base).to(torch.uint8), [_perturbation_seed(c) for c in conditions])
        out = size or self.size
        return masks if out == res else (resize_uint8(masks * 255, out) > 127).to(torch.uint8)

    def conditioning_mask_transforms(self, conditions) -> list[dict]:
        """Per condition, how its mask was made (for the record, in the order given): from the
        condition's own mask (the manifest's ``source_key`` names that image) or bank mask k
        (the bank keeps training masks only), then the seeded perturbation's parameters."""
        from cxrbench.kit.masks import perturbation_params

        self._require_fitted()
        params = perturbation_params([_perturbation_seed(c) for c in conditions])
        out = []
        for cond, p in zip(conditions, params):
            pick = self._bank_pick(cond)
            out.append({"mask_from": "condition" if pick is None else "bank", "bank_index": pick, **p})
        return out

    def _bank_pick(self, cond) -> int | None:
        """None when the condition brings its own mask, else the bank mask its seed draws among
        the bank masks of training images with the same labels (any mask when there is none)."""
        import numpy as np
        import torch

        if cond.mask is not None:
            return None
        bank_labels = self.model.mask_bank_labels.cpu()
        want = torch.tensor([float(v) for v in cond.labels])
        same = ((bank_labels == want) | bank_labels.isnan()).all(dim=1).nonzero().flatten()
        rows = same if len(same) else torch.arange(bank_labels.shape[0])
        return int(rows[int(np.random.default_rng([int(cond.seed) & 0xFFFFFFFF, 7]).integers(len(rows)))])

    def _condition_tensors(self, conditions):
        if not self.cfg["mask_conditioning"]:
            return None
        return self._mask_channel(self.conditioning_masks(conditions, self.native_size).float() * 2 - 1)

    def _sample(self, c, seeds: Sequence[int], extra=None):
        import torch

        grid = self.grid
        z = self._denoise(self._context(c), seeds, (int(self.vae.config.latent_channels), grid, grid), extra=extra)
        self.vae.eval()
        with torch.no_grad(), autocast(self.device):
            x = self._decode(z / self.model.latent_scale).float()
        return x.clamp(-1, 1)
