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


def _mix(x: torch.Tensor) -> torch.Tensor:
    # splitmix64 finaliser on int64 (wrapping multiply); logical shifts emulated by masking
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * -4658895280553007687  # 0xbf58476d1ce4e5b9 as signed int64
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * -7723592293110705685  # 0x94d049bb133111eb as signed int64
    x = x ^ ((x >> 31) & ((1 << 33) - 1))
    return x


def counter_normal(keys: torch.Tensor, counter: int, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
    """Standard normals ``(len(keys), *shape)`` that depend only on (key, counter, element).

    Row ``b`` is the same whatever other rows are in the batch, so per-step noise is
    invariant to batching and sharding.
    """
    n = int(np.prod(shape)) if len(shape) else 1
    elem = torch.arange(2 * n, device=keys.device, dtype=torch.int64)
    offset = (int(counter) * 0x2545F4914F6CDD1D + 1) & _MASK63  # Python int, kept inside int64
    base = _mix(keys.to(torch.int64)[:, None] * -7046029254386353131 + offset)
    bits = _mix(base + elem[None, :] * -7046029254386353131)
    u = ((bits >> 11) & ((1 << 52) - 1)).to(torch.float64) / float(1 << 52)
    u1 = u[:, :n].clamp_min(1e-300)
    u2 = u[:, n:]
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
    return z.to(dtype).reshape(len(keys), *shape)
