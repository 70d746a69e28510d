"""A tiny, randomly initialised text-to-image model folder, for tests of text conditioning offline.

:func:`make_tiny_text_model` writes what a Stable Diffusion download looks like (``unet/``,
``vae/``, ``text_encoder/``, ``tokenizer/``), at a size that trains in seconds on a CPU: a
2-level ``UNet2DConditionModel`` with cross-attention (random, as a base model the fit will
fine-tune), a 2-level RGB ``AutoencoderKL`` *trained* here on the kit's toy images for
``vae_steps`` steps (a random autoencoder would decode anything to noise, so no test could see
whether the prompt is honoured), with its ``scaling_factor`` measured as Stable Diffusion's was,
a 2-layer CLIP text encoder and a CLIP tokenizer whose vocabulary is the 512 byte-level
characters (no merges: every character is a token). Tests and plugin authors use it where the real weights
(gigabytes, from a hub) cannot be fetched. Needs ``transformers``.
"""

from __future__ import annotations

import json
from pathlib import Path


def _byte_characters() -> list[str]:
    """The printable stand-ins of the 256 bytes in byte-level BPE (as CLIP's tokenizer maps them)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def make_tiny_text_model(root: str | Path, *, width: int = 32, seed: int = 0, vae_steps: int = 150,
                         resolution: int = 16) -> Path:
    """Write a tiny text-to-image diffusers folder at ``root`` (created) and return its path."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    root = Path(root)
    chars = _byte_characters()
    vocab = {ch: i for i, ch in enumerate(chars)}
    vocab.update({ch + "</w>": len(chars) + i for i, ch in enumerate(chars)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    tok_dir = root / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=32).save_pretrained(tok_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        CLIPTextModel(CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=32, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos,
        )).save_pretrained(root / "text_encoder")
        UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=width, attention_head_dim=8, norm_num_groups=8,
        ).save_pretrained(root / "unet")
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=8, sample_size=resolution,
        )
        _train_autoencoder(vae, vae_steps, resolution, seed)
        vae.save_pretrained(root / "vae")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline", "_note": "cxrbench tiny test model"}))
    return root


def _train_autoencoder(vae, steps: int, resolution: int, seed: int) -> None:
    """Reconstruction (MSE + a small KL) on toy images in [-1, 1] as three equal channels; then
    ``scaling_factor`` = 1 / std of the latent means, as Stable Diffusion's was chosen."""
    import torch
    import torch.nn.functional as F

    from cxrbench.testing.toydata import make_toy_images

    labels = [float(i % 2) for i in range(256)]
    x = make_toy_images(labels, resolution, seed).float().div(127.5).sub(1).expand(-1, 3, -1, -1)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    vae.train()
    for _ in range(steps):
        batch = x[torch.randint(len(x), (32,), generator=g)]
        dist = vae.encode(batch).latent_dist
        loss = F.mse_loss(vae.decode(dist.sample(generator=g)).sample, batch) + 1e-5 * dist.kl().mean() / batch[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    vae.eval()
    with torch.no_grad():
        std = float(vae.encode(x).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
