"""`cvae`: a small conditional variational autoencoder (Kingma & Welling 2014; Sohn et al. 2015).

It is written only against cxrbench's public API (``cxrbench.contracts``, ``cxrbench.errors``
and ``cxrbench.kit``). Subclassing :class:`cxrbench.kit.LearnedGenerator` gives it, without a
line of its own: conditions encoded to a float vector (labels + sex / age / race,
:class:`cxrbench.kit.ConditionEncoder`), fits defined by ``train_steps`` with a reproducible
batch and noise per step, the ``max_train_minutes`` budget that marks a fit truncated,
resumable checkpoints refused on other data or another configuration, effective options from
presets, and pickle-free ``save`` / ``load``. What is left is the model itself:

- **Encoder** q(z | x, c): strided convolutions down to 4x4, flattened and joined with an
  embedding of the condition ``c``, then a linear layer to ``mu`` and ``logvar``. Giving the
  encoder ``c`` too is what makes the VAE *conditional* in a useful way: the KL term charges for
  every bit ``z`` carries, so information already in ``c`` (the label) is left to ``c``, and the
  decoder has to listen to it.
- **Decoder** p(x | z, c): ``[z, embed(c)]`` -> a 4x4 map -> nearest up-sampling blocks whose
  GroupNorms are modulated by ``embed(c)`` (FiLM: per-channel gain and bias). The condition then
  reaches every resolution, not only the first layer. GroupNorm, not BatchNorm: image i never
  depends on the rest of its batch.
- **Loss**: a Gaussian likelihood with a fixed standard deviation ``recon_sigma`` (in the
  [-1, 1] model range), plus ``kl_weight`` x KL(q || N(0, I)), both per pixel. ``recon_sigma``
  is the one knob that matters: smaller = sharper reconstructions and more information in ``z``,
  larger = blurrier samples closer to the per-condition mean.
- **Sampling**: ``z`` of image i is drawn on the CPU from ``seed_generator(condition.seed)``,
  times ``temperature``; the image is the decoder's mean for (z, c), taken from the EMA weights.
  Same seed -> same image; image i depends on ``conditions[i]`` only.

torch is imported inside functions: ``cxrbench validate`` imports this module to check the
``Options`` dataclass and must not pay for torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping, Optional, Sequence

from cxrbench.contracts import GeneratorCapabilities
from cxrbench.errors import ConfigError
from cxrbench.kit import EMA, SAMPLING, LearnedGenerator, LearnedOptions, OptimizerEMAState, autocast
from cxrbench.kit import seed_generator

# Every default lives here: "small" in full, "tiny" as what it changes. "tiny": tests (seconds
# on one CPU thread); "small": 32 px, a few minutes on a 2-core CPU (measured figures in README.md).
_SMALL: dict[str, Any] = dict(
    # networks: ``channels`` at the full resolution, doubling per level towards 4x4 up to
    # ``max_channels``; measured on one busy core: 0.12 s/step (32 channels at batch 64: 0.8)
    resolution=32, z_dim=64, embed_dim=64, channels=16, max_channels=64,
    # training
    train_steps=1500, batch_size=32, lr=1e-3,
    recon_sigma=0.1,  # ~13 grey levels: sharp enough to draw the toy set's blob
    kl_weight=1.0, ema_decay=0.995,
    # sampling
    temperature=1.0, gen_batch_size=64,
    max_train_minutes=None,  # sized by steps: a wall-clock budget would make the fit machine-dependent
    checkpoint_every=500, seed=0,
)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(_SMALL, resolution=16, z_dim=16, embed_dim=32, channels=8, max_channels=32, train_steps=300,
                 lr=2e-3, ema_decay=0.99, gen_batch_size=8, checkpoint_every=200),
    "small": dict(_SMALL),
}


@dataclass
class CVAEOptions(LearnedOptions):
    """Options of the ``cvae`` generator. ``None`` = the preset's value (see ``PRESETS``).
    ``LearnedOptions`` brings those the kit reads: resolution, train_steps, batch sizes,
    max_train_minutes, checkpoint_dir / checkpoint_every and seed."""

    preset: Literal["tiny", "small"] = "small"
    z_dim: Optional[int] = None
    embed_dim: Optional[int] = None
    channels: Optional[int] = None
    max_channels: Optional[int] = None
    lr: Optional[float] = None
    #: standard deviation of the Gaussian likelihood, in the [-1, 1] model range
    recon_sigma: Optional[float] = None
    #: weight of the KL term (1 = the evidence lower bound; < 1 a beta-VAE leaning to sharpness)
    kl_weight: Optional[float] = None
    ema_decay: Optional[float] = None
    #: scale of the prior noise at sampling time (< 1: closer to the mode, less diverse)
    temperature: Optional[float] = field(default=None, metadata=SAMPLING)


# --------------------------------------------------------------------------- networks


def _groups(ch: int) -> int:
    """The most GroupNorm groups (<= 8) that leave at least 2 channels per group."""
    for g in (8, 4, 2):
        if ch % g == 0 and ch // g >= 2:
            return g
    return 1


def _channels(res: int, base: int, top: int) -> list[int]:
    """Channels per level from full resolution down to 4x4: ``base``, doubling, capped at ``top``."""
    levels = int(math.log2(res // 4))
    return [min(top, base * 2**i) for i in range(levels + 1)]


def _build_vae(cfg: Mapping[str, Any], cond_dim: int):
    import torch
    from torch import nn

    res = int(cfg["resolution"])
    z_dim, e_dim = int(cfg["z_dim"]), int(cfg["embed_dim"])
    ch = _channels(res, int(cfg["channels"]), int(cfg["max_channels"]))  # res -> 4x4

    def embed_input(c):
        # a dataset with no labels and no demographics gives 0-wide conditions: feed one zero
        return c if c.shape[1] > 0 else c.new_zeros(c.shape[0], 1)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(1, ch[0], 3, padding=1), nn.SiLU()]
            for cin, cout in zip(ch[:-1], ch[1:]):  # halve the resolution per level
                layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(_groups(cout), cout), nn.SiLU()]
            self.convs = nn.Sequential(*layers)
            self.embed = nn.Linear(max(1, cond_dim), e_dim)
            self.head = nn.Linear(ch[-1] * 16 + e_dim, 2 * z_dim)

        def forward(self, x, c):
            h = self.convs(x).flatten(1)
            mu, logvar = self.head(torch.cat([h, self.embed(embed_input(c))], dim=1)).chunk(2, dim=1)
            # a clamp keeps exp(logvar) finite in the first steps at a high learning rate
            return mu, logvar.clamp(-10.0, 10.0)

    class FiLMBlock(nn.Module):
        """Up-sample x2, conv, GroupNorm whose gain and bias come from the condition."""

        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=1)
            self.norm = nn.GroupNorm(_groups(cout), cout, affine=False)
            self.film = nn.Linear(e_dim, 2 * cout)
            # start as a plain GroupNorm (gain 1, bias 0): the condition's effect is learned
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

        def forward(self, h, e):
            h = self.conv(nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))
            gain, bias = self.film(e)[:, :, None, None].chunk(2, dim=1)
            return nn.functional.silu(self.norm(h) * (1 + gain) + bias)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Sequential(nn.Linear(max(1, cond_dim), e_dim), nn.SiLU())
            self.fc = nn.Linear(z_dim + e_dim, ch[-1] * 16)
            up = ch[::-1]  # 4x4 -> res
            self.blocks = nn.ModuleList(FiLMBlock(cin, cout) for cin, cout in zip(up[:-1], up[1:]))
            self.out = nn.Conv2d(ch[0], 1, 3, padding=1)

        def forward(self, z, c):
            e = self.embed(embed_input(c))
            h = nn.functional.silu(self.fc(torch.cat([z, e], dim=1))).view(z.shape[0], ch[-1], 4, 4)
            for block in self.blocks:
                h = block(h, e)
            return torch.tanh(self.out(h))  # the decoder's mean, in the [-1, 1] model range

    class CVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()

    return CVAE()


# --------------------------------------------------------------------------- generator


class CVAEGenerator(OptimizerEMAState, LearnedGenerator):
    """Conditional VAE: conditioned encoder and FiLM decoder, Gaussian likelihood, EMA weights."""

    name: ClassVar[str] = "cvae"
    version: ClassVar[str] = "1"  # bump when fit() changes: cached fits are then retrained
    sampling_version: ClassVar[str] = "1"  # bump when only _sample() changes
    # LearnedGenerator's default, spelled out. demographics: the kit's ConditionEncoder adds
    # sex / age / race to the condition vector whenever the training split has them, so the
    # VAE is conditioned on them for free
    capabilities: ClassVar[GeneratorCapabilities] = GeneratorCapabilities(
        labels=True, demographics=True, mask=False, text=False, needs_training=True, native_size=None
    )
    Options: ClassVar[type] = CVAEOptions
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    @classmethod
    def _validate_cfg(cls, cfg: dict[str, Any]) -> None:
        # runs in `cxrbench validate` too: plain Python only, no torch
        super()._validate_cfg(cfg)  # resolution, train_steps, batch sizes, max_train_minutes
        for key in ("z_dim", "embed_dim", "channels", "max_channels"):
            if not isinstance(cfg.get(key), int) or cfg[key] < 1:
                raise ConfigError(f"cvae: {key} must be an integer >= 1, got {cfg.get(key)!r}")
        for key in ("lr", "recon_sigma"):
            if not float(cfg[key]) > 0:
                raise ConfigError(f"cvae: {key} must be > 0, got {cfg[key]!r}")
        for key in ("kl_weight", "temperature"):
            if not float(cfg[key]) >= 0:
                raise ConfigError(f"cvae: {key} must be >= 0, got {cfg[key]!r}")
        if not 0.0 <= float(cfg["ema_decay"]) < 1.0:
            raise ConfigError(f"cvae: ema_decay must be in [0, 1), got {cfg['ema_decay']!r}")

    # ---- the hooks LearnedGenerator calls
    def _build(self, cond_dim: int) -> None:
        import torch

        # the kit seeds torch with the ``seed`` option around this call: same seed, same init
        self.vae = _build_vae(self.cfg, cond_dim).to(self.device)
        self.ema = EMA(self.vae, float(self.cfg["ema_decay"]))
        self.optimizer = torch.optim.Adam(self.vae.parameters(), lr=float(self.cfg["lr"]))

    def _inference_modules(self) -> dict[str, Any]:
        # save() writes both; the live weights are needed to resume, the EMA ones to sample.
        # OptimizerEMAState checkpoints self.optimizer and the EMA's update count besides.
        return {"model": self.vae, "ema": self.ema.shadow}

    def _train_step(self, step, x, c, g) -> dict[str, float]:
        import torch

        # ``x``: a batch in [-1, 1] at the model's resolution, ``c``: its condition vectors,
        # ``g``: this step's CPU generator (the kit picked the batch with it; the
        # reparameterisation noise comes from it too, so a resumed fit replays the same steps)
        self.vae.train()
        with autocast(self.device):
            mu, logvar = self.vae.encoder(x, c)
            eps = torch.randn(mu.shape, generator=g).to(mu.device, mu.dtype)
            z = mu + (0.5 * logvar).exp() * eps
            recon = self.vae.decoder(z, c)
        mu, logvar, recon = mu.float(), logvar.float(), recon.float()
        pixels = x[0].numel()
        sigma = float(self.cfg["recon_sigma"])
        # -log N(x; recon, sigma^2) per pixel, constants dropped
        nll = (x - recon).pow(2).sum(dim=(1, 2, 3)).mean() / (2 * sigma**2 * pixels)
        # KL(N(mu, var) || N(0, I)) in closed form, spread over the pixels like the likelihood
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)).mean() / pixels
        loss = nll + float(self.cfg["kl_weight"]) * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.ema.update(self.vae)
        # the first entry is the one the kit smooths into ``final_loss``
        return {"loss": float(loss.detach()), "nll": float(nll.detach()), "kl": float(kl.detach())}

    def _sample(self, c, seeds: Sequence[int]):
        import torch

        z_dim = int(self.cfg["z_dim"])
        # one CPU generator per image: z of image i is a function of its seed only
        z = torch.stack([torch.randn(z_dim, generator=seed_generator(s)) for s in seeds])
        z = (z * float(self.cfg["temperature"])).to(self.device)
        decoder = self.ema.shadow.decoder
        decoder.eval()
        with autocast(self.device):
            return decoder(z, c).float()
