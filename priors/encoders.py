"""Networks of PRILO's learned initialization (section 2.2): encoders E(y) → z_0 and the WGAN-GP critic.

Encoders take measurements ``y`` (N, *measurement_shape) and return latents
(N, *latent_shape). Their input normalisation is part of the network
(:class:`MagnitudeNormalization`): ``log1p`` compresses the dynamic range of magnitudes
(the DC term of a Fourier transform is orders of magnitude above the rest), then every
entry is standardised with the mean and variance of all training measurements (running
moments stored in the state dict), so inversion uses the training-set statistics.

Critics score images in [0, 1] (no normalisation layers: the gradient penalty is taken
per sample, which batch statistics would couple).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from common.errors import UserInputError


def _shape(values, what: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in values)
    if not shape or any(s <= 0 for s in shape):
        raise UserInputError(f"{what} must be positive sizes, got {list(shape)}")
    return shape


def _mlp(sizes: Sequence[int], activation) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MagnitudeNormalization(nn.Module):
    """y ↦ (log1p(max(y, 0)) − mean) / std per measurement entry, with the mean and variance of every
    training measurement seen so far (updated in training mode before normalising, exact running
    moments, stored in the state dict). Unlike batch normalisation a sample's output never depends on
    the other samples of its batch at inference, and batches of one work.

    ``fftshift`` moves the zero frequency of 2-D Fourier magnitudes to the centre first, so
    neighbouring frequencies are neighbouring pixels for a convolutional encoder.
    """

    def __init__(self, measurement_shape: Sequence[int], fftshift: bool = False, eps: float = 1e-5):
        super().__init__()
        self.measurement_shape = _shape(measurement_shape, "measurement_shape")
        if fftshift and len(self.measurement_shape) < 2:
            raise UserInputError(f"fftshift needs 2-D measurements, got shape {list(self.measurement_shape)}")
        self.fftshift = bool(fftshift)
        self.eps = float(eps)
        n = math.prod(self.measurement_shape)
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("var", torch.ones(n))

    @torch.no_grad()
    def update(self, h: torch.Tensor) -> None:
        """Merge a batch (B, n) into the running moments (Chan et al.'s parallel update)."""
        h = h.double()
        b, count, mean = h.shape[0], self.count.item(), self.mean.double()
        total = count + b
        delta = h.mean(0) - mean
        m2 = self.var.double() * count + h.var(0, unbiased=False) * b + delta.pow(2) * count * b / total
        self.mean.copy_(mean + delta * b / total)
        self.var.copy_(m2 / total)
        self.count.fill_(total)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if tuple(y.shape[1:]) != self.measurement_shape:
            raise UserInputError(f"the encoder expects measurements of shape {self.measurement_shape}, got "
                                 f"{tuple(y.shape[1:])}; use the operator it was trained for")
        h = torch.log1p(y.clamp_min(0))
        if self.fftshift:
            h = torch.fft.fftshift(h, dim=(-2, -1))
        h = h.flatten(1)
        if self.training:
            self.update(h)
        return ((h - self.mean) * torch.rsqrt(self.var + self.eps)).view(-1, *self.measurement_shape)


class MLPEncoder(nn.Module):
    """Normalised, flattened measurements → ``hidden`` ReLU layers → linear head to z_0 (small images, any operator)."""

    def __init__(self, measurement_shape: Sequence[int], latent_shape: Sequence[int],
                 hidden: Sequence[int] = (1024, 1024), fftshift: bool = False):
        super().__init__()
        self.latent_shape = _shape(latent_shape, "latent_shape")
        self.normalize = MagnitudeNormalization(measurement_shape, fftshift)
        sizes = [math.prod(self.normalize.measurement_shape), *map(int, hidden), math.prod(self.latent_shape)]
        self.net = _mlp(sizes, nn.ReLU)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(y).flatten(1)).view(-1, *self.latent_shape)


class ConvEncoder(nn.Module):
    """fftshifted, normalised 2-D magnitudes (C, H, W) → strided 4×4 convs (``channels``, each halving H and W,
    LeakyReLU 0.2) → linear head to z_0. For larger images, e.g. 64×64 Fourier magnitudes."""

    def __init__(self, measurement_shape: Sequence[int], latent_shape: Sequence[int],
                 channels: Sequence[int] = (64, 128, 256, 512), fftshift: bool = True):
        super().__init__()
        self.latent_shape = _shape(latent_shape, "latent_shape")
        shape = _shape(measurement_shape, "measurement_shape")
        if len(shape) != 3:
            raise UserInputError(f"ConvEncoder needs image-shaped measurements (C, H, W), got {list(shape)}; "
                                 f"use priors.encoders.MLPEncoder for this operator")
        self.normalize = MagnitudeNormalization(shape, fftshift)
        if min(shape[1:]) < 2 ** len(channels):
            raise UserInputError(f"{len(channels)} stride-2 convolutions need measurements of at least "
                                 f"{2 ** len(channels)} pixels per side, got {shape[1]}x{shape[2]}; use fewer channels")
        layers, c_in = [], shape[0]
        for c_out in map(int, channels):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        h, w = shape[1] >> len(channels), shape[2] >> len(channels)
        self.head = nn.Linear(c_in * h * w, math.prod(self.latent_shape))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(y)).flatten(1)).view(-1, *self.latent_shape)


class MLPCritic(nn.Module):
    """Wasserstein critic on flattened images: ``hidden`` LeakyReLU(0.2) layers → one score per image."""

    def __init__(self, image_shape: Sequence[int], hidden: Sequence[int] = (512, 256)):
        super().__init__()
        self.net = _mlp([math.prod(_shape(image_shape, "image_shape")), *map(int, hidden), 1],
                        lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


class ConvCritic(nn.Module):
    """DCGAN-style Wasserstein critic without normalisation: strided 4×4 convs (LeakyReLU 0.2) → linear score."""

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        c, h, w = _shape(image_shape, "image_shape")
        if min(h, w) < 2 ** len(channels):
            raise UserInputError(f"ConvCritic with {len(channels)} stride-2 convolutions needs images of at least "
                                 f"{2 ** len(channels)} pixels per side, got {h}x{w}; use fewer channels")
        layers, c_in = [], c
        for c_out in map(int, channels):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * (h >> len(channels)) * (w >> len(channels)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)
