"""Exact Euclidean projection onto l1 balls, vectorised over a batch.

The projection of d onto ``{x : ||x||_1 <= r}`` (d outside) is soft-thresholding by the unique
theta > 0 with ``f(theta) = sum_i max(|d_i| - theta, 0) - r = 0`` (Duchi et al., ICML 2008). f is
convex, piecewise linear and decreasing, so Newton's method started left of the root (theta of the
full set) climbs to it monotonically and lands on it exactly once its active set ``|d_i| > theta``
is the final one (Michelot's algorithm, 1986): a handful of O(n) rounds instead of sorting every
row at every step.
"""
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
    excess = u.sum(1, keepdim=True) - r
    outside = excess > 0
    if not bool(outside.any()):
        return v
    count = torch.full_like(r, u.shape[1])
    theta = (excess / count).clamp_min(0)  # rows inside the ball keep theta = 0: untouched
    while True:
        above = u > theta
        new_count = above.sum(1, keepdim=True).to(d.dtype)
        if torch.equal(new_count, count):
            break
        excess = (u - theta).clamp_min_(0).sum(1, keepdim=True) - r
        # max(): rounding must not move theta back down (keeps the rounds finite)
        theta = torch.maximum(theta, theta + excess / new_count.clamp_min(1))
        count = new_count
    # soft-thresholding d by theta, written as v - clip(d, -theta, theta)
    return v - torch.clamp(d, -theta, theta).reshape(shape)
