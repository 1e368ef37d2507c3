"""DPR's synthetic generator (Hand, Leong, Voroninski 2018, section 4.1): G(z) = relu(W2 relu(W1 z))
with untrained i.i.d. Gaussian weights, z ∈ ℝᵏ, W1 ∈ ℝ^{n1×k}, W2 ∈ ℝ^{n2×n1} (k = 10, n1 = 500, n2 = 1000).

The weights are drawn from ``seed`` (one generator per random instance of DPR's figure 2), with
entries N(0, 1) as in the paper, and the output is multiplied by ``output_scale``: G is positively
homogeneous, and DPR's success criterion ‖G(ẑ) − G(z₀)‖ / ‖G(z₀)‖ ≤ 1e-3 is invariant to a
positive factor, so the scaled problem is the paper's; the default factor
0.1 / √(k·n1/2) gives outputs of standard deviation ≈ 0.1, so that the solvers' final clamp to
[0, 1] (images) never acts on these signals. Split points: 0 (z), 1 (after the first ReLU),
2 (the output, shaped ``(1, 1, n2)``: a signal, not a picture).

``instances = I > 1`` holds I independent generators in one module so that I random instances are
solved in one batch: batch row b goes through generator b mod I, and generator i has the weights of
``RandomReLUGenerator(seed=seed + i)`` (batches must be multiples of I).
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from common.errors import UserInputError
from priors.base import LayeredPrior, Representation


class RandomReLUGenerator(LayeredPrior):
    layer_names = ("z", "h1", "output")

    def __init__(self, latent_dim: int = 10, hidden_dim: int = 500, output_dim: int = 1000, seed: int = 0,
                 output_scale: float | None = None, instances: int = 1):
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("hidden_dim", hidden_dim), ("output_dim", output_dim),
                            ("instances", instances)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"RandomReLUGenerator {name} must be a positive integer, got {value!r}")
        self.latent_dim, self.hidden_dim, self.output_dim, self.seed = latent_dim, hidden_dim, output_dim, int(seed)
        self.output_scale = 0.1 / math.sqrt(latent_dim * hidden_dim / 2) if output_scale is None else float(output_scale)
        self.instances = instances
        weights = [self._draw(self.seed + i) for i in range(instances)]
        self.register_buffer("W1", torch.stack([w1 for w1, _ in weights]))  # (I, n1, k)
        self.register_buffer("W2", torch.stack([w2 for _, w2 in weights]))  # (I, n2, n1)

    def _draw(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(self.hidden_dim, self.latent_dim, generator=g),
                torch.randn(self.output_dim, self.hidden_dim, generator=g))

    def _per_row(self, weight: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Row b of h times the weight of instance b mod I."""
        if self.instances == 1:
            return h @ weight[0].T
        if h.shape[0] % self.instances:
            raise ValueError(f"a batch of {h.shape[0]} rows does not split over {self.instances} generator instances")
        rows = h.view(-1, self.instances, h.shape[1])  # (B / I, I, d): instance = row mod I
        return torch.einsum("rid,ied->rie", rows, weight).reshape(h.shape[0], -1)

    @property
    def num_layers(self) -> int:
        return 2

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 1, self.output_dim)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    def initial_representation(self, z0: torch.Tensor) -> Representation:
        return {"state": z0}

    def apply_layer(self, rep: Representation, i: int) -> Representation:
        if i == 0:
            return {"state": F.relu(self._per_row(self.W1, rep["state"]))}
        out = F.relu(self._per_row(self.W2, rep["state"])) * self.output_scale
        return {"state": out.view(-1, *self.image_shape)}

    def describe(self) -> dict:
        return {**super().describe(), "hidden_dim": self.hidden_dim, "seed": self.seed,
                "output_scale": self.output_scale, "instances": self.instances}
