"""The one image transform every datamodule applies: uint8 array → float32 (C, H, W) in [0, 1].

Steps, in order:

1. scale uint8 ``(H, W)`` or ``(H, W, C)`` to float in [0, 1], channels first; an alpha
   channel is dropped;
2. match ``channels``: grayscale → RGB replicates the plane, RGB → grayscale takes the
   ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B`` (what PIL's ``convert("L")`` uses);
3. center crop to ``crop_size`` × ``crop_size``, or to the largest centered square when
   ``crop_size`` is None (a no-op for square images);
4. resize to ``image_size`` × ``image_size`` with antialiased bilinear interpolation
   (no overshoot, so the result stays in [0, 1]); skipped when the size already matches.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import UserInputError

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def check_channels(channels) -> int:
    if isinstance(channels, bool) or channels not in (1, 3):
        raise UserInputError(f"channels={channels!r} is not supported; use data.channels=1 (grayscale) or 3 (RGB)")
    return int(channels)


def check_size(name: str, value, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserInputError(f"{name}={value!r} is invalid; data.{name} must be a positive integer (pixels)")
    return int(value)


class ImageTransform:
    """Callable ``uint8 ndarray → float32 tensor (channels, image_size, image_size)``."""

    def __init__(self, channels: int, image_size: int, crop_size: int | None = None):
        self.channels = check_channels(channels)
        self.image_size = check_size("image_size", image_size)
        self.crop_size = check_size("crop_size", crop_size, optional=True)

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        array = np.asarray(array)
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 (H, W) or (H, W, C) image, got {array.dtype} {array.shape}")
        x = torch.tensor(array)  # a copy: sources may be read-only or shared between workers
        x = (x[None] if x.ndim == 2 else x.permute(2, 0, 1)).float().div_(255.0)
        x = self.match_channels(x)
        x = self.center_crop(x)
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x[None], size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)[0]
            x = x.clamp_(0.0, 1.0)
        return x.contiguous()

    def match_channels(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] in (2, 4):  # gray + alpha, RGB + alpha
            x = x[:-1]
        if x.shape[0] == self.channels:
            return x
        if self.channels == 3:
            return x.expand(3, -1, -1)
        return torch.einsum("c,chw->hw", _LUMA, x)[None]

    def center_crop(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        size = self.crop_size or min(h, w)
        if size > min(h, w):
            raise UserInputError(
                f"crop_size={size} is larger than a {h}x{w} image; set data.crop_size to at most {min(h, w)}"
            )
        top, left = (h - size) // 2, (w - size) // 2
        return x[:, top : top + size, left : left + size]

    def __repr__(self) -> str:
        return f"ImageTransform(channels={self.channels}, image_size={self.image_size}, crop_size={self.crop_size})"
