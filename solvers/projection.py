"""Exact Euclidean projection onto l1 balls, vectorised over a batch.

The projection of d onto ``{x : ||x||_1 <= r}`` (d outside) is soft-thresholding by the unique
theta > 0 with ``f(theta) = sum_i max(|d_i| - theta, 0) - r = 0`` (Duchi et al., ICML 2008). f is
convex, piecewise linear and decreasing, so a Newton step from any theta lands at or left of the
root, and from there Newton's method climbs monotonically and lands on the root exactly once its
active set ``|d_i| > theta`` is the final one (Michelot's algorithm, 1986): a handful of O(n) rounds
instead of sorting every row. :class:`L1Ball` starts each projection from the previous theta,
which projected gradient descent keeps close to the new one (typically two rounds).
"""
from __future__ import annotations

import torch


def _threshold(u: torch.Tensor, r: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Root theta of f per row of ``u = |d|`` (rows with ``sum u > r``), Newton from ``theta``."""
    # counts as float sums of signs (much faster than summing a bool mask); float32 counts exactly
    # below 2^24 entries whatever u's dtype (half-precision variables included)
    count_dtype = torch.float32 if u.shape[1] < 2 ** 24 else torch.float64
    count = torch.full_like(r, -1, dtype=count_dtype)
    first = True
    while True:
        kept = (u - theta).clamp_min_(0)
        excess = kept.sum(1, keepdim=True) - r
        new_count = kept.sign_().sum(1, keepdim=True, dtype=count_dtype).nan_to_num_(0)  # NaN rows: 0, stable
        if torch.equal(new_count, count):
            return theta
        step = theta + excess / new_count.clamp_min(1).to(u.dtype)
        # after the first step theta only rises: max() keeps rounding from undoing that (finite rounds)
        theta = step if first else torch.maximum(theta, step)
        first, count = False, new_count


def _project(v: torch.Tensor, center: torch.Tensor, radius, inplace: bool, theta: torch.Tensor | None):
    """(projection of v, theta per row); see :func:`project_l1_ball`."""
    shape = v.shape
    d = (v - center).reshape(shape[0], -1)
    r = torch.as_tensor(radius, dtype=d.dtype, device=d.device).expand(shape[0]).unsqueeze(1)
    u = d.abs()
    total = u.sum(1, keepdim=True)
    outside = total > r
    if not bool(outside.any()):
        return v, torch.zeros_like(r)
    cold = ((total - r) / u.shape[1]).clamp_min(0)  # the full set's theta: left of the root
    # a warm start at or above max |d_i| has no active entry and no Newton step: start cold there
    theta = cold if theta is None else torch.where(theta < u.amax(1, keepdim=True), theta, cold)
    theta = torch.where(outside, _threshold(u, r, theta), 0)  # rows inside (or NaN) are left alone
    # soft-thresholding d by theta, written as v - clip(d, -theta, theta) (min/max: faster than clamp
    # with tensor bounds)
    clip = torch.maximum(torch.minimum(d, theta), -theta).reshape(shape)
    return (v.sub_(clip) if inplace else v - clip), theta


def project_l1_ball(v: torch.Tensor, center: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Project each row of ``v`` onto ``{x : ||x - center||_1 <= radius}``.

    ``v`` and ``center`` have shape (N, ...); every sample is one vector. ``radius`` is a
    float or a tensor of shape (N,). Rows already inside the ball are returned unchanged.
    """
    return _project(v, center, radius, inplace=False, theta=None)[0]


class L1Ball:
    """``{x : ||x - center||_1 <= radius}`` per row, for projected gradient descent: :meth:`project_`
    works in place and starts from the previous call's theta (exact from any start, faster from there)."""

    def __init__(self, center: torch.Tensor, radius: float | torch.Tensor):
        self.center, self.radius, self.theta = center, radius, None

    @torch.no_grad()
    def project_(self, v: torch.Tensor) -> torch.Tensor:
        v, self.theta = _project(v, self.center, self.radius, inplace=True, theta=self.theta)
        return v
