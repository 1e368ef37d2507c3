"""Fully connected VAE (PRILO appendix A; DPR uses latent 20) as a layered prior.

Encoder and decoder have three layers each with 500 hidden units and ReLU; the
decoder's split points are 0 (z), 1 and 2 (after each hidden layer, post-ReLU) and
3 (the image, after the sigmoid). Bernoulli likelihood on pixels in [0, 1].
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from priors.base import LayeredPrior, Representation


class VAE(LayeredPrior):
    layer_names = ("z", "h1", "h2", "image")

    def __init__(self, image_shape=(1, 28, 28), latent_dim: int = 100, hidden_dim: int = 500):
        super().__init__()
        self._image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = int(latent_dim)
        self.hidden_dim = int(hidden_dim)
        n = math.prod(self._image_shape)
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(n, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU()
        )
        self.to_mean = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.ModuleList(
            [nn.Linear(latent_dim, hidden_dim), nn.Linear(hidden_dim, hidden_dim), nn.Linear(hidden_dim, n)]
        )

    # -- layered prior -----------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.decoder)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator)
        return z.to(self.device)

    def initial_representation(self, z0: torch.Tensor) -> Representation:
        return {"state": z0}

    def apply_layer(self, rep: Representation, i: int) -> Representation:
        h = self.decoder[i](rep["state"])
        if i < self.num_layers - 1:
            return {"state": F.relu(h)}
        return {"state": torch.sigmoid(h).view(-1, *self._image_shape)}

    # -- VAE training ------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mean(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.run({"state": z}, 0, self.num_layers - 1)["state"]
        return self.decoder[-1](h).view(-1, *self._image_shape)

    def describe(self) -> dict:
        return {**super().describe(), "hidden_dim": self.hidden_dim}
