"""Exact Euclidean projection onto l1 balls, vectorised over a batch.

The projection of d onto ``{x : ||x||_1 <= r}`` (d outside) is soft-thresholding by the unique
theta > 0 with ``f(theta) = sum_i max(|d_i| - theta, 0) - r = 0`` (Duchi et al., ICML 2008). f is
convex, piecewise linear and decreasing, so a Newton step from any theta lands at or left of the
root, and from there Newton's method climbs monotonically and lands on the root exactly once its
active set ``|d_i| > theta`` is the final one (Michelot's algorithm, 1986): a handful of O(n) rounds
instead of sorting every row. :class:`L1Ball` starts each projection from the previous theta,
which projected gradient descent keeps close to the new one: two to four rounds, the last one
confirming the active set; the compiled round (``common.fused``, large variables) also
certifies a step that no entry lies across, which saves that confirming round.
"""
from __future__ import annotations

import torch

from common.fused import fused


def _count_dtype(u: torch.Tensor) -> torch.dtype:
    # counts as float sums, exact below 2^24 entries in float32 whatever u's dtype
    return torch.float32 if u.shape[1] < 2 ** 24 else torch.float64


def _newton_eager(u, theta, r, cold, first, previous, work):
    kept = torch.sub(u, theta, out=work).clamp_min_(0)
    excess = kept.sum(1, keepdim=True).sub_(r)
    # a sum of signs is much faster than a sum of a bool mask here; NaN rows count 0 (stable)
    count = kept.sign_().sum(1, keepdim=True, dtype=_count_dtype(u)).nan_to_num_(0)
    step = excess.div_(count.clamp_min(1).to(u.dtype)).add_(theta)
    step = torch.where(count > 0, torch.where(first, step, torch.maximum(step, theta)), torch.where(first, cold, theta))
    stable = count == previous
    return count, step, stable, torch.where(stable, theta, step)


@fused(eager=_newton_eager)
def _newton(u, theta, r, cold, first, previous, work):
    """One Newton round on f per row of ``u = |d|``: (number of active entries at theta; the next
    theta, theta + f(theta) / count; whether the row is done; its root where it is done).

    After the ``first`` round (a 0-d bool tensor) theta only rises, so that rounding cannot undo
    a step and the rounds end; in it a row with nothing active goes to ``cold``, later it stays
    (and stops). A row is done when its active set did not change since the ``previous`` count
    (Michelot's stop: theta is the root), or when its step is certified: a step that no ``u_i``
    lies between (up: below the smallest active entry; down: above the largest inactive one)
    keeps the active set, so it solves f = 0 exactly. The eager twin does not certify (one more
    round instead). ``work``: scratch of u's shape (eager)."""
    kept = (u - theta).clamp_min(0)
    active = kept > 0
    count = active.sum(1, keepdim=True, dtype=_count_dtype(u))
    step = theta + (kept.sum(1, keepdim=True) - r) / count.clamp_min(1).to(u.dtype)
    step = torch.where(count > 0, torch.where(first, step, torch.maximum(step, theta)), torch.where(first, cold, theta))
    above = torch.where(active, u, torch.inf).amin(1, keepdim=True)  # the smallest active entry
    below = torch.where(active, -torch.inf, u).amax(1, keepdim=True)  # the largest inactive one
    stable = count == previous
    done = stable | ((count > 0) & (below < step) & (step < above))
    return count, step, done, torch.where(stable, theta, step)


def _shrink_eager(v: torch.Tensor, center: torch.Tensor, theta: torch.Tensor, work: torch.Tensor) -> None:
    # min/max: faster than clamp with tensor bounds
    clip = torch.sub(v, center, out=work)
    v.sub_(torch.maximum(torch.minimum(clip, theta, out=clip), -theta, out=clip))


@fused(eager=_shrink_eager)
def _shrink_(v: torch.Tensor, center: torch.Tensor, theta: torch.Tensor, work: torch.Tensor) -> None:
    """Soft-threshold ``d = v - center`` by theta per row, in place on (N, n) ``v``: v - clip(d, -theta, theta)."""
    v.sub_(torch.maximum(torch.minimum(v - center, theta), -theta))


_FLAGS: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _threshold(u: torch.Tensor, r: torch.Tensor, theta: torch.Tensor, cold: torch.Tensor,
               work: torch.Tensor) -> torch.Tensor:
    """Root theta of f per row of ``u = |d|`` (rows with ``sum u > r``), Newton from ``theta``;
    a start with no active entry (theta >= max u) goes to ``cold``, the full set's theta, left of
    the root. A row stops at the round it is done in, so its root does not depend on which rows
    share its batch (results independent of batch size and process count)."""
    if u.device not in _FLAGS:
        _FLAGS[u.device] = (torch.ones((), dtype=torch.bool, device=u.device),
                            torch.zeros((), dtype=torch.bool, device=u.device))
    first, later = _FLAGS[u.device]
    count, flag = torch.full_like(theta, -1, dtype=_count_dtype(u)), first
    finished = result = None
    while True:
        count, step, done, root = _newton(u, theta, r, cold, flag, count, work)
        if finished is None:
            finished, result = done, root
        else:  # a row keeps the root of the round it finished in: the other rows of the batch cannot move it
            result = torch.where(finished, result, root)
            finished = finished | done
        if bool(finished.all()):
            return result
        theta, flag = torch.where(finished, theta, step), later


def _project_(v: torch.Tensor, center: torch.Tensor, r: torch.Tensor, theta: torch.Tensor | None,
              buffers: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Project v in place; returns theta per row. ``r``: radii (N, 1); ``buffers``: two contiguous
    (N, n) scratch tensors."""
    rows = v.shape[0]
    u, work = buffers
    flat_v, flat_c = v.view(rows, -1), center.reshape(rows, -1)
    total = torch.sub(flat_v, flat_c, out=u).abs_().sum(1, keepdim=True)
    outside = total > r  # False for rows inside and NaN rows: those are left alone (theta 0)
    if not bool(outside.any()):
        return torch.zeros_like(r)
    cold = ((total - r) / u.shape[1]).clamp_min(0)  # the full set's theta: left of the root
    start = cold.clone() if theta is None else theta  # a distinct tensor: compiled kernels guard on aliasing
    theta = torch.where(outside, _threshold(u, r, start, cold, work), 0)
    _shrink_(flat_v, flat_c, theta, work)
    return theta


def _radii(radius: float | torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(radius, dtype=center.dtype, device=center.device).expand(center.shape[0]).unsqueeze(1)


def _buffers(center: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(center.new_empty(center.shape[0], center[0].numel()) for _ in range(2))


@torch.no_grad()
def project_l1_ball(v: torch.Tensor, center: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Project each row of ``v`` onto ``{x : ||x - center||_1 <= radius}`` (a new tensor, no gradient).

    ``v`` and ``center`` have shape (N, ...); every sample is one vector. ``radius`` is a
    float or a tensor of shape (N,). Rows already inside the ball are returned unchanged.
    """
    out = v.clone(memory_format=torch.contiguous_format)
    _project_(out, center, _radii(radius, center), None, _buffers(center))
    return out


class L1Ball:
    """``{x : ||x - center||_1 <= radius}`` per row, for projected gradient descent: :meth:`project_`
    works in place, in scratch memory kept between calls, and starts from the previous call's
    theta (exact from any start, faster from there)."""

    def __init__(self, center: torch.Tensor, radius: float | torch.Tensor):
        self.center, self.radius, self.theta = center, radius, None
        self._r, self._buffers = _radii(radius, center), None

    @torch.no_grad()
    def project_(self, v: torch.Tensor) -> torch.Tensor:
        if self._buffers is None:
            self._buffers = _buffers(self.center)
        if not v.is_contiguous():
            return v.copy_(self.project_(v.contiguous()))
        self.theta = _project_(v, self.center, self._r, self.theta, self._buffers)
        return v
