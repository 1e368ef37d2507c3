"""Projection of optimised variables back onto the spheres they start on (PULSE, ILO).

ILO's ``SphericalOptimizer``: after every optimiser step each variable is rescaled so that
its norm over the dimensions after the first two (per sample and per W+ row or noise
channel; per sample for a plain (N, d) latent) equals the norm it had when the projection
was set up, i.e. at the start of the stage.
"""
from __future__ import annotations

import torch


def _norm(v: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(2, v.dim())) if v.dim() > 2 else (1,)
    return (v.pow(2).sum(dims, keepdim=True) + 1e-9).sqrt()


class SphereProjection:
    """Keeps each of ``variables`` on its sphere of radius fixed at construction."""

    def __init__(self, variables: list[torch.Tensor]):
        self.variables = list(variables)
        with torch.no_grad():
            self.radii = [_norm(v) for v in self.variables]

    @torch.no_grad()
    def project_(self) -> None:
        for v, radius in zip(self.variables, self.radii):
            v.mul_(radius / _norm(v))
