"""Denoising: y = x + σ ε, the identity operator with noise_std = σ."""
from __future__ import annotations

import torch

from operators.base import LinearOperator


class Denoising(LinearOperator):
    name = "denoising"

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y
