"""One interface for every measurement model y = A(x) (+ noise).

Operators are small ``nn.Module``s. Their random parts (matrices, masks, signs) are
buffers drawn from ``seed`` at construction, so ``state_dict`` plus the constructor
arguments (:meth:`ForwardOperator.spec`) rebuild exactly the same A.

Conventions
* Inputs ``x``: float tensors ``(N, *input_shape)`` (images in [0, 1], NCHW).
* ``forward(x)``: the noiseless measurement, batched, differentiable, on x's device/dtype.
* ``measure(x, eps)``: ``forward(x) + noise_std * eps`` where ``eps`` are standard normals
  of the measurement's shape supplied by the caller (so noise is derived per sample
  from (seed, index), see ``common.randomness``).
* ``measurement_error(x, y)``: per-sample mean squared error between ``forward(x)``
  and ``y``. For phase retrieval it is taken on magnitudes |A x|, not intensities.
"""
from __future__ import annotations

import torch
from torch import nn

from common.errors import UserInputError


class ForwardOperator(nn.Module):
    #: whether x ↦ A x is linear (adjoint available)
    is_linear: bool = False
    #: whether y = |A x| (phase retrieval)
    is_phase_retrieval: bool = False
    #: config name, e.g. "fourier_pr"
    name: str = "operator"

    def __init__(self, input_shape, noise_std: float = 0.0, seed: int = 0):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if noise_std < 0:
            raise UserInputError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.seed = int(seed)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def measure(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        y = self.forward(x)
        if self.noise_std > 0:
            if eps is None:
                raise ValueError("noise_std > 0 needs standard-normal eps of the measurement shape")
            y = y + self.noise_std * eps.to(y)
        return y

    def measurement_error(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.forward(x) - y).flatten(1).pow(2).mean(1)

    def check_measurements(self, y: torch.Tensor) -> None:
        """Raise ``UserInputError`` with one clear line if y cannot come from this operator."""
        if tuple(y.shape[1:]) != tuple(self.measurement_shape):
            raise UserInputError(
                f"measurements of shape {tuple(y.shape[1:])} do not fit operator {self.name} "
                f"(expects {tuple(self.measurement_shape)} per sample); check the operator config"
            )
        if not torch.isfinite(y).all():
            raise UserInputError("measurements contain NaN or Inf values; clean or re-acquire them")

    def spec(self) -> dict:
        """Constructor arguments that rebuild this operator (buffers come from state_dict)."""
        return {"name": self.name, "input_shape": list(self.input_shape), "noise_std": self.noise_std,
                "seed": self.seed}
