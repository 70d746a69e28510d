"""Feature networks for the fidelity metrics, each named by an ``identity`` recorded with every
number computed from it (numbers from different networks never share a column).

- ``domain``: the kit's reference classifier (a small CNN trained here, once per dataset and size,
  on the real training split; cached). Always available.
- ``xrv``: torchxrayvision's DenseNet-121 (``densenet121-res224-all``) when the package is
  installed and its weights are on disk; pooled 1,024-d features at 224 px.
- ``inception``: Inception-V3 as clean-fid computes it (``clean`` mode: PIL bicubic resize to
  299 px, 2,048-d) when its TorchScript weights are on disk.

Nothing is downloaded here: a missing package or weight file makes :func:`load_extractor` return
a ``skipped`` reason that says where to put the file, and the cell still succeeds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/" + INCEPTION_FILE
XRV_WEIGHTS = "densenet121-res224-all"
XRV_FILE = "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"


@dataclass
class Extractor:
    name: str
    identity: str
    #: uint8 (N, 1, H, W) tensor -> float32 (N, D) numpy array
    fn: Callable


def inception_candidates() -> list[Path]:
    """Where the Inception weights are looked for, in order (clean-fid's own cache is /tmp)."""
    env = os.environ.get("CXRBENCH_INCEPTION_WEIGHTS")
    paths = [Path(env)] if env else []
    return paths + [Path.home() / ".cache" / "cxrbench" / INCEPTION_FILE, Path("/tmp") / INCEPTION_FILE]


def xrv_weights_path() -> Path:
    return Path.home() / ".torchxrayvision" / "models_data" / XRV_FILE


def _batched(images, fn, batch: int):
    import numpy as np
    import torch

    with torch.no_grad():
        return np.concatenate([fn(images[i: i + batch]) for i in range(0, len(images), batch)]) if len(images) \
            else np.zeros((0, 0), np.float32)


def reference_classifier(train, *, cache_dir: Path, progress: bool | None, steps: int | None = None):
    """The kit's reference classifier, trained on ``train`` (or loaded from the cache): the
    ``domain`` features and the label-fidelity judge are this one network (and, with the same
    steps, `proxy-filter`'s proxy)."""
    from cxrbench.kit.reference import ReferenceClassifier, ReferenceOptions

    ref = ReferenceClassifier(ReferenceOptions(steps=steps) if steps else None)
    ref.fit(train, cache_dir=cache_dir, progress=progress, desc="quality: reference classifier")
    return ref


def domain_extractor(ref) -> Extractor:
    return Extractor("domain", ref.identity, lambda images: ref.features(images).numpy().astype("float32"))


def inception_extractor(device: str = "cpu") -> Extractor | str:
    """clean-fid's Inception features, or why not (a one-line reason)."""
    found = next((p for p in inception_candidates() if p.is_file()), None)
    if found is None:
        return (f"Inception weights not found, put {INCEPTION_FILE} ({INCEPTION_URL}) at "
                f"{inception_candidates()[0]} or set CXRBENCH_INCEPTION_WEIGHTS")
    import numpy as np
    import torch
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import make_resizer

    model = InceptionV3W(str(found.parent), download=False).to(device).eval()
    resize = make_resizer("PIL", False, "bicubic", (299, 299))  # clean-fid's "clean" mode

    def fn(images):
        rgb = [np.repeat(img[0].cpu().numpy()[:, :, None], 3, axis=2) for img in images]
        x = torch.from_numpy(np.stack([resize(im) for im in rgb])).permute(0, 3, 1, 2).float().to(device)
        return model(x).cpu().numpy().astype("float32")

    return Extractor("inception", f"clean-fid-inception-v3:{INCEPTION_FILE}", lambda im: _batched(im, fn, 32))


def xrv_extractor(device: str = "cpu") -> Extractor | str:
    """torchxrayvision DenseNet features, or why not (a one-line reason)."""
    try:
        import torchxrayvision as xrv
    except ImportError:
        return "torchxrayvision is not installed (pip install torchxrayvision, then put its weights on disk)"
    if not xrv_weights_path().is_file():
        return f"torchxrayvision weights not found, put {XRV_FILE} at {xrv_weights_path().parent}"
    import torch.nn.functional as F

    model = xrv.models.DenseNet(weights=XRV_WEIGHTS).to(device).eval()

    def fn(images):
        # xrv's input convention: one channel, 224 px, grey levels mapped to [-1024, 1024]
        x = images.float().to(device) / 255.0 * 2048.0 - 1024.0
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        return model.features2(x).cpu().numpy().astype("float32")

    return Extractor("xrv", f"torchxrayvision:{XRV_WEIGHTS}", lambda im: _batched(im, fn, 64))


def load_extractor(name: str, *, reference, device: str) -> Extractor | str:
    """The extractor called ``name``, or a one-line reason (recorded as ``{"skipped": reason}``)."""
    if name == "domain":
        return domain_extractor(reference)
    if name == "inception":
        return inception_extractor(device)
    if name == "xrv":
        return xrv_extractor(device)
    raise ValueError(f"unknown feature network {name!r}")
