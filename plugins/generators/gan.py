"""Conditional GAN for small medical image sets.

- Generator: ResNet-style (BigGAN-like, reduced): ``z`` and the condition embedding feed a
  linear layer to a 4x4 map, then up-sampling residual blocks whose GroupNorms are
  *conditional* (per-channel gain and bias predicted from ``[z, embed(condition)]``). GroupNorm
  instead of BatchNorm: each image's computation is independent of the rest of its batch, so
  image i depends only on ``conditions[i]`` in training mode and at sampling time alike.
- Discriminator: residual down-sampling blocks with spectral norm and a *projection* head
  (Miyato & Koyama 2018): ``D(x, c) = psi(h) + <embed(c), h>``; ``embed`` is linear in the
  condition vector, so multi-label and demographic conditions project additively.
- Loss: hinge; lazy R1 penalty on (augmented) real images every ``r1_every`` steps;
  DiffAugment (translation, cutout, brightness/contrast) on every image the discriminator sees;
  EMA of the generator's weights (used for sampling); Adam(betas=(0.0, 0.99)).
- Sampling: ``z`` of image i is drawn on the CPU from ``torch.Generator().manual_seed(seed)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping, Optional, Sequence

from cxrbench.errors import ConfigError
from cxrbench.kit import EMA, LearnedGenerator, LearnedOptions, autocast, count_parameters
from cxrbench.kit import optimizer_from_tensors, optimizer_to_tensors, seed_generator

# Every default lives here: "small" in full, the other presets as what they change. Beyond
# "tiny", the BigGAN balance: D learns 4x faster than G and takes 2 steps per G step (measured
# on Kermany 32 px: with 1 step at equal rates the hinge loss sat at 2.0, D could not tell real
# from fake, and samples collapsed to one per class).
# "tiny": tests (seconds); "small": 32 px, <= 30 min on a 2-core CPU;
# "medium": 64 px; "paper": 256 px on a GPU.
_SMALL: dict[str, Any] = dict(
    # networks: g_channels at the output resolution, doubling per level towards 4x4 up to
    # g_max_channels (d_* likewise for the discriminator)
    resolution=32, z_dim=128, embed_dim=128, g_channels=32, g_max_channels=256, d_channels=32, d_max_channels=256,
    # training
    train_steps=1100,  # ~1.35 s/step (2 D steps) at 2 free cores: ~25 min
    batch_size=64, lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.99), d_steps=2, r1_gamma=0.1, r1_every=4,
    diffaug="translation,cutout,color", ema_decay=0.999, gen_batch_size=64,
    max_train_minutes=None,  # sized by steps: a wall-clock budget would make the fit machine-dependent
    checkpoint_every=500, seed=0,
)
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        _SMALL, resolution=16, z_dim=32, embed_dim=32, g_channels=16, g_max_channels=64, d_channels=16,
        d_max_channels=64, train_steps=150, batch_size=32, lr_g=2e-3, lr_d=2e-3, d_steps=1, ema_decay=0.99,
        gen_batch_size=8, checkpoint_every=200,
    ),
    "small": dict(_SMALL),
    "medium": dict(
        _SMALL, resolution=64, g_channels=64, g_max_channels=512, d_channels=64, d_max_channels=512,
        train_steps=40000, r1_gamma=0.2, checkpoint_every=2000,
    ),
    "paper": dict(
        _SMALL, resolution=256, g_max_channels=512, d_max_channels=512, train_steps=100000, batch_size=32,
        r1_gamma=1.0, r1_every=16, ema_decay=0.9995, gen_batch_size=32, checkpoint_every=5000,
    ),
}

DIFFAUG_POLICIES = ("translation", "cutout", "color")


@dataclass
class GANOptions(LearnedOptions):
    """Options of the ``gan`` generator. ``None`` = the preset's value (see ``PRESETS``)."""

    preset: Literal["tiny", "small", "medium", "paper"] = "small"
    z_dim: Optional[int] = None
    embed_dim: Optional[int] = None
    g_channels: Optional[int] = None
    g_max_channels: Optional[int] = None
    d_channels: Optional[int] = None
    d_max_channels: Optional[int] = None
    lr_g: Optional[float] = None
    lr_d: Optional[float] = None
    betas: Optional[tuple[float, float]] = None
    #: discriminator updates per generator update
    d_steps: Optional[int] = None
    r1_gamma: Optional[float] = None
    r1_every: Optional[int] = None
    #: comma-separated DiffAugment policies among translation, cutout, color ("" = none)
    diffaug: Optional[str] = None
    ema_decay: Optional[float] = None


# --------------------------------------------------------------------------- DiffAugment


def diff_augment(x, policy: Sequence[str], g):
    """DiffAugment (Zhao et al. 2020) for images in [-1, 1]; random draws from CPU ``g``.

    color: brightness + U(-0.5, 0.5), contrast x U(0.5, 1.5) around the image mean;
    translation: shift by up to 1/8 of the size with zero padding; cutout: zero a square of
    half the size at a random place. Differentiable in ``x``.
    """
    import torch
    import torch.nn.functional as F

    b, _, h, w = x.shape
    dev = x.device
    if "color" in policy:
        bright = (torch.rand(b, 1, 1, 1, generator=g) - 0.5).to(dev, x.dtype)
        x = x + bright
        contrast = (torch.rand(b, 1, 1, 1, generator=g) + 0.5).to(dev, x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean
    if "translation" in policy:
        sh, sw = max(1, int(h * 0.125 + 0.5)), max(1, int(w * 0.125 + 0.5))
        ty = torch.randint(-sh, sh + 1, (b, 1, 1), generator=g).to(dev)
        tx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=g).to(dev)
        gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
        gy = (gy.unsqueeze(0) + ty + sh).clamp(0, h + 2 * sh - 1)
        gx = (gx.unsqueeze(0) + tx + sw).clamp(0, w + 2 * sw - 1)
        padded = F.pad(x, [sw, sw, sh, sh])
        bi = torch.arange(b, device=dev).view(b, 1, 1)
        x = padded.permute(0, 2, 3, 1)[bi, gy, gx].permute(0, 3, 1, 2)
    if "cutout" in policy:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=g).to(dev)
        ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=g).to(dev)
        gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
        inside = (
            (gy.unsqueeze(0) >= oy - ch // 2) & (gy.unsqueeze(0) < oy - ch // 2 + ch)
            & (gx.unsqueeze(0) >= ox - cw // 2) & (gx.unsqueeze(0) < ox - cw // 2 + cw)
        )
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x


# --------------------------------------------------------------------------- networks


def _groups(ch: int) -> int:
    for g in (16, 8, 4, 2):
        if ch % g == 0 and ch // g >= 2:
            return g
    return 1


def _channels(res: int, base: int, top: int) -> list[int]:
    """Channels per level from 4x4 up to ``res``: ``base`` at ``res``, doubling towards 4x4."""
    levels = int(math.log2(res // 4))
    return [min(top, base * 2 ** (levels - i)) for i in range(levels + 1)]


def _minibatch_std(h, group: int = 4):
    """One feature map per image: the mean std over its group of ``group`` images (ProGAN).

    Groups are consecutive images; a batch not divisible by ``group`` uses the largest divisor.
    """
    import torch

    b, ch, hh, ww = h.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = h.float().reshape(g, b // g, ch, hh, ww)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (b // g,)
    return y.repeat(g).reshape(b, 1, 1, 1).expand(b, 1, hh, ww).to(h.dtype)


def _build_networks(cfg: Mapping[str, Any], cond_dim: int):
    import torch
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm as sn

    res = int(cfg["resolution"])
    z_dim, e_dim = int(cfg["z_dim"]), int(cfg["embed_dim"])
    g_ch = _channels(res, int(cfg["g_channels"]), int(cfg["g_max_channels"]))
    d_ch = _channels(res, int(cfg["d_channels"]), int(cfg["d_max_channels"]))[::-1]  # res -> 4x4
    style_dim = z_dim + e_dim

    class CondGroupNorm(nn.Module):
        def __init__(self, ch: int):
            super().__init__()
            self.norm = nn.GroupNorm(_groups(ch), ch, affine=False)
            self.gain = nn.Linear(style_dim, ch)
            self.bias = nn.Linear(style_dim, ch)
            for lin in (self.gain, self.bias):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

        def forward(self, x, s):
            return self.norm(x) * (1 + self.gain(s)[:, :, None, None]) + self.bias(s)[:, :, None, None]

    class GBlock(nn.Module):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.n1, self.n2 = CondGroupNorm(cin), CondGroupNorm(cout)
            self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
            self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
            self.skip = nn.Conv2d(cin, cout, 1)

        def forward(self, x, s):
            h = nn.functional.interpolate(torch.relu(self.n1(x, s)), scale_factor=2.0, mode="nearest")
            h = self.c2(torch.relu(self.n2(self.c1(h), s)))
            return h + self.skip(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))

    class Gen(nn.Module):
        def __init__(self):
            super().__init__()
            self.cond_dim = cond_dim
            self.embed = nn.Linear(max(1, cond_dim), e_dim)
            self.fc = nn.Linear(style_dim, g_ch[0] * 16)
            self.blocks = nn.ModuleList(GBlock(g_ch[i], g_ch[i + 1]) for i in range(len(g_ch) - 1))
            self.out_norm = nn.GroupNorm(_groups(g_ch[-1]), g_ch[-1])
            self.out = nn.Conv2d(g_ch[-1], 1, 3, padding=1)

        def forward(self, z, c):
            e = self.embed(c) if self.cond_dim > 0 else self.embed(torch.zeros_like(c[:, :1]))
            s = torch.cat([z, e], dim=1)
            h = self.fc(s).view(z.shape[0], g_ch[0], 4, 4)
            for block in self.blocks:
                h = block(h, s)
            return torch.tanh(self.out(torch.relu(self.out_norm(h))))

    class DBlock(nn.Module):
        def __init__(self, cin: int, cout: int, first: bool):
            super().__init__()
            self.first = first
            self.c1 = sn(nn.Conv2d(cin, cout, 3, padding=1))
            self.c2 = sn(nn.Conv2d(cout, cout, 3, padding=1))
            self.skip = sn(nn.Conv2d(cin, cout, 1))

        def forward(self, x):
            h = x if self.first else torch.relu(x)
            h = self.c2(torch.relu(self.c1(h)))
            h = nn.functional.avg_pool2d(h, 2)
            if self.first:
                return h + self.skip(nn.functional.avg_pool2d(x, 2))
            return h + nn.functional.avg_pool2d(self.skip(x), 2)

    class Disc(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [1] + d_ch[:-1]  # block i: res / 2**i -> res / 2**(i + 1), ending at 4x4
            self.blocks = nn.ModuleList(DBlock(chans[i], chans[i + 1], i == 0) for i in range(len(chans) - 1))
            # +1 channel: minibatch standard deviation (Karras et al. 2018). D sees how much
            # images of a small group differ, so a generator that ignores z is caught.
            self.final = sn(nn.Conv2d(chans[-1] + 1, chans[-1], 3, padding=1))
            self.head = sn(nn.Linear(chans[-1], 1))
            self.proj = sn(nn.Linear(max(1, cond_dim), chans[-1], bias=False))
            self.cond_dim = cond_dim

        def forward(self, x, c):
            h = x
            for block in self.blocks:
                h = block(h)
            h = torch.relu(self.final(torch.cat([torch.relu(h), _minibatch_std(h)], dim=1))).sum(dim=(2, 3))
            out = self.head(h).squeeze(1)
            if self.cond_dim > 0:
                out = out + (self.proj(c) * h).sum(dim=1)
            return out

    return Gen(), Disc()


# --------------------------------------------------------------------------- generator


def _diffaug_policy(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ("translation", "cutout")."""
    return tuple(p.strip() for p in str(cfg.get("diffaug") or "").split(",") if p.strip())


class GANGenerator(LearnedGenerator):
    """Conditional GAN: projection discriminator, hinge loss, R1, DiffAugment, EMA generator."""

    name: ClassVar[str] = "gan"
    version: ClassVar[str] = "2"  # 2: minibatch-std D, d_steps, BigGAN learning rates
    Options: ClassVar[type] = GANOptions
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    @classmethod
    def _validate_cfg(cls, cfg: dict[str, Any]) -> None:
        super()._validate_cfg(cfg)
        unknown = [p for p in _diffaug_policy(cfg) if p not in DIFFAUG_POLICIES]
        if unknown:
            raise ConfigError(f"gan: unknown diffaug policy {unknown}; choose among {', '.join(DIFFAUG_POLICIES)}")
        if not isinstance(cfg.get("d_steps"), int) or cfg["d_steps"] < 1:
            raise ConfigError(f"gan: d_steps must be an integer >= 1, got {cfg.get('d_steps')!r}")

    def _build(self, cond_dim: int) -> None:
        import torch

        g, d = _build_networks(self.cfg, cond_dim)
        self.G, self.D = g.to(self.device), d.to(self.device)
        self.ema = EMA(self.G, float(self.cfg["ema_decay"]))
        betas = tuple(float(b) for b in self.cfg["betas"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(self.cfg["lr_g"]), betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=float(self.cfg["lr_d"]), betas=betas)

    def _inference_modules(self) -> dict[str, Any]:
        return {"model": self.G, "ema": self.ema.shadow}

    def parameter_counts(self) -> dict[str, int]:
        return {"generator": count_parameters(self.G), "discriminator": count_parameters(self.D)}

    def _training_state(self):
        tg, self._meta_g = optimizer_to_tensors(self.opt_g)
        td, self._meta_d = optimizer_to_tensors(self.opt_d)
        return {"discriminator": self.D.state_dict(), "optimizer_g": tg, "optimizer_d": td}

    def _training_meta(self) -> dict[str, Any]:
        return {
            "optimizer_g": getattr(self, "_meta_g", None),
            "optimizer_d": getattr(self, "_meta_d", None),
            "ema_updates": self.ema.num_updates,
        }

    def _load_training_state(self, tensors, meta) -> None:
        if "discriminator" in tensors:
            self.D.load_state_dict(tensors["discriminator"])
        if "optimizer_g" in tensors and meta.get("optimizer_g"):
            optimizer_from_tensors(self.opt_g, tensors["optimizer_g"], meta["optimizer_g"])
        if "optimizer_d" in tensors and meta.get("optimizer_d"):
            optimizer_from_tensors(self.opt_d, tensors["optimizer_d"], meta["optimizer_d"])
        self.ema.num_updates = int(meta.get("ema_updates", 0))

    def _train_step(self, step, x, c, g) -> dict[str, float]:
        import torch

        cfg = self.cfg
        dev = self.device
        b = x.shape[0]
        z_dim = int(cfg["z_dim"])
        aug = lambda t: diff_augment(t, _diffaug_policy(self.cfg), g)  # noqa: E731
        self.G.train()
        self.D.train()

        # discriminator: hinge, plus lazy R1 on the (augmented) reals. ``d_steps`` updates per
        # generator update (fresh z and augmentations each): on a short budget the generator
        # otherwise matches D's every move and D never gets ahead of it (hinge loss stuck at 2).
        r1_every = int(cfg["r1_every"] or 0)
        for k in range(int(cfg["d_steps"])):
            z = torch.randn(b, z_dim, generator=g).to(dev)
            with torch.no_grad(), autocast(dev):
                fake = self.G(z, c).float()
            do_r1 = bool(cfg.get("r1_gamma")) and r1_every > 0 and step % r1_every == 0 and k == 0
            real_in = aug(x).detach().requires_grad_(do_r1)
            if do_r1:
                d_real = self.D(real_in, c)  # full precision for the gradient penalty
            else:
                with autocast(dev):
                    d_real = self.D(real_in, c).float()
            with autocast(dev):
                d_fake = self.D(aug(fake), c).float()
            loss_d = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
            total_d = loss_d
            if do_r1:
                (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
                r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
                total_d = loss_d + 0.5 * float(cfg["r1_gamma"]) * r1 * r1_every
            self.opt_d.zero_grad(set_to_none=True)
            total_d.backward()
            self.opt_d.step()

        # generator: non-saturating hinge objective, conditions of the real batch
        z = torch.randn(b, z_dim, generator=g).to(dev)
        self.D.requires_grad_(False)
        with autocast(dev):
            fake = self.G(z, c)
            loss_g = -self.D(aug(fake.float()), c).float().mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.D.requires_grad_(True)
        self.opt_g.step()
        self.ema.update(self.G)
        return {
            "d_loss": float(loss_d.detach()),
            "g_loss": float(loss_g.detach()),
            "d_real": float(d_real.detach().mean()),
            "d_fake": float(d_fake.detach().mean()),
        }

    def _sample(self, c, seeds: Sequence[int]):
        import torch

        z_dim = int(self.cfg["z_dim"])
        z = torch.stack([torch.randn(z_dim, generator=seed_generator(s)) for s in seeds]).to(self.device)
        net = self.ema.shadow
        net.eval()
        with autocast(self.device):
            return net(z, c).float()
