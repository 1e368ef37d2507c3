"""Adversarial losses, chosen per model by config (``model.module.loss._target_``).

Each loss maps discriminator outputs (logits / critic values, shape (N,) or (N, 1)) of real
images and of the generator family to scalars. ``fakes`` is ``[(weight, images)]``, one entry per
RTIL mixture member (weights sum to one), so every loss is the λ-mixture of RTIL eq. 2.

* :class:`Logistic`: non-saturating logistic loss with lazy R1 every ``reg_every`` iterations (StyleGAN2);
* :class:`BCE`: the DCGAN tutorial's ``BCEWithLogits`` with labels 1 (real) / 0 (fake) and 1 for the
  generator: the same function as :class:`Logistic` without R1;
* :class:`WGANGP`: Wasserstein loss, gradient penalty on real/fake interpolates and drift
  ε·E[D(x)²] (Progressive GAN, ε = 0.001).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import autograd
from torch.nn import functional as F

from common.errors import UserInputError

Critic = Callable[[torch.Tensor], torch.Tensor]
Fakes = Sequence[tuple[float, torch.Tensor]]


def r1_penalty(real_pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E |∇_x D(x)|² on real images (``real`` must require grad)."""
    (grad,) = autograd.grad(real_pred.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def mixture_scores(discriminate: Critic, real: torch.Tensor, fakes: Fakes):
    real_pred = discriminate(real)
    fake_preds = [(w, discriminate(img)) for w, img in fakes]
    fake_score = sum(w * p.mean() for w, p in fake_preds)
    return real_pred, fake_preds, {"real_score": real_pred.mean(), "fake_score": fake_score}


class Logistic:
    """softplus(−D(x)) + Σ_k w_k softplus(D(G̃_k)) for D; softplus(−D(G̃_k)) for G; lazy R1 (γ = ``r1``)."""

    def __init__(self, r1: float = 10.0, reg_every: int = 16):
        if r1 < 0 or reg_every < 0:
            raise UserInputError(f"loss r1={r1} and reg_every={reg_every} must be >= 0")
        self.r1 = float(r1)
        self.reg_every = int(reg_every) if r1 > 0 else 0  # 0: no lazy regularizer

    def discriminator_loss(self, discriminate: Critic, real: torch.Tensor, fakes: Fakes,
                           generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        real_pred, fake_preds, logs = mixture_scores(discriminate, real, fakes)
        loss = F.softplus(-real_pred).mean() + sum(w * F.softplus(p).mean() for w, p in fake_preds)
        return {"loss": loss, **logs}

    def generator_loss(self, fake_pred: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_pred).mean()

    def lazy_regularizer(self, discriminate: Critic, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """R1 step of lazy regularization: γ/2 · E|∇D(x)|² · reg_every."""
        real_leaf = real.detach().requires_grad_(True)
        real_pred = discriminate(real_leaf)
        r1 = r1_penalty(real_pred, real_leaf)
        # zero-weight use of the prediction keeps every discriminator parameter in the graph (DDP)
        return {"loss": self.r1 / 2 * r1 * self.reg_every + 0 * real_pred.flatten()[0], "r1": r1}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(r1={self.r1}, reg_every={self.reg_every})"


class BCE(Logistic):
    """DCGAN (Radford et al.; the PyTorch tutorial): binary cross-entropy on logits, no regularizer."""

    def __init__(self):
        super().__init__(r1=0.0, reg_every=0)

    def __repr__(self) -> str:
        return "BCE()"


class WGANGP:
    """E D(G̃) − E D(x) + ``gp`` · E(|∇D(x̂)| − 1)² + ``drift`` · E D(x)²; G: −E D(G̃).

    x̂ = u x + (1 − u) G̃_k with u ~ U[0, 1] per sample, penalised per member with its weight.
    """

    reg_every = 0

    def __init__(self, gp: float = 10.0, drift: float = 0.001):
        if gp < 0 or drift < 0:
            raise UserInputError(f"loss gp={gp} and drift={drift} must be >= 0")
        self.gp, self.drift = float(gp), float(drift)

    def discriminator_loss(self, discriminate: Critic, real: torch.Tensor, fakes: Fakes,
                           generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        real_pred, fake_preds, logs = mixture_scores(discriminate, real, fakes)
        loss = logs["fake_score"] - real_pred.mean() + self.drift * real_pred.pow(2).mean()
        penalty = 0.0
        for w, fake in fakes:
            u = torch.rand((real.shape[0], 1, 1, 1), generator=generator, device=real.device, dtype=real.dtype)
            mixed = (u * real.detach() + (1 - u) * fake.detach()).requires_grad_(True)
            (grad,) = autograd.grad(discriminate(mixed).sum(), mixed, create_graph=True)
            penalty = penalty + w * (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return {"loss": loss + self.gp * penalty, "gradient_penalty": penalty, **logs}

    def generator_loss(self, fake_pred: torch.Tensor) -> torch.Tensor:
        return -fake_pred.mean()

    def __repr__(self) -> str:
        return f"WGANGP(gp={self.gp}, drift={self.drift})"
