"""The layered-prior protocol: every generator as G = G_k ∘ … ∘ G_1 with visible split points.

A *representation* at split point ``i`` is a ``dict[str, Tensor]`` (batch first) holding

* ``"state"``: the activation z_i after layer i (z_0, the latent, at i = 0),
* everything a later layer consumes besides the previous activation, e.g. for a
  style-based generator ``"latent"`` (the W+ codes the remaining layers read),
  ``"skip"`` (the running ToRGB image) and ``"noise.<j>"`` (per-layer noise maps).

``to_layer(z0, i)`` runs the first i layers, ``from_layer(rep, i)`` runs the rest and
returns the image. Resuming at any split point with nothing perturbed reproduces
``G(z0)`` exactly; ILO/PRILO optimise representations, RTIL training perturbs
``"state"``, a multi-code prior mixes them, all through these calls.

Images are float tensors ``(N, C, H, W)`` in [0, 1] for every prior.
"""
from __future__ import annotations

import abc

import torch
from torch import nn

Representation = dict[str, torch.Tensor]

#: roles of representation entries an inversion may optimise (:meth:`LayeredPrior.variable_roles`)
STATE, LATENT, NOISE = "state", "latent", "noise"
NOISE_PREFIX = "noise."


class LayeredPrior(nn.Module, abc.ABC):
    """Base class of all generative priors."""

    #: optional short names of the split points 0..num_layers, for logs and configs
    layer_names: tuple[str, ...] | None = None

    @property
    @abc.abstractmethod
    def num_layers(self) -> int:
        """k: split points are 0 (latent) … k (image)."""

    @property
    @abc.abstractmethod
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent z_0 (without the batch dimension)."""

    @property
    @abc.abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the generated images."""

    @abc.abstractmethod
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n latents from the prior's latent distribution (on the prior's device)."""

    @abc.abstractmethod
    def initial_representation(self, z0: torch.Tensor) -> Representation:
        """The representation at split point 0."""

    @abc.abstractmethod
    def apply_layer(self, rep: Representation, i: int) -> Representation:
        """Layer G_{i+1}: representation at split i → representation at split i + 1."""

    def to_image(self, rep: Representation) -> torch.Tensor:
        """The image carried by a representation at split point k."""
        return rep["state"]

    def variable_roles(self, rep: Representation) -> dict[str, str]:
        """The entries of ``rep`` an inversion may optimise, each with its role: :data:`STATE` (the
        activation, z_0 at split 0; a stage's ``radius`` bounds it), :data:`LATENT` (a code the later
        layers read; ``latent_radius``) or :data:`NOISE` (a noise map ``noise.<j>``; optimised on
        request). Entries left out stay fixed (e.g. StyleGAN2's running ``"skip"`` image). Solvers
        declare their variables from this (:mod:`solvers.variables`); here: the activation alone."""
        return {STATE: STATE}

    # -- derived API -------------------------------------------------------------------
    def check_split(self, i: int) -> int:
        if not isinstance(i, int) or not 0 <= i <= self.num_layers:
            raise ValueError(
                f"split point {i!r} does not exist: {type(self).__name__} has split points 0..{self.num_layers}"
            )
        return i

    def run(self, rep: Representation, start: int, end: int) -> Representation:
        """G_{start+1}^{end}: advance a representation from split ``start`` to split ``end``."""
        self.check_split(start)
        self.check_split(end)
        if end < start:
            raise ValueError(f"cannot run backwards from split {start} to {end}")
        for i in range(start, end):
            rep = self.apply_layer(rep, i)
        return rep

    def to_layer(self, z0: torch.Tensor, i: int) -> Representation:
        """G_1^i(z0), with everything later layers need."""
        return self.run(self.initial_representation(z0), 0, i)

    def from_layer(self, rep: Representation, i: int) -> torch.Tensor:
        """G_{i+1}^k(rep): the image generated from a (possibly perturbed) representation."""
        return self.to_image(self.run(rep, i, self.num_layers))

    def forward(self, z0: torch.Tensor) -> torch.Tensor:
        return self.from_layer(self.initial_representation(z0), 0)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def describe(self) -> dict:
        """Identity of the architecture, stored with checkpoints to refuse mismatches."""
        return {"class": type(self).__name__, "latent_shape": list(self.latent_shape),
                "image_shape": list(self.image_shape), "num_layers": self.num_layers}


class SquareImagePrior(LayeredPrior):
    """A generator of ``(img_channels, size, size)`` images from one vector latent z_0 ~ N(0, I) of
    ``latent_dim`` entries, whose split-0 representation is z_0 itself (DCGAN, PGGAN)."""

    latent_dim: int
    img_channels: int
    size: int

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.img_channels, self.size, self.size)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    def initial_representation(self, z0: torch.Tensor) -> Representation:
        if tuple(z0.shape[1:]) != self.latent_shape:
            raise ValueError(f"z0 of shape {tuple(z0.shape)} does not fit {type(self).__name__} "
                             f"(expects (N, {self.latent_dim}))")
        return {"state": z0}
