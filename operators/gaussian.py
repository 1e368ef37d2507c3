"""Dense Gaussian measurement matrices: phase retrieval (real, complex) and compressed sensing.

Images are flattened to x ∈ ℝⁿ, n = C·H·W, and measured by one m × n matrix A.
"""
from __future__ import annotations

import math

import torch

from common.errors import UserInputError
from operators.base import LinearOperator, PhaseRetrievalOperator, buffer_like


def resolve_measurement_count(m, ratio, n: int) -> int:
    """The number of measurements: ``m`` (a count) when given, else ``round(ratio * n)``."""
    if m is None and ratio is None:
        raise UserInputError(f"give m (number of measurements) or ratio (m / n, n = {n}); both are null")
    if m is not None:
        if isinstance(m, bool) or float(m) != int(m) or int(m) <= 0:
            raise UserInputError(f"m must be a positive integer number of measurements, got {m}")
        return int(m)
    ratio = float(ratio)
    if not math.isfinite(ratio) or ratio <= 0:
        raise UserInputError(f"ratio must be a finite number > 0 (m = ratio * n), got {ratio}")
    count = round(ratio * n)
    if count < 1:
        raise UserInputError(f"ratio {ratio} gives no measurement for n = {n}; use a larger ratio or set m")
    return count


class _GaussianMatrix:
    """Mixin: an m × n Gaussian matrix. Real: buffer ``A`` with entries N(0, 1/m); complex:
    real buffers ``A_real``, ``A_imag`` with entries N(0, 1/(2m)) each (kept real so that
    ``module.to(dtype)`` cannot drop the imaginary part)."""

    complex_entries = False
    independent_measurements = True  # rows of A are i.i.d.: a held-out row is a measurement the others lack

    def _init_matrix(self, m, ratio) -> None:
        self.m_given, self.ratio_given = m, (None if m is not None else ratio)  # m wins over ratio
        self.m = resolve_measurement_count(m, ratio, self.input_size)
        g = self.generator()
        if self.complex_entries:
            std = 1.0 / math.sqrt(2 * self.m)
            self.register_buffer("A_real", torch.randn(self.m, self.input_size, generator=g) * std)
            self.register_buffer("A_imag", torch.randn(self.m, self.input_size, generator=g) * std)
        else:
            self.register_buffer("A", torch.randn(self.m, self.input_size, generator=g) / math.sqrt(self.m))

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.m,)

    @property
    def matrix(self) -> torch.Tensor:
        """A as one (m, n) tensor, complex for complex operators (a copy; for small problems)."""
        return torch.complex(self.A_real, self.A_imag) if self.complex_entries else self.A

    def squared_norm(self) -> torch.Tensor:
        """‖A‖_F²."""
        if self.complex_entries:
            return self.A_real.pow(2).sum() + self.A_imag.pow(2).sum()
        return self.A.pow(2).sum()

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.complex_entries:
            return torch.complex(x @ buffer_like(self.A_real, x).T, x @ buffer_like(self.A_imag, x).T)
        return x @ buffer_like(self.A, x).T

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        """Re(Aᴴ z) = Re(A)ᵀ Re(z) + Im(A)ᵀ Im(z), shaped like x."""
        re = z.real
        if self.complex_entries:
            out = re @ buffer_like(self.A_real, re)
            if z.is_complex():
                out = out + z.imag @ buffer_like(self.A_imag, re)
        else:
            out = re @ buffer_like(self.A, re)
        return out.reshape(z.shape[0], *self.input_shape)

    def spec(self) -> dict:
        return {**super().spec(), "m": self.m_given, "ratio": self.ratio_given}


class GaussianPhaseRetrieval(_GaussianMatrix, PhaseRetrievalOperator):
    """y = |A x|, A real with entries N(0, 1/m) (PRILO eq. 11, DPR)."""

    name = "gaussian_pr"

    def __init__(self, input_shape, m: int | None = None, ratio: float | None = None, noise_std: float = 0.0,
                 seed: int = 0):
        PhaseRetrievalOperator.__init__(self, input_shape, noise_std, seed)
        self._init_matrix(m, ratio)


class GaussianPhaseRetrievalBank(GaussianPhaseRetrieval):
    """``instances`` = I independent real Gaussian phase-retrieval operators in one, so that I random
    instances (DPR figure 2) are solved in one batch: batch row b is measured by A_{b mod I}, where A_i
    is the matrix of ``GaussianPhaseRetrieval(seed=seed + i)`` (batches must be multiples of I)."""

    name = "gaussian_pr_bank"

    def __init__(self, input_shape, instances: int, m: int | None = None, ratio: float | None = None,
                 noise_std: float = 0.0, seed: int = 0):
        if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
            raise UserInputError(f"instances must be a positive integer, got {instances!r}")
        super().__init__(input_shape, m, ratio, noise_std, seed)
        self.instances = instances
        self.A = torch.stack([GaussianPhaseRetrieval(input_shape, m, ratio, seed=seed + i).A
                              for i in range(instances)])  # (I, m, n)

    def _rows(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if v.shape[0] % self.instances:
            raise ValueError(f"a batch of {v.shape[0]} rows does not split over {self.instances} operator instances")
        return v.reshape(-1, self.instances, v.shape[-1]), buffer_like(self.A, v)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        rows, a = self._rows(x.flatten(1))
        return torch.einsum("rin,imn->rim", rows, a).reshape(x.shape[0], self.m)

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        rows, a = self._rows(z.real)
        return torch.einsum("rim,imn->rin", rows, a).reshape(z.shape[0], *self.input_shape)

    def squared_norm(self) -> torch.Tensor:
        raise NotImplementedError("a bank of operators has no single matrix norm")

    def spec(self) -> dict:
        return {**super().spec(), "instances": self.instances}


class ComplexGaussianPhaseRetrieval(GaussianPhaseRetrieval):
    """y = |A x|, A complex with real and imaginary parts N(0, 1/(2m)) each (PRILO eq. 12)."""

    name = "complex_gaussian_pr"
    complex_entries = True


class GaussianCompressedSensing(_GaussianMatrix, LinearOperator):
    """y = A x, A real with entries N(0, 1/m)."""

    name = "cs_gaussian"

    def __init__(self, input_shape, m: int | None = None, ratio: float | None = None, noise_std: float = 0.0,
                 seed: int = 0):
        LinearOperator.__init__(self, input_shape, noise_std, seed)
        self._init_matrix(m, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)
