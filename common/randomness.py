"""Per-sample randomness that does not depend on batch size, device count or order.

Every random quantity of an inversion (initial latents, measurement noise, gradient
noise) is derived from ``(seed, stream, index, restart)``, where ``index`` is the
dataset's stable sample index. Two tools:

* :func:`sample_generators` / :func:`per_sample_normal`: one ``torch.Generator`` per
  sample, for draws made once per batch (initial latents, measurement noise).
* :func:`counter_normal`: a stateless, vectorised hash-based normal generator keyed by
  per-sample integers and a step counter, where a Python loop over generators would
  dominate.
* :class:`TableNormal`: the same keying for draws made at every optimisation step
  (gradient noise), as windows of one fixed table of normals drawn by
  :func:`counter_normal`: a copy per step instead of a hash and Box-Muller per element.
"""
from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence

import numpy as np
import torch

_MASK63 = (1 << 63) - 1


def stream_id(name: str) -> int:
    """A stable integer for a named random stream (CRC32, identical across runs)."""
    return zlib.crc32(name.encode())


def sample_seed(seed: int, stream: str, index: int, restart: int = 0) -> int:
    """A 63-bit seed for one sample of one stream."""
    words = [int(seed) & 0xFFFFFFFF, stream_id(stream), int(index) & 0xFFFFFFFF, int(index) >> 32, int(restart)]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & _MASK63)


def sample_generators(seed: int, stream: str, indices: Sequence[int], restarts: int = 1) -> list[torch.Generator]:
    """CPU generators ordered image-major: ``[(i0, r0), (i0, r1), …, (i1, r0), …]``."""
    gens = []
    for index in indices:
        for restart in range(restarts):
            g = torch.Generator()
            g.manual_seed(sample_seed(seed, stream, int(index), restart))
            gens.append(g)
    return gens


def per_sample_normal(
    shape: Sequence[int],
    seed: int,
    stream: str,
    indices: Sequence[int],
    restarts: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normals of shape ``(len(indices) * restarts, *shape)``, image-major."""
    gens = sample_generators(seed, stream, indices, restarts)
    out = torch.stack([torch.randn(tuple(shape), generator=g, dtype=dtype) for g in gens])
    return out.to(device)


def sample_keys(seed: int, stream: str, indices: Sequence[int], restarts: int = 1, device=None) -> torch.Tensor:
    """int64 keys, one per (index, restart), image-major, for :func:`counter_normal`."""
    keys = [sample_seed(seed, stream, int(i), r) for i in indices for r in range(restarts)]
    return torch.tensor(keys, dtype=torch.int64, device=device)


_GOLDEN = -7046029254386353131  # 0x9e3779b97f4a7c15 as signed int64
# masks that turn int64's arithmetic right shifts into the logical shifts of splitmix64
_M30, _M27, _M31 = (1 << 34) - 1, (1 << 37) - 1, (1 << 33) - 1


def _mix_(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 (wrapping multiplies), in place."""
    x.bitwise_xor_((x >> 30).bitwise_and_(_M30)).mul_(-4658895280553007687)  # 0xbf58476d1ce4e5b9
    x.bitwise_xor_((x >> 27).bitwise_and_(_M27)).mul_(-7723592293110705685)  # 0x94d049bb133111eb
    return x.bitwise_xor_((x >> 31).bitwise_and_(_M31))


def counter_normal(keys: torch.Tensor, counter: int, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
    """Standard normals ``(len(keys), *shape)`` that depend only on (key, counter, element).

    Row ``b`` is the same whatever other rows are in the batch, so per-step noise is
    invariant to batching and sharding. One 64-bit hash per pair of outputs: its two 24-bit
    halves are the uniforms of a Box-Muller pair (cos and sin), so |z| < 5.8.
    """
    n = int(np.prod(shape)) if len(shape) else 1
    half = (n + 1) // 2
    row = _mix_(keys.to(torch.int64)[:, None] * _GOLDEN + _counter_offset(counter))
    bits = _mix_(row + torch.arange(1, half + 1, device=keys.device, dtype=torch.int64) * _GOLDEN)
    # top 24 bits (arithmetic shift: [-2^23, 2^23)) and low 24 bits, as floats in (0, 1] and [0, 2 pi)
    radius = (bits >> 40).to(torch.float32).add_(2 ** 23 + 0.5).mul_(2.0 ** -24).log_().mul_(-2.0).sqrt_()
    angle = bits.bitwise_and_((1 << 24) - 1).to(torch.float32).mul_(2 * np.pi / 2 ** 24)
    out = torch.empty(len(keys), 2 * half, device=keys.device, dtype=torch.float32)
    torch.mul(radius, torch.cos(angle), out=out[:, :half])
    torch.mul(radius, angle.sin_(), out=out[:, half:])
    return out[:, :n].to(dtype).reshape(len(keys), *shape)


def _counter_offset(counter: int) -> int:
    return (int(counter) * 0x2545F4914F6CDD1D + 1) & _MASK63  # Python int, kept inside int64


@functools.lru_cache(maxsize=4)
def _normal_table(size: int, device: torch.device) -> torch.Tensor:
    """``size`` standard normals, the same on every machine and device (drawn on the CPU)."""
    return counter_normal(torch.tensor([stream_id("normal_table")]), 0, (size,))[0].to(device)


class TableNormal:
    """Standard normals ``(len(keys), *shape)`` that depend only on (key, counter): for each key
    and counter, a window of ``prod(shape)`` consecutive entries of one fixed table of standard
    normals at a hashed offset (the shared noise table of Salimans et al., 2017, "Evolution
    strategies as a scalable alternative to reinforcement learning").

    The entries of one draw are distinct table entries: independent standard normals. Two
    draws (another key or counter) share entries only when their offsets are closer than the
    window, with probability about 2 · numel / table size (at most 1/8: the table has at least
    ``16 · numel`` and ``MIN_SIZE`` entries), and then as shifted copies, not at the same
    element. A row does not depend on the other rows of the batch (batch and device invariance).
    Per draw this costs a copy, against a hash and a Box-Muller transform per element.
    """

    MIN_SIZE = 2 ** 20  # 4 MiB of float32

    def __init__(self, keys: torch.Tensor, shape: Sequence[int]):
        self.keys = keys.to(torch.int64)
        self.shape = tuple(int(s) for s in shape)
        self.numel = math.prod(self.shape)
        size = max(self.MIN_SIZE, 1 << (16 * self.numel - 1).bit_length())
        table = _normal_table(size, keys.device)
        self._windows = table.as_strided((size - self.numel + 1, self.numel), (1, 1))
        self._buffer = table.new_empty(len(keys), self.numel)

    def offsets(self, counters: int | Sequence[int]) -> torch.Tensor:
        """Start of each row's window in the table: (rows,) for one counter, (len(counters), rows)
        for several (one vectorised hash for a whole stage's steps)."""
        many = not isinstance(counters, int)
        counter = torch.tensor([_counter_offset(c) for c in (counters if many else [counters])], device=self.keys.device)
        start = _mix_(self.keys[None] * _GOLDEN + counter[:, None]).bitwise_and_(_MASK63)
        start = start.remainder_(len(self._windows))
        return start if many else start[0]

    def _draw(self, counter: int | torch.Tensor) -> torch.Tensor:
        offsets = counter if isinstance(counter, torch.Tensor) else self.offsets(counter)
        return torch.index_select(self._windows, 0, offsets, out=self._buffer)

    def sample(self, counter: int, dtype=torch.float32) -> torch.Tensor:
        return self._draw(counter).to(dtype, copy=True).view(len(self.keys), *self.shape)

    @torch.no_grad()
    def add_(self, target: torch.Tensor, counter: int | torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """``target += alpha * sample(counter)``, in place (``target``: shape ``(len(keys), *shape)``);
        ``counter`` may also be that counter's row of :meth:`offsets`."""
        return target.add_(self._draw(counter).view(target.shape), alpha=alpha)
