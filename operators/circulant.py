"""Compressed sensing with a randomly signed partial circulant matrix (ILO section 3.4)."""
from __future__ import annotations

import math

import torch

from common.errors import UserInputError
from operators.base import LinearOperator, buffer_like
from operators.gaussian import resolve_measurement_count


class CirculantCompressedSensing(LinearOperator):
    """y = P_m C_g D_s x on the flattened image x ∈ ℝⁿ (n = C·H·W).

    D_s: random ±1 signs; C_g: the circulant matrix with first row g, g_j ~ N(0, 1/m),
    i.e. (C_g v)_i = Σ_j g_{(j−i) mod n} v_j; P_m: a random subset of m rows (sorted).
    Products run through real FFTs in O(n log n); no matrix is formed, so 256×256×3
    images are cheap. ``dense_matrix()`` builds the equivalent m × n matrix for checks.
    """

    name = "cs_circulant"

    def __init__(self, input_shape, m: int | None = None, ratio: float | None = None, noise_std: float = 0.0,
                 seed: int = 0):
        super().__init__(input_shape, noise_std, seed)
        self.m_given, self.ratio_given = m, (None if m is not None else ratio)  # m wins over ratio
        n = self.input_size
        self.m = resolve_measurement_count(m, ratio, n)
        if self.m > n:
            raise UserInputError(f"cs_circulant keeps a subset of the n = {n} rows; m = {self.m} is too many")
        g = self.generator()
        self.register_buffer("signs", torch.randint(0, 2, (n,), generator=g).float() * 2 - 1)
        self.register_buffer("g", torch.randn(n, generator=g) / math.sqrt(self.m))
        self.register_buffer("rows", torch.randperm(n, generator=g)[: self.m].sort().values)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.m,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.input_size
        v = x.flatten(1) * buffer_like(self.signs, x)
        spectrum = torch.fft.rfft(buffer_like(self.g, x), n=n).conj() * torch.fft.rfft(v, n=n)
        return torch.fft.irfft(spectrum, n=n)[:, self.rows.to(x.device)]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        n = self.input_size
        v = y.new_zeros(y.shape[0], n).index_copy(1, self.rows.to(y.device), y)
        spectrum = torch.fft.rfft(buffer_like(self.g, y), n=n) * torch.fft.rfft(v, n=n)
        out = torch.fft.irfft(spectrum, n=n) * buffer_like(self.signs, y)
        return out.reshape(y.shape[0], *self.input_shape)

    def dense_matrix(self) -> torch.Tensor:
        """The m × n matrix P_m C_g D_s (for tests and small problems only)."""
        n = self.input_size
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        circulant = self.g.cpu()[(j - i) % n]
        return circulant[self.rows.cpu()] * self.signs.cpu()

    def spec(self) -> dict:
        return {**super().spec(), "m": self.m_given, "ratio": self.ratio_given}
