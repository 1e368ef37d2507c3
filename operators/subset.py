"""Part of an operator's measurements, for choosing among a solver's iterates by measurements it never fitted.

:class:`MeasurementSubset` measures like its operator but sets the entries outside ``keep`` to zero (and
:meth:`MeasurementSubset.restrict` does the same to y), so any solver that fits it fits only the kept entries;
:meth:`MeasurementSubset.errors` gives the error on the others too. :func:`held_out_entries` draws that set
once per seed, for every image alike, so a batch, a restart or a re-run sees the same split. Only operators whose
entries are separate random measurements (``independent_measurements``: the Gaussian ones) qualify: a Fourier
magnitude of a real image equals its conjugate frequency's, so holding one out would hold out nothing.
"""
from __future__ import annotations

import torch

from common.errors import UserInputError
from common.randomness import sample_seed
from operators.base import ForwardOperator


def held_out_entries(operator: ForwardOperator, fraction: float, seed: int) -> torch.Tensor:
    """A bool mask of ``operator``'s measurement shape, True at ``round(fraction * m)`` entries (at least one) drawn
    from ``seed``."""
    if not getattr(operator, "independent_measurements", False):
        raise UserInputError(f"solver.holdout needs separate random measurements (gaussian_pr, complex_gaussian_pr, "
                             f"cs_gaussian); operator {operator.name}'s entries are not, so set solver.holdout=0")
    shape = tuple(operator.measurement_shape)
    m = int(torch.Size(shape).numel())
    held = max(1, round(fraction * m))
    if held >= m:
        raise UserInputError(f"solver.holdout={fraction} holds out {held} of {m} measurements and leaves none to fit; "
                             "use a fraction in (0, 1) that keeps some")
    order = torch.randperm(m, generator=torch.Generator().manual_seed(sample_seed(seed, "holdout", 0)))
    mask = torch.zeros(m, dtype=torch.bool)
    mask[order[:held]] = True
    return mask.view(shape)


class MeasurementSubset(ForwardOperator):
    """``operator``'s measurements at the entries of ``keep`` (bool, measurement-shaped); zero elsewhere."""

    def __init__(self, operator: ForwardOperator, keep: torch.Tensor):
        super().__init__(operator.input_shape, operator.noise_std, operator.seed)
        if tuple(keep.shape) != tuple(operator.measurement_shape) or keep.dtype != torch.bool:
            raise ValueError(f"keep must be a bool mask of shape {tuple(operator.measurement_shape)}")
        self.operator = operator
        self.register_buffer("keep", keep)
        self.name = f"{operator.name}_subset"
        self.is_linear, self.is_phase_retrieval = operator.is_linear, operator.is_phase_retrieval

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return tuple(self.operator.measurement_shape)

    def restrict(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.keep.to(y.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restrict(self.operator(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.operator.adjoint(self.restrict(y))

    def errors(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample, from one forward of the whole operator (y: every entry): the fitted error, as
        ``measurement_error(x, restrict(y))`` gives it (squares of the kept entries over all entries), and the
        held-out error, the mean square over the entries outside ``keep``."""
        squares = (self.operator(x) - y).flatten(1).pow(2)
        held = ~self.keep.flatten().to(y.device)
        return squares.masked_fill(held, 0).sum(1) / squares.shape[1], squares[:, held].mean(1)
