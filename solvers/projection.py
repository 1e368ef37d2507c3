"""Exact Euclidean projection onto l1 balls (Duchi et al., ICML 2008), vectorised over a batch."""
from __future__ import annotations

import torch


def project_l1_ball(v: torch.Tensor, center: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Project each row of ``v`` onto ``{x : ||x - center||_1 <= radius}``.

    ``v`` and ``center`` have shape (N, ...); every sample is one vector. ``radius`` is a
    float or a tensor of shape (N,). Rows already inside the ball are returned unchanged.
    """
    shape = v.shape
    d = (v - center).reshape(shape[0], -1)
    r = torch.as_tensor(radius, dtype=d.dtype, device=d.device).expand(shape[0]).unsqueeze(1)
    u = d.abs()
    outside = u.sum(1, keepdim=True) > r
    if not bool(outside.any()):
        return v
    mu = u.sort(dim=1, descending=True).values
    cssv = mu.cumsum(1) - r
    j = torch.arange(1, mu.shape[1] + 1, device=d.device, dtype=d.dtype)
    # rho = number of entries kept: the largest j with mu_j > (cumsum_j - r) / j
    rho = (mu * j > cssv).sum(1, keepdim=True).clamp_min(1)
    theta = cssv.gather(1, rho - 1) / rho.to(d.dtype)
    w = d.sign() * (u - theta).clamp_min(0)
    w = torch.where(outside, w, d)
    return center + w.reshape(shape)
