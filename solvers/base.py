"""The solver interface: what every solver returns and the calls every solver answers."""
from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch

from common.errors import UserInputError

if TYPE_CHECKING:
    from operators.base import ForwardOperator
    from priors.base import LayeredPrior


@dataclass
class SolveResult:
    """Per-image results of one batch, restarts already reduced.

    ``x``: reconstructions (N, C, H, W) in the image domain; ``measurement_error``: (N,)
    per-image error of the kept restart (the lowest; never chosen by ground truth);
    ``failed``: (N,) True where every restart diverged (NaN/Inf); ``latent``: the kept
    z_0 for generative solvers (None otherwise); ``history``: named curves of the mean
    measurement error over optimisation steps, one per stage, for logging.
    """

    x: torch.Tensor
    measurement_error: torch.Tensor
    failed: torch.Tensor
    latent: torch.Tensor | None = None
    history: dict[str, list[float]] = field(default_factory=dict)


def select_best_restart(errors: torch.Tensor, restarts: int) -> torch.Tensor:
    """Index (into the image-major flat batch) of the lowest-error restart per image.

    ``errors`` has shape (N * restarts,), ordered image-major; non-finite errors lose.
    """
    e = torch.nan_to_num(errors.detach().view(-1, restarts), nan=float("inf"), posinf=float("inf"))
    best = e.argmin(dim=1)
    return torch.arange(e.shape[0], device=e.device) * restarts + best


class Solver(abc.ABC):
    """What invert.py and the inversion module ask of a solver (generative engine, mGANprior, the
    classical baselines, wrappers such as twin selection).

    ``requires_prior`` (class attribute): the solver is built with ``prior=`` and ``init=`` (a
    generative prior and an initialisation); ``prior``: that prior, or None.
    """

    requires_prior: ClassVar[bool] = False
    prior: LayeredPrior | None = None

    def check_setup(self, operator: ForwardOperator) -> None:
        """Refuse (one-line ``UserInputError``), before any image is solved, an operator this solver
        cannot handle, or an initialisation made for another prior or operator (nothing by default)."""

    @abc.abstractmethod
    def solve(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int], seed: int) -> SolveResult:
        """Reconstruct every measurement of ``y`` (rows ordered as ``indices``); randomness per (seed, index)."""


def solver_class(target: str) -> type[Solver]:
    """The class a solver config's ``_target_`` names, refused with one line unless it is a :class:`Solver`."""
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001 (hydra raises ImportError or ValueError variants)
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        raise UserInputError(f"solver._target_={target!r} is not a solver class (solvers.base.Solver); "
                             f"pick one of conf/solver/*.yaml")
    return cls
