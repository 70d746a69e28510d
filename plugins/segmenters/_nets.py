"""The torch side of the built-in segmenters (imported only by ``build``, never when listing or
validating): size-preserving padding, the smp U-Net wrapper and the tiny test U-Net."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad (N, C, H, W) on all sides (edge values repeated, about half on each side) so H and W
    are multiples of ``multiple``; returns the padded tensor and the ``(top, left, H, W)`` to
    crop back with :func:`crop_back`."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    top, left = ph // 2, pw // 2
    if ph or pw:
        x = F.pad(x, (left, pw - left, top, ph - top), mode="replicate")
    return x, (top, left, h, w)


def crop_back(y: torch.Tensor, where: tuple[int, int, int, int]) -> torch.Tensor:
    top, left, h, w = where
    if y.shape[-2] == h and y.shape[-1] == w:
        return y
    return y[..., top: top + h, left: left + w]


def padded_unet(encoder: str, num_classes: int) -> nn.Module:
    """``segmentation_models_pytorch.Unet`` (random weights, one input channel) that takes any
    input size: inputs are padded to a multiple of the encoder's output stride (32) and the
    logits cropped back, so the output always has the input's size. Its state dict is smp's own
    (no wrapper prefix), so smp checkpoints load as they are."""
    return _padded_unet_class()(encoder_name=encoder, encoder_weights=None, in_channels=1, classes=int(num_classes))


_PADDED = None


def _padded_unet_class() -> type:
    global _PADDED
    if _PADDED is None:
        import segmentation_models_pytorch as smp

        class PaddedUnet(smp.Unet):
            """smp ``Unet`` taking any input size (pad to the output stride, crop the logits)."""

            def forward(self, x):  # noqa: D102
                stride = int(getattr(self.encoder, "output_stride", 32))
                x, where = pad_to_multiple(x, stride)
                return crop_back(super().forward(x), where)

        PaddedUnet.__module__ = __name__
        PaddedUnet.__qualname__ = "PaddedUnet"
        _PADDED = PaddedUnet
    return _PADDED


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """A two-level U-Net in plain torch: (conv-ReLU x 2) per level, max-pool down, transposed
    convolution up, skip connections, a 1x1 head. ``width`` 4 gives about 7,400 parameters.
    Inputs of any size are padded to a multiple of 4 and the logits cropped back."""

    multiple = 4

    def __init__(self, num_classes: int, width: int = 4):
        super().__init__()
        w = int(width)
        self.enc1, self.enc2, self.mid = _block(1, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2), _block(4 * w, 2 * w)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2), _block(2 * w, w)
        self.head = nn.Conv2d(w, int(num_classes), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x, where = pad_to_multiple(x, self.multiple)
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return crop_back(self.head(d1), where)
