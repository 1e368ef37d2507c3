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
* Mixed precision: ``forward``, ``measure``, ``measurement_error``, ``linear`` and ``adjoint`` of
  every operator run in float32 with autocast off (half-precision inputs are cast up), so FFTs,
  complex products and measurement losses keep full precision inside ``bf16-mixed`` runs.

Two families extend the base: :class:`LinearOperator` (y = A x, with ``adjoint``) and
:class:`PhaseRetrievalOperator` (y = |A x|, with the linear part ``linear`` and its
``adjoint``; magnitudes stay non-negative under noise).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from common.errors import UserInputError
from common.precision import float32_method
from common.randomness import sample_seed


#: operator methods that always run in float32 with autocast off (:func:`common.precision.float32_method`)
FLOAT32_METHODS = ("forward", "measure", "measurement_error", "linear", "adjoint")


class ForwardOperator(nn.Module):
    #: whether x ↦ A x is linear (adjoint available)
    is_linear: bool = False
    #: whether y = |A x| (phase retrieval)
    is_phase_retrieval: bool = False
    #: whether the entries of y are separate random measurements of x (operators.subset may hold some out)
    independent_measurements: bool = False
    #: config name, e.g. "fourier_pr"
    name: str = "operator"

    def __init__(self, input_shape, noise_std: float = 0.0, seed: int = 0):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) == 0 or any(s <= 0 for s in self.input_shape):
            raise UserInputError(f"input_shape must be positive sizes like [C, H, W], got {list(self.input_shape)}")
        if not math.isfinite(noise_std) or noise_std < 0:
            raise UserInputError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.seed = int(seed)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in FLOAT32_METHODS:
            method = getattr(cls, name, None)  # through the MRO: mixins' methods too
            if callable(method) and not getattr(method, "float32", False):
                setattr(cls, name, float32_method(method))

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @float32_method
    def measure(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x)
        y = self.forward(x)
        if self.noise_std > 0:
            if eps is None:
                raise ValueError("noise_std > 0 needs standard-normal eps of the measurement shape")
            y = y + self.noise_std * eps.to(y)
        return y

    @float32_method
    def measurement_error(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # sum / count rather than mean: the same value, and its backward is an expand instead of a
        # full-size division (a PRILO step at layer 2 measured ~7% faster)
        residual = (self.forward(x) - y).flatten(1)
        return residual.pow(2).sum(1) / residual.shape[1]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"operator {self.name} has no adjoint")

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``UserInputError`` with one clear line if x is not a batch of inputs."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise UserInputError(
                f"inputs of shape {tuple(x.shape[1:])} do not fit operator {self.name} "
                f"(expects {self.input_shape} per sample); check operator.input_shape against the data"
            )

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

    @classmethod
    def from_spec(cls, spec: dict, state_dict: dict | None = None) -> "ForwardOperator":
        """Rebuild from :meth:`spec` (its ``name`` is ignored here) and optionally a state_dict."""
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        try:
            op = cls(**kwargs)
        except TypeError as err:
            raise UserInputError(f"bad arguments for operator {cls.name}: {err}; check the operator config") from None
        if state_dict is not None:
            try:
                op.load_state_dict(state_dict)
            except RuntimeError as err:
                detail = " ".join(str(err).split())
                raise UserInputError(
                    f"saved parameters do not fit operator {cls.name} {op.spec()}: {detail}"
                ) from None
        return op

    # -- helpers for subclasses -----------------------------------------------------------
    def generator(self) -> torch.Generator:
        """CPU generator for this operator's random buffers, from (seed, operator name)."""
        g = torch.Generator()
        g.manual_seed(sample_seed(self.seed, f"operator.{self.name}", 0))
        return g

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)


def buffer_like(buffer: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``buffer`` on x's device in x's precision (complex buffers stay complex)."""
    dtype = torch.promote_types(x.dtype, torch.complex64) if buffer.is_complex() else x.dtype
    if not buffer.is_floating_point() and not buffer.is_complex():
        dtype = buffer.dtype
    return buffer.to(device=x.device, dtype=dtype)


class LinearOperator(ForwardOperator):
    """y = A x (+ σ ε). ``adjoint`` is Aᵀ; the default derives it from autograd."""

    is_linear = True

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        x0 = torch.zeros((y.shape[0], *self.input_shape), device=y.device, dtype=y.dtype)
        _, vjp = torch.func.vjp(self.forward, x0)
        return vjp(y)[0]


class PhaseRetrievalOperator(ForwardOperator):
    """y = |A x| with a complex (or real) linear part A.

    Noise model: ``measure`` returns ``max(|A x| + σ ε, 0)``: measured magnitudes are
    clamped at zero so they stay valid magnitudes.
    """

    is_phase_retrieval = True

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """A x (complex, or real for real A)."""
        raise NotImplementedError

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        """Adjoint of the linear part for real inputs: Re(Aᴴ z), shaped like x."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).abs()

    def measure(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        return super().measure(x, eps).clamp_min(0)

    def check_measurements(self, y: torch.Tensor) -> None:
        super().check_measurements(y)
        if (y < 0).any():
            raise UserInputError(
                f"phase-retrieval measurements must be magnitudes >= 0, found {int((y < 0).sum())} negative "
                "values; pass |A x| (not A x or intensities with an offset)"
            )
