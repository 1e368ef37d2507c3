"""Multi-code generators (mGANprior, Gu et al. 2020; RTIL section 3.2): G̃(z^1..z^N) = g1(Σ_k g0(z^k) · α_k).

The N codes of one sample travel as consecutive batch rows (sample-major: row = sample · N + code),
so g0 runs once on the whole batch. :func:`combine_codes` mixes their ``"state"`` at the split point
with per-code weights, one per code (RTIL's Dirichlet family) or one per channel (mGANprior's
channel-importance vectors). Other representation entries (a StyleGAN2 W+ code, noise maps) are
taken from the first code: the later layers read them unmixed.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from common.errors import UserInputError
from priors.base import LayeredPrior, Representation


def check_multicode(prior: LayeredPrior, num_codes: int, layer: int, where: str) -> None:
    """Refuse N < 1 and split points outside 1..k-1 with one line (``where`` names the config keys)."""
    if not isinstance(num_codes, int) or num_codes < 1:
        raise UserInputError(f"{where}: the number of codes must be an integer >= 1, got {num_codes!r}")
    top = prior.num_layers - 1
    if not isinstance(layer, int) or not 1 <= layer <= top:
        raise UserInputError(f"{where}: split point {layer!r} is outside the generator: {type(prior).__name__} has "
                             f"intermediate split points 1..{top}")


def combine_codes(rep: Representation, weights: torch.Tensor) -> Representation:
    """Σ_k rep_k["state"] · weights[:, k] for a batch of n · N rows (sample-major) → n rows.

    ``weights``: (n, N) (one weight per code, every channel) or (n, N, C) (per channel). The sum
    runs in code order, so one-hot weights give exactly the chosen code's state.
    """
    state = rep["state"]
    n, num_codes = weights.shape[:2]
    state = state.reshape(n, num_codes, *state.shape[1:])
    w = weights.to(state.dtype)
    w = w.reshape(*w.shape, *([1] * (state.dim() - w.dim())))
    mixed = (state * w).sum(1)
    rest = {k: v.reshape(n, num_codes, *v.shape[1:])[:, 0] for k, v in rep.items() if k != "state"}
    return {**rest, "state": mixed}


def flat_dirichlet(n: int, num_codes: int, draw: Callable[[torch.Tensor], torch.Tensor],
                   like: torch.Tensor | None = None) -> torch.Tensor:
    """(n, N) weights α′ ~ Dir_N(1): normalized Exp(1) draws, each Exp(1) = (Z1² + Z2²) / 2 from two
    standard normals of ``draw`` (so any normal stream, seeded or per rank, gives Dirichlet weights)."""
    t = torch.empty(2, n, num_codes) if like is None else like.new_empty(2, n, num_codes)
    e = draw(t).pow(2).sum(0) / 2
    return e / e.sum(1, keepdim=True)
