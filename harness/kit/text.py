"""Text conditioning from a local pretrained text-to-image latent diffusion model.

Used by ``ldm`` when its ``text_model`` option names a local diffusers folder laid out like a
Stable Diffusion pipeline (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``: Stable
Diffusion itself, RoentGen, or a model fine-tuned elsewhere). As in Prakash et al., the
condition becomes a *prompt*: a template from the spec filled with the phrases of the positive
labels (and the patient's sex and age when the dataset has them), e.g.
``"a frontal chest radiograph showing pneumonia"``. The frozen CLIP text encoder turns each
distinct prompt into token embeddings once (cached); the pretrained ``UNet2DConditionModel`` is
fine-tuned on the real training latents with those embeddings as cross-attention context.

Classifier-free guidance works as in the rest of the kit: the empty prompt's embedding is the
*null* condition, used with probability ``p_uncond`` in training and for the unconditional
half of a guided sampling step. A mask is one more UNet input channel: the pretrained
``conv_in`` is widened with zero weights for it (as Stable Diffusion's inpainting models are
made), so the fine-tuning starts from exactly the pretrained model.

Nothing is downloaded: the folder must exist locally (``huggingface-cli download REPO
--local-dir DIR`` beforehand), and ``transformers`` must be installed (``pip install
'cxrbench[text]'``). torch, diffusers and transformers are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path
from typing import Any, Mapping, Sequence

from cxrbench.errors import ConfigError

#: the sub-folders a text-to-image model folder must have (each a diffusers/transformers save)
TEXT_MODEL_PARTS = ("unet", "vae", "text_encoder", "tokenizer")
#: the placeholders a prompt template may use
PROMPT_FIELDS = ("findings", "patient", "sex", "age")


def check_text_model(name: str, path: str) -> None:
    """ConfigError (one line, naming the fix) unless ``path`` is a usable local text-to-image folder."""
    root = Path(path)
    missing = [part for part in TEXT_MODEL_PARTS if not (root / part).is_dir()]
    missing += [f"{part}/config.json" for part in ("unet", "vae", "text_encoder")
                if part not in missing and not (root / part / "config.json").is_file()]
    if missing:
        raise ConfigError(
            f"{name}: text_model {path!r} is not a local text-to-image diffusers folder (missing {', '.join(missing)}); "
            "download it beforehand (e.g. huggingface-cli download REPO --local-dir DIR), nothing is fetched at run time")
    if importlib.util.find_spec("transformers") is None:
        raise ConfigError(f"{name}: text_model needs the transformers package for its text encoder: pip install 'cxrbench[text]'")


def check_prompt_template(name: str, template: str) -> None:
    """ConfigError unless ``template`` is a format string using only :data:`PROMPT_FIELDS`, ``{findings}`` included."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ConfigError(f"{name}: prompt_template {template!r} is not a valid template: {exc}") from None
    unknown = fields - set(PROMPT_FIELDS)
    if unknown:
        raise ConfigError(f"{name}: prompt_template uses unknown field(s) {sorted(unknown)}; allowed: "
                          + ", ".join("{" + f + "}" for f in PROMPT_FIELDS))
    if "findings" not in fields:
        raise ConfigError(f"{name}: prompt_template must contain {{findings}}, got {template!r}")


class PromptBuilder:
    """Condition vectors (the kit's :class:`~cxrbench.kit.conditioning.ConditionEncoder` layout)
    to prompts: ``template`` filled with the comma-joined phrases of the positive labels (or
    ``no_finding`` when none is positive), ``{sex}`` ("female" / "male" / "") and ``{age}``
    (whole years, or ""), and ``{patient}``: the known ones in a phrase ("a 61-year-old female
    patient", "a male patient", "a patient")."""

    def __init__(self, encoder, template: str, phrases: Mapping[str, str] | None, no_finding: str):
        self.encoder = encoder
        self.template = template
        phrases = dict(phrases or {})
        unknown = sorted(set(phrases) - set(encoder.label_names))
        if unknown:
            raise ConfigError(f"ldm: label_phrases names label(s) {unknown} that the training data does not have; "
                              f"its labels: {list(encoder.label_names)}")
        self.phrases = [phrases.get(n, n.replace("_", " ").replace("-", " ")) for n in encoder.label_names]
        self.no_finding = no_finding

    def prompt(self, row: Sequence[float]) -> str:
        found = [p for p, v in zip(self.phrases, row[: len(self.phrases)]) if float(v) >= 0.5]
        sex, years = self.encoder.demographics_of(row)
        sex, age = sex or "", "" if years is None else f"{round(years)}"
        patient = " ".join(["a", *([f"{age}-year-old"] if age else []), *([sex] if sex else []), "patient"])
        text = self.template.format(findings=", ".join(found) or self.no_finding, patient=patient, sex=sex, age=age)
        return " ".join(text.split())  # an empty {sex} / {age} leaves no double space

    def prompts(self, c) -> list[str]:
        return [self.prompt(row) for row in c.detach().cpu().tolist()]


class TextEncoder:
    """The frozen tokenizer + CLIP text encoder of a text-to-image folder; prompt -> token
    embeddings (sequence, width), each distinct prompt encoded once."""

    def __init__(self, path: str, device: str):
        from transformers import CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weights-loading bar per fit would drown the run's progress
        root = Path(path)
        self.tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        self.model = CLIPTextModel.from_pretrained(str(root / "text_encoder"), local_files_only=True)
        self.model.to(device).eval().requires_grad_(False)
        self.device = device
        self.width = int(self.model.config.hidden_size)
        self._cache: dict[str, Any] = {}

    def encode(self, prompts: Sequence[str]):
        """(len(prompts), tokens, width) float32 on the device."""
        import torch

        todo = sorted({p for p in prompts if p not in self._cache})
        if todo:
            ids = self.tokenizer(todo, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids.to(self.device)
            with torch.no_grad():
                states = self.model(ids).last_hidden_state.float()
            self._cache.update(zip(todo, states))
        return torch.stack([self._cache[p] for p in prompts])


def load_text_unet(path: str, extra_in_channels: int):
    """The pretrained ``UNet2DConditionModel`` with ``extra_in_channels`` zero-initialised input
    channels appended (the mask), so that at step 0 it computes exactly the pretrained model."""
    import torch
    from diffusers import UNet2DConditionModel

    # low_cpu_mem_usage=False: the default wants the accelerate package, and warns without it
    unet = UNet2DConditionModel.from_pretrained(str(Path(path) / "unet"), local_files_only=True, low_cpu_mem_usage=False)
    if extra_in_channels:
        old = unet.conv_in
        new = torch.nn.Conv2d(old.in_channels + extra_in_channels, old.out_channels, old.kernel_size,
                              stride=old.stride, padding=old.padding)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, : old.in_channels] = old.weight
            new.bias.copy_(old.bias)
        unet.conv_in = new
        unet.register_to_config(in_channels=old.in_channels + extra_in_channels)
    return unet


def build_text_cond_unet(unet, null_embedding):
    """Wrap ``unet`` in the kit's network interface ``net(x, t, c, drop)``, where ``c`` is the
    prompts' token embeddings and ``drop`` swaps in the empty prompt's (``null_embedding``)."""
    import torch
    from torch import nn

    class TextCondUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet
            self.register_buffer("null_embedding", null_embedding.detach().clone())

        def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, drop: torch.Tensor | None = None):
            if drop is not None:
                c = torch.where(drop[:, None, None], self.null_embedding.to(c.dtype).expand_as(c), c)
            return self.unet(x, t, encoder_hidden_states=c).sample

    return TextCondUNet()


def folder_fingerprint(path: str) -> dict[str, Any]:
    """What identifies the weights at ``path`` without reading them: the number of files, their
    total size and a key over every file's name and size (recorded with the fit; the fit key
    holds the path, so replacing the weights there needs a new path)."""
    from cxrbench.hashing import content_key

    root = Path(path)
    files = {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}
    return {"count": len(files), "bytes": sum(files.values()), "key": content_key(files)}
