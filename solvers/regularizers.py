"""Latent regularisers added to a solver's measurement loss.

:func:`geocross` is PULSE's / ILO's geodesic cross loss on a W+ code: the mean squared angle
between every pair of its style rows, so the rows stay close to one common direction.
"""
from __future__ import annotations

import torch


def geocross(latent: torch.Tensor) -> torch.Tensor:
    """Per sample ``(D² · d).mean() / 8`` with D the pairwise angles between the rows of ``latent``.

    ``latent``: (N, rows, d). The angle of rows a, b is ``2 atan2(|a − b|, |a + b|)`` (exact for
    rows of equal norm, the case on the sphere; ILO's ``loss_geocross`` with its d = 512
    generalised to d). A latent without rows (N, d) gives zeros: there is nothing to compare.
    """
    if latent.dim() != 3:
        return latent.new_zeros(latent.shape[0])
    x, y = latent.unsqueeze(1), latent.unsqueeze(2)  # (N, 1, rows, d), (N, rows, 1, d)
    a = ((x - y).pow(2).sum(-1) + 1e-9).sqrt()
    b = ((x + y).pow(2).sum(-1) + 1e-9).sqrt()
    angle = 2 * torch.atan2(a, b)
    return (angle.pow(2) * latent.shape[-1]).mean((1, 2)) / 8
