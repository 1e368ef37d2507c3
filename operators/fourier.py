"""Fourier phase retrieval: y = |F pad(x)|, a 2-D DFT per channel."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from common.errors import UserInputError
from operators.base import PhaseRetrievalOperator

NORMS = ("ortho", "backward", "forward")
# torch.fft.ifft2 with this norm is the adjoint of torch.fft.fft2 with the key's norm
_ADJOINT_NORM = {"ortho": "ortho", "backward": "forward", "forward": "backward"}


class FourierPhaseRetrieval(PhaseRetrievalOperator):
    """y = |F x̃| where x̃ is x zero-padded (bottom/right) to ``round(oversampling · H)`` ×
    ``round(oversampling · W)``; F is the 2-D DFT per channel with ``torch.fft`` ``norm``.

    ``oversampling = 1`` (default) is the non-oversampled, underdetermined case of PRILO.
    ``norm = "ortho"`` (default) makes F unitary, so ‖y‖ = ‖x‖ and magnitudes are on the
    image's scale. The padded grid carries the ``support`` mask (True where x lives).
    """

    name = "fourier_pr"

    def __init__(self, input_shape, oversampling: float = 1.0, norm: str = "ortho", noise_std: float = 0.0,
                 seed: int = 0):
        super().__init__(input_shape, noise_std, seed)
        if len(self.input_shape) != 3:
            raise UserInputError(f"fourier_pr needs input_shape [C, H, W], got {list(self.input_shape)}")
        oversampling = float(oversampling)
        if not math.isfinite(oversampling) or oversampling < 1:
            raise UserInputError(f"oversampling must be a finite factor >= 1 (1 = no padding), got {oversampling}")
        if norm not in NORMS:
            raise UserInputError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.oversampling = oversampling
        self.norm = norm
        _, h, w = self.input_shape
        self.padded_size = (round(oversampling * h), round(oversampling * w))
        support = torch.zeros(self.padded_size, dtype=torch.bool)
        support[:h, :w] = True
        self.register_buffer("support", support)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.input_shape[0], *self.padded_size)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad images to the measurement grid."""
        (ph, pw), (h, w) = self.padded_size, self.input_shape[1:]
        return F.pad(x, (0, pw - w, 0, ph - h))

    def crop(self, g: torch.Tensor) -> torch.Tensor:
        """The image part (the support) of a padded-grid array."""
        h, w = self.input_shape[1:]
        return g[..., :h, :w]

    def fft(self, g: torch.Tensor) -> torch.Tensor:
        """F on the padded grid."""
        return torch.fft.fft2(g, norm=self.norm)

    def ifft(self, z: torch.Tensor) -> torch.Tensor:
        """F⁻¹ on the padded grid (complex)."""
        return torch.fft.ifft2(z, norm=self.norm)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return self.fft(self.pad(x))

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        return self.crop(torch.fft.ifft2(z, norm=_ADJOINT_NORM[self.norm])).real

    def pseudo_inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Least-squares real image for Fourier coefficients z: Re(crop(F⁻¹ z))."""
        return self.crop(self.ifft(z)).real

    def spec(self) -> dict:
        return {**super().spec(), "oversampling": self.oversampling, "norm": self.norm}
