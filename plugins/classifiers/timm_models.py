"""Built-in classifiers: timm architectures with one input channel and ``num_labels`` logits.

Every class here is a few lines over :class:`TimmClassifier`, which

* builds ``timm.create_model(arch, in_chans=1, num_classes=num_labels, pretrained=False)``;
* when ImageNet weights are requested, loads them **only from local files** (nothing is ever
  downloaded): first ``options.weights_path`` (a ``.safetensors`` / ``.pth`` / ``.bin`` file), then
  the Hugging Face hub cache (``$HF_HUB_CACHE``, the place timm >= 0.9 downloads to), then the torch
  hub cache (``$TORCH_HOME/hub/checkpoints``, where older timm versions downloaded to);
* adapts the 3-channel first convolution to one channel the way timm does
  (:func:`timm.models.adapt_input_conv`: the RGB kernels are summed) and drops the 1000-class head;
* falls back to random initialisation when no local weights are found, and says so in
  :attr:`BuiltClassifier.weights` (``"scratch (pretrained requested but ...)"``), so a result record
  always tells which initialisation was actually used.

The module takes float (N, 1, H, W) in [-1, 1] (the harness maps uint8 images as
:func:`cxrbench.kit.to_model_range` does: ``x / 127.5 - 1``) and returns (N, num_labels)
logits. timm / torch are imported lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cxrbench.contracts import BuiltClassifier, Classifier
from cxrbench.errors import ConfigError, PluginError

_HF_FILENAMES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class TimmOptions:
    """Options of every timm classifier.

    :param drop_rate: dropout before the classifier head (timm ``drop_rate``).
    :param drop_path_rate: stochastic depth (timm ``drop_path_rate``; ignored by archs without it).
    :param weights_path: a local ImageNet checkpoint (``.safetensors``, ``.pth``, ``.bin``) of this
        architecture, used when pretrained weights are requested. 3-channel weights are adapted.
    :param pretrained_tag: timm pretrained tag to look for in the local caches (e.g. ``tv_in1k`` for
        the torchvision weights of resnet50); None: timm's default tag for the architecture.
    """

    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    weights_path: str | None = None
    pretrained_tag: str | None = None

    def __post_init__(self) -> None:
        for key in ("drop_rate", "drop_path_rate"):
            value = float(getattr(self, key))
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"classifier option {key}={value}: must be in [0, 1)")
            setattr(self, key, value)


class TimmClassifier(Classifier):
    """Shared base: a timm architecture named by :attr:`arch`."""

    arch: ClassVar[str]
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = TimmOptions

    # ------------------------------------------------------------------ build
    def create(self, num_labels: int):
        """The randomly initialised one-channel timm model."""
        import timm

        kwargs: dict[str, Any] = {"drop_rate": self.options.drop_rate}
        if self.options.drop_path_rate:
            kwargs["drop_path_rate"] = self.options.drop_path_rate
        return timm.create_model(
            self.arch, pretrained=False, in_chans=1, num_classes=int(num_labels), **kwargs
        )

    #: smallest input these networks take: five stride-2 stages leave a 1x1 map at 16 px
    MIN_INPUT_SIZE: ClassVar[int] = 16

    @classmethod
    def check_options(cls, options: Any, size: int) -> None:
        if int(size) < cls.MIN_INPUT_SIZE:
            raise ConfigError(f"classifier {cls.name!r}: needs images of at least {cls.MIN_INPUT_SIZE} px, "
                              f"the spec asks for {size} (raise size:)")

    def build(self, num_labels: int, input_size: int, pretrained: bool) -> BuiltClassifier:
        if int(num_labels) < 1:
            raise ConfigError(f"classifier {self.name!r}: num_labels must be >= 1, got {num_labels}")
        self.check_options(self.options, input_size)
        model = self.create(num_labels)
        if not pretrained:
            return BuiltClassifier(module=model, weights="scratch")
        path, source, looked_for = self.find_local_weights()
        if path is None:
            return BuiltClassifier(
                module=model,
                weights="scratch (pretrained requested but no local ImageNet weights found: "
                + "; ".join(looked_for) + ")",
            )
        load_local_weights(model, path)
        return BuiltClassifier(module=model, weights=f"imagenet:{source}")

    # ------------------------------------------------------------------ weights
    def _pretrained_cfg(self) -> dict:
        import timm

        name = self.arch if not self.options.pretrained_tag else f"{self.arch}.{self.options.pretrained_tag}"
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None:
            if self.options.pretrained_tag:
                raise ConfigError(
                    f"classifier {self.name!r}: timm has no pretrained tag {self.options.pretrained_tag!r} "
                    f"for {self.arch!r}; known: {timm.list_pretrained(self.arch + '.*')}"
                )
            return {}
        return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)

    def find_local_weights(self) -> tuple[Path | None, str, list[str]]:
        """(path, source description, what was looked for). Never touches the network."""
        looked_for: list[str] = []
        if self.options.weights_path:
            path = Path(self.options.weights_path).expanduser()
            if not path.is_file():
                # an explicit path that does not exist is a configuration error, not a silent fallback
                raise ConfigError(
                    f"classifier {self.name!r}: weights_path {str(path)!r} does not exist "
                    "(give a local .safetensors/.pth checkpoint, or leave weights_path unset)"
                )
            return path, f"file:{path}", looked_for
        looked_for.append("options.weights_path unset")
        cfg = self._pretrained_cfg()
        hub_id = cfg.get("hf_hub_id")
        if hub_id:
            path = _hf_cached_file(hub_id, cfg.get("hf_hub_filename"), looked_for)
            if path is not None:
                return path, f"hf-cache:{hub_id}:{path}", looked_for
        url = cfg.get("url")
        if url:
            path = _torch_hub_cached_file(url, looked_for)
            if path is not None:
                return path, f"torch-hub-cache:{path}", looked_for
        if not hub_id and not url:
            looked_for.append(f"timm knows no pretrained weights for {self.arch!r}")
        return None, "", looked_for


def _hf_cached_file(hub_id: str, filename: str | None, looked_for: list[str]) -> Path | None:
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm
        looked_for.append("Hugging Face hub cache (huggingface_hub not installed)")
        return None
    repo_id, _, revision = hub_id.partition("@")
    names = (filename,) if filename else _HF_FILENAMES
    for name in names:
        found = try_to_load_from_cache(repo_id, name, revision=revision or None)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    looked_for.append(f"{repo_id} {'|'.join(names)} in the Hugging Face hub cache {constants.HF_HUB_CACHE}")
    return None


def _torch_hub_cached_file(url: str, looked_for: list[str]) -> Path | None:
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
    if path.is_file():
        return path
    looked_for.append(str(path))
    return None


def load_local_weights(model, path: str | Path) -> None:
    """Load an ImageNet checkpoint of ``model``'s architecture from a local file into ``model``.

    The first convolution(s) named by the model's ``pretrained_cfg['first_conv']`` are adapted
    from 3 channels with :func:`timm.models.adapt_input_conv` (summing RGB); the classifier head
    is dropped when its shape differs. Any other missing or mismatching key is an error naming
    the file: a checkpoint of another architecture must not load silently.
    """
    import timm
    from timm.models import adapt_input_conv

    path = Path(path)
    try:
        state = timm.models.load_state_dict(str(path))
    except Exception as exc:  # noqa: BLE001 - rewrap with the file named
        raise PluginError(f"cannot read classifier weights {str(path)!r}: {exc}") from exc
    state = _maybe_filter(model, state)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    own = model.state_dict()

    first = cfg.get("first_conv") or ()
    for conv_name in (first,) if isinstance(first, str) else first:
        key = conv_name + ".weight"
        if key in state and key in own and state[key].shape != own[key].shape:
            in_chans = own[key].shape[1]
            state[key] = adapt_input_conv(in_chans, state[key])

    heads = cfg.get("classifier") or ()
    head_keys = set()
    for head in (heads,) if isinstance(heads, str) else heads:
        for suffix in (".weight", ".bias"):
            head_keys.add(head + suffix)
            if head + suffix in state and (
                head + suffix not in own or state[head + suffix].shape != own[head + suffix].shape
            ):
                del state[head + suffix]

    bad_shape = [k for k in state if k in own and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state and k not in head_keys]
    unexpected = [k for k in state if k not in own]
    if bad_shape or missing or unexpected:
        arch = cfg.get("architecture", type(model).__name__)
        detail = []
        if bad_shape:
            detail.append(f"shape mismatch for {bad_shape[:5]}")
        if missing:
            detail.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            detail.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        raise PluginError(
            f"classifier weights {str(path)!r} do not fit timm {arch!r}: " + "; ".join(detail)
        )
    model.load_state_dict(state, strict=False)


def _maybe_filter(model, state: dict) -> dict:
    """Apply the architecture's timm checkpoint filter when the keys are not timm's own
    (e.g. original torchvision DenseNet or Facebook ConvNeXt checkpoints)."""
    import sys

    own = model.state_dict()
    if all(k in own for k in state):
        return state
    module = sys.modules.get(type(model).__module__)
    for fn_name in ("checkpoint_filter_fn", "_filter_torchvision_pretrained"):
        fn = getattr(module, fn_name, None)
        if fn is None:
            continue
        try:
            try:
                filtered = fn(dict(state), model)
            except TypeError:
                filtered = fn(dict(state))
        except Exception:  # noqa: BLE001 - the strict check in the caller reports the problem
            continue
        if all(k in own for k in filtered):
            return filtered
    return state


# ---------------------------------------------------------------------- the architectures


def _architecture(class_name: str, arch: str, name: str, doc: str, min_input_size: int | None = None) -> type:
    """A :class:`TimmClassifier` subclass for the timm architecture ``arch``, registered as
    ``name``. ``min_input_size`` where the architecture's downsampling needs more than the
    base class's minimum."""
    attrs: dict = {"__doc__": doc, "__module__": __name__, "name": name, "arch": arch}
    if min_input_size is not None:
        attrs["MIN_INPUT_SIZE"] = min_input_size
    return type(class_name, (TimmClassifier,), attrs)


# the registry refers to these by class name (cxrbench.plugins.BUILTINS)
ResNet50 = _architecture("ResNet50", "resnet50", "resnet50", "timm resnet50 (the Nano Banana study's classifier).")
# a stride-4 stem and three stride-2 downsamplings: below 32 px the last one has no input left
ConvNeXtBase = _architecture("ConvNeXtBase", "convnext_base", "convnext_base", "timm convnext_base (Khosravi et al.).",
                             min_input_size=32)
# a stride-4 stem and three pooling transitions: below 32 px the last one has no input left
DenseNet121 = _architecture("DenseNet121", "densenet121", "densenet121", "timm densenet121 (CheXNet).", min_input_size=32)
ResNet18 = _architecture("ResNet18", "resnet18", "resnet18", "timm resnet18: a CPU-feasible baseline.")
TinyCNN = _architecture("TinyCNN", "test_resnet", "tiny-cnn",
                        "timm ``test_resnet`` (0.37 M parameters): trains in seconds at 32-64 px on a CPU. For tests.")
