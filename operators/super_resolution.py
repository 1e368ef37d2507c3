"""Super-resolution: y = D x, downsampling by an integer factor."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import UserInputError
from operators.base import LinearOperator

MODES = ("bicubic", "avgpool")


class SuperResolution(LinearOperator):
    """y = D x with D: (C, H, W) → (C, H/f, W/f).

    ``mode = "bicubic"``: antialiased bicubic downsampling (as ILO; ``F.interpolate`` with
    ``antialias=True``); ``mode = "avgpool"``: mean over f × f blocks. Both are linear; the
    adjoint comes from autograd.
    """

    name = "super_resolution"

    def __init__(self, input_shape, factor: int = 4, mode: str = "bicubic", noise_std: float = 0.0, seed: int = 0):
        super().__init__(input_shape, noise_std, seed)
        if len(self.input_shape) != 3:
            raise UserInputError(f"super_resolution needs input_shape [C, H, W], got {list(self.input_shape)}")
        if isinstance(factor, bool) or float(factor) != int(factor) or int(factor) < 1:
            raise UserInputError(f"factor must be a positive integer, got {factor}")
        factor = int(factor)
        _, h, w = self.input_shape
        if h % factor or w % factor:
            raise UserInputError(f"downsampling factor {factor} does not divide the image size {h}x{w}; pick a divisor")
        if mode not in MODES:
            raise UserInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.factor, self.mode = factor, mode

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        c, h, w = self.input_shape
        return (c, h // self.factor, w // self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "avgpool":
            return F.avg_pool2d(x, self.factor)
        return F.interpolate(x, size=self.measurement_shape[1:], mode="bicubic", align_corners=False, antialias=True)

    def spec(self) -> dict:
        return {**super().spec(), "factor": self.factor, "mode": self.mode}
