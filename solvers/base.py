"""What every solver returns, and the one call every solver answers."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


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
