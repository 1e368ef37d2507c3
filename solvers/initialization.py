"""Initial latents z_0 for generative solvers, one per (image, restart), image-major.

* :class:`RandomInit`: draws from the prior's latent distribution, seeded per (seed, index, restart).
* :class:`GaussianInit`: i.i.d. N(0, I) in z_0's coordinates (for StyleGAN2 every W+ row drawn
  independently, official ILO's ``torch.randn((bs, 18, 512))``), seeded likewise.
* :func:`random_noise_maps`: fresh N(0, 1) StyleGAN2 noise maps per (index, restart) (official ILO).
* :class:`MagnitudeInformedInit` (PRILO's MII): per restart, a candidate set of p latents drawn
  from (seed, restart) alone, rendered and measured once and shared by the whole batch; each
  image keeps the candidate with the lowest measurement error.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from common.errors import UserInputError
from common.randomness import sample_generators, sample_seed
from operators.base import ForwardOperator
from priors.base import LayeredPrior


class Initialization:
    name = "init"

    def check(self, prior: LayeredPrior, operator: ForwardOperator) -> None:
        """Refuse (one line) a prior or operator this initialisation was not made for (any, by default)."""

    def __call__(self, prior: LayeredPrior, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int],
                 seed: int, restarts: int) -> torch.Tensor:
        raise NotImplementedError


class RandomInit(Initialization):
    name = "random"

    def __call__(self, prior, operator, y, indices, seed, restarts):
        gens = sample_generators(seed, "init_latent", indices, restarts)
        return torch.cat([prior.sample_latent(1, generator=g) for g in gens])


class GaussianInit(Initialization):
    name = "gaussian"

    def __call__(self, prior, operator, y, indices, seed, restarts):
        gens = sample_generators(seed, "init_latent", indices, restarts)
        return torch.stack([torch.randn(prior.latent_shape, generator=g) for g in gens]).to(prior.device)


def random_noise_maps(prior: LayeredPrior, seed: int, indices: Sequence[int], restarts: int) -> dict[str, torch.Tensor]:
    """``{"noise.<j>": (N * restarts, 1, r, r)}`` of N(0, 1), image-major, for priors with noise maps."""
    if not hasattr(prior, "noise_maps"):
        raise UserInputError(f"solver.noise_init=random needs a prior with noise maps (StyleGAN2); "
                             f"{type(prior).__name__} has none: use noise_init=fixed")
    shapes = {k: v.shape[1:] for k, v in prior.noise_maps(1).items()}
    gens = sample_generators(seed, "noise_maps", indices, restarts)
    return {k: torch.stack([torch.randn(shape, generator=g) for g in gens]) for k, shape in shapes.items()}


class GivenLatents(Initialization):
    """Latents from elsewhere (e.g. another solve's result), one per (image, restart), image-major."""

    name = "given"

    def __init__(self, latents: torch.Tensor):
        self.latents = latents

    def __call__(self, prior, operator, y, indices, seed, restarts):
        if self.latents.shape[0] != len(indices) * restarts:
            raise ValueError(f"{self.latents.shape[0]} given latents for {len(indices)} images x {restarts} restarts")
        return self.latents


class MagnitudeInformedInit(Initialization):
    name = "mii"

    def __init__(self, num_candidates: int = 5000, chunk_size: int = 500):
        if num_candidates < 1 or chunk_size < 1:
            raise UserInputError(f"init.num_candidates and init.chunk_size must be >= 1, got {num_candidates}, {chunk_size}")
        self.num_candidates = int(num_candidates)
        self.chunk_size = int(chunk_size)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._run_key = None

    @torch.no_grad()
    def candidates(self, prior: LayeredPrior, operator: ForwardOperator, seed: int, restart: int):
        """(latents (p, ...), measurements (p, m)) of one restart's candidate set, cached per run."""
        run_key = (id(prior), id(operator), seed)
        if run_key != self._run_key:
            self._cache, self._run_key = {}, run_key
        if restart not in self._cache:
            g = torch.Generator().manual_seed(sample_seed(seed, "mii_candidates", 0, restart))
            z = prior.sample_latent(self.num_candidates, generator=g)
            meas = torch.cat([operator(prior(zc)).flatten(1) for zc in z.split(self.chunk_size)])
            self._cache[restart] = (z, meas)
        return self._cache[restart]

    @torch.no_grad()
    def __call__(self, prior, operator, y, indices, seed, restarts):
        per_restart = []
        for r in range(restarts):
            z, meas = self.candidates(prior, operator, seed, r)
            dist = torch.cdist(y.flatten(1).to(meas), meas)  # (N, p): same argmin as the magnitude MSE
            per_restart.append(z[dist.argmin(dim=1)])
        return torch.stack(per_restart, dim=1).flatten(0, 1)  # image-major (N * restarts, ...)
