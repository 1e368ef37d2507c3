"""Per-sample randomness that does not depend on batch size, device count or order.

Every random quantity of an inversion (initial latents, measurement noise, gradient
noise) is derived from ``(seed, stream, index, restart)``, where ``index`` is the
dataset's stable sample index. Two tools:

* :func:`sample_generators` / :func:`per_sample_normal`: one ``torch.Generator`` per
  sample, for draws made once per batch (initial latents, measurement noise).
* :func:`counter_normal`: a stateless, vectorised hash-based normal generator keyed by
  per-sample integers and a step counter, for draws made at every optimisation step
  (gradient noise), where a Python loop over generators would dominate the step time.
"""
from __future__ import annotations

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
    offset = (int(counter) * 0x2545F4914F6CDD1D + 1) & _MASK63  # Python int, kept inside int64
    row = _mix_(keys.to(torch.int64)[:, None] * _GOLDEN + offset)
    bits = _mix_(row + torch.arange(1, half + 1, device=keys.device, dtype=torch.int64) * _GOLDEN)
    # top 24 bits (arithmetic shift: [-2^23, 2^23)) and low 24 bits, as floats in (0, 1] and [0, 2 pi)
    radius = (bits >> 40).to(torch.float32).add_(2 ** 23 + 0.5).mul_(2.0 ** -24).log_().mul_(-2.0).sqrt_()
    angle = bits.bitwise_and_((1 << 24) - 1).to(torch.float32).mul_(2 * np.pi / 2 ** 24)
    out = torch.empty(len(keys), 2 * half, device=keys.device, dtype=torch.float32)
    torch.mul(radius, torch.cos(angle), out=out[:, :half])
    torch.mul(radius, angle.sin_(), out=out[:, half:])
    return out[:, :n].to(dtype).reshape(len(keys), *shape)
