"""Built-in segmenters: U-Nets with one input channel and ``num_classes`` per-pixel logit maps.

* ``unet-resnet18`` / ``unet-resnet34``: ``segmentation_models_pytorch.Unet(encoder_name=
  "resnet18" | "resnet34", encoder_weights=None, in_channels=1, classes=num_classes)``.
* ``tiny-unet``: a two-level U-Net in plain torch (about 7,400 parameters at ``width`` 4) that
  trains in seconds on a CPU. For tests.

Any input size works: smp's U-Net needs a multiple of its encoder's output stride (32), so the
input is padded (edge pixels repeated, about half on each side) to the next multiple and the
logits cropped back; the tiny U-Net does the same to a multiple of 4. The output always has the
input's size.

Pretrained weights are loaded **only from local files** (nothing is ever downloaded; smp's own
``encoder_weights="imagenet"`` would download, so it is never used):

1. ``options.weights_path``: a ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` file holding either a
   whole U-Net of this encoder (smp ``Unet`` keys ``encoder.*``, ``decoder.*``,
   ``segmentation_head.*``; a head for another class count is re-initialised) or an ImageNet
   encoder (torchvision / smp ``resnet`` keys ``conv1.*``, ``layer1.*``...; ``fc.*`` is dropped);
   a 3-channel first convolution is summed to one channel, as smp and timm do;
2. else smp's ImageNet encoder weights where smp itself would have put them: the Hugging Face hub
   cache (``smp-hub/<encoder>.imagenet``, ``model.safetensors``; smp >= 0.5) or the torch hub
   cache (``$TORCH_HOME/hub/checkpoints``; older smp). Fetch them once where there is network
   (``python -c "import segmentation_models_pytorch as smp; smp.Unet('resnet18')"``) and copy
   the cache.

When none is there, ``build(..., pretrained=True)`` raises a one-line ConfigError listing what
it looked for. :attr:`BuiltSegmenter.weights` says what was loaded: ``"scratch"``,
``"encoder:<source>"`` (encoder weights; decoder and head random) or ``"model:<source>"`` (the
whole network), ``<source>`` being ``file:PATH``, ``hf-cache:REPO:PATH`` or
``torch-hub-cache:PATH``.

The module takes float (N, 1, H, W) in [-1, 1] (the classifier's input: uint8 mapped as
``x / 127.5 - 1``) and returns (N, num_classes, H, W) logits, one independent channel per mask
class. torch and smp are imported lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cxrbench.contracts import BuiltSegmenter, Segmenter
from cxrbench.errors import ConfigError, PluginError
# the classifiers' torch hub cache lookup serves the encoders' ImageNet files too (no download)
from cxrbench.plugins.classifiers.timm_models import _torch_hub_cached_file

_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass
class UnetOptions:
    """Options of the smp U-Nets.

    :param weights_path: a local checkpoint used when pretrained weights are requested: a whole
        smp U-Net of this encoder, or an ImageNet encoder (torchvision / smp resnet keys); the
        3-channel first convolution is summed to one channel. Unset: smp's ImageNet encoder
        weights from the Hugging Face / torch hub cache, if there.
    """

    weights_path: str | None = None


@dataclass
class TinyUnetOptions:
    """Options of the tiny test U-Net.

    :param width: channels of the first level (doubled at each of the two levels below it).
    :param weights_path: a local checkpoint of a tiny-unet of this width (its state dict), used
        when pretrained weights are requested; tiny-unet has no published weights.
    """

    width: int = 4
    weights_path: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.width, bool) or not isinstance(self.width, int) or not 1 <= self.width <= 64:
            raise ConfigError(f"segmenter option width={self.width!r}: must be an integer from 1 to 64")


class _LocalWeights:
    """Shared: the size check and the one-line errors of ``build``."""

    name: ClassVar[str]

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        if int(size) < 1:
            raise ConfigError(f"segmenter {cls.name!r}: size must be >= 1 px, got {size}")

    def _check_build(self, num_classes: int, size: int) -> None:
        if isinstance(num_classes, bool) or int(num_classes) < 1:
            raise ConfigError(f"segmenter {self.name!r}: num_classes must be >= 1, got {num_classes}")
        self.check_options(self.options, size)

    def _given_path(self) -> Path | None:
        if not self.options.weights_path:
            return None
        path = Path(self.options.weights_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"segmenter {self.name!r}: weights_path {str(path)!r} does not exist (give a local "
                              f"{'/'.join(_WEIGHT_SUFFIXES)} checkpoint, or leave weights_path unset)")
        return path


class SmpUnet(_LocalWeights, Segmenter):
    """Shared base: ``segmentation_models_pytorch.Unet`` with the encoder :attr:`encoder`."""

    encoder: ClassVar[str]
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = UnetOptions

    def build(self, num_classes: int, size: int, pretrained: bool = False) -> BuiltSegmenter:
        self._check_build(num_classes, size)
        from cxrbench.plugins.segmenters._nets import padded_unet

        module = padded_unet(self.encoder, int(num_classes))
        if not pretrained:
            return BuiltSegmenter(module=module, weights="scratch")
        path, source, looked_for = self.find_local_weights()
        if path is None:
            raise ConfigError(
                f"segmenter {self.name!r}: pretrained weights requested but none found locally (nothing is downloaded "
                f"at run time): {'; '.join(looked_for)}; set options.weights_path to a local checkpoint, or "
                "pretrained: false")
        what, note = load_unet_weights(module, path)
        return BuiltSegmenter(module=module, weights=f"{what}:{source}{note}")

    # ------------------------------------------------------------------ weights
    def find_local_weights(self) -> tuple[Path | None, str, list[str]]:
        """(path, source description, what was looked for). Never touches the network."""
        path = self._given_path()
        if path is not None:
            return path, f"file:{path}", []
        looked_for = ["options.weights_path unset"]
        settings = _smp_imagenet_settings(self.encoder)
        repo_id = settings.get("repo_id")
        if repo_id:
            found = _hf_cached_file(repo_id, settings.get("revision"), looked_for)
            if found is not None:
                return found, f"hf-cache:{repo_id}:{found}", looked_for
        url = settings.get("url")
        if url:
            found = _torch_hub_cached_file(url, looked_for)
            if found is not None:
                return found, f"torch-hub-cache:{found}", looked_for
        if not repo_id and not url:
            looked_for.append(f"smp knows no ImageNet weights for encoder {self.encoder!r}")
        return None, "", looked_for


def _smp_imagenet_settings(encoder: str) -> dict:
    from segmentation_models_pytorch.encoders import encoders

    return dict((encoders.get(encoder, {}).get("pretrained_settings") or {}).get("imagenet") or {})


def _hf_cached_file(repo_id: str, revision: str | None, looked_for: list[str]) -> Path | None:
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with smp and timm
        looked_for.append(f"{repo_id} (huggingface_hub not installed)")
        return None
    for rev in dict.fromkeys((revision, None)):  # the revision smp pins, then whatever is cached
        found = try_to_load_from_cache(repo_id, "model.safetensors", revision=rev)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    looked_for.append(f"{repo_id} model.safetensors in the Hugging Face hub cache {constants.HF_HUB_CACHE}")
    return None


def read_state_dict(path: str | Path) -> dict:
    """A checkpoint's tensors (safetensors, or a torch file loaded with ``weights_only``), with
    ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and ``module.`` prefixes removed."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - rewrap with the file named
        raise PluginError(f"cannot read segmenter weights {str(path)!r}: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict) and len(state) <= 3:
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PluginError(f"segmenter weights {str(path)!r}: expected a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _one_channel(weight):
    """A first-convolution weight for one input channel (RGB kernels summed, as smp/timm do)."""
    return weight.sum(dim=1, keepdim=True) if weight.ndim == 4 and weight.shape[1] != 1 else weight


def _strict_load(module, state: dict, path: Path, what: str) -> None:
    own = module.state_dict()
    bad_shape = [k for k in state if k in own and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if bad_shape or missing or unexpected:
        detail = []
        for label, keys in (("shape mismatch for", bad_shape), ("missing", missing), ("unexpected", unexpected)):
            if keys:
                detail.append(f"{label} {keys[:5]}{' ...' if len(keys) > 5 else ''}")
        raise PluginError(f"segmenter weights {str(path)!r} do not fit {what}: " + "; ".join(detail))
    module.load_state_dict(state)


def load_unet_weights(model, path: str | Path) -> tuple[str, str]:
    """Load a local checkpoint into an smp U-Net. Returns (what, note): what is ``"model"`` when
    it held the whole network, ``"encoder"`` when it held the ImageNet encoder only (see the
    module docstring); note is ``" (segmentation head re-initialised)"`` when the checkpoint's
    head was for another class count, else empty."""
    path = Path(path)
    state = read_state_dict(path)
    arch = f"an smp Unet with encoder {type(model.encoder).__name__}"
    if any(k.startswith(("encoder.", "decoder.", "segmentation_head.")) for k in state):
        if "encoder.conv1.weight" in state:
            state["encoder.conv1.weight"] = _one_channel(state["encoder.conv1.weight"])
        own = model.state_dict()
        head = [k for k in own if k.startswith("segmentation_head.")]
        note = ""
        if any(k in state and state[k].shape != own[k].shape for k in head):
            for k in head:  # another class count: keep this network's fresh head
                state[k] = own[k]
            note = " (segmentation head re-initialised)"
        _strict_load(model, state, path, arch)
        return "model", note
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if "conv1.weight" in state:
        state["conv1.weight"] = _one_channel(state["conv1.weight"])
    _strict_load(model.encoder, state, path, f"the encoder of {arch}")
    return "encoder", ""


class UnetResNet18(SmpUnet):
    """smp U-Net with a ResNet-18 encoder (14.3 M parameters), one input channel."""

    name: ClassVar[str] = "unet-resnet18"
    encoder: ClassVar[str] = "resnet18"


class UnetResNet34(SmpUnet):
    """smp U-Net with a ResNet-34 encoder (24.4 M parameters), one input channel."""

    name: ClassVar[str] = "unet-resnet34"
    encoder: ClassVar[str] = "resnet34"


class TinyUnet(_LocalWeights, Segmenter):
    """A two-level U-Net in plain torch (about 7,400 parameters at width 4): trains in seconds at
    32-64 px on a CPU. For tests."""

    name: ClassVar[str] = "tiny-unet"
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = TinyUnetOptions

    def build(self, num_classes: int, size: int, pretrained: bool = False) -> BuiltSegmenter:
        self._check_build(num_classes, size)
        from cxrbench.plugins.segmenters._nets import TinyUNet

        module = TinyUNet(int(num_classes), width=self.options.width)
        if not pretrained:
            return BuiltSegmenter(module=module, weights="scratch")
        path = self._given_path()
        if path is None:
            raise ConfigError(f"segmenter {self.name!r}: pretrained weights requested but tiny-unet has no published "
                              "weights and options.weights_path is unset; give a local checkpoint of a tiny-unet, "
                              "or pretrained: false")
        _strict_load(module, read_state_dict(path), path, f"tiny-unet width {self.options.width}")
        return BuiltSegmenter(module=module, weights=f"model:file:{path}")
