"""StyleGAN2 training (Karras et al. 2020, rosinality's recipe) on the adversarial core, with RTIL.

What StyleGAN2 adds to :class:`lightning_modules.adversarial.AdversarialModule`: latents through
the mapping network with style mixing (probability ``mixing``), random noise maps, lazy
path-length regularization every ``g_reg_every`` iterations (per RTIL member, with its own
running mean), the non-saturating logistic loss with lazy R1 (``r1``, ``d_reg_every``), and
Gaussianized-W statistics fitted into every saved prior. ``lambda_ = 1`` is vanilla StyleGAN2.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import autograd

from common.errors import UserInputError
from common.precision import float32
from lightning_modules.adversarial import AdversarialModule, RTIL_DEFAULTS
from lightning_modules.vae import plain_config
from priors.base import Representation
from priors.stylegan2 import StyleGAN2Prior


def path_lengths(images: torch.Tensor, w_plus: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """|J_w^T y| per sample for y ~ N(0, I / (H W)) (StyleGAN2's path-length statistic)."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    noise = noise / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = autograd.grad((images * noise).sum(), w_plus, create_graph=True)
    return grad.pow(2).sum(2).mean(1).sqrt()


class GANModule(AdversarialModule):
    """StyleGAN2 generator/discriminator training; ``self.prior`` is the EMA generator (what gets exported)."""

    def __init__(self, prior: dict, discriminator: dict, lr: float = 0.002, betas: Sequence[float] = (0.0, 0.99),
                 r1: float = 10.0, d_reg_every: int = 16, path_regularize: float = 2.0, path_batch_shrink: int = 2,
                 path_decay: float = 0.01, g_reg_every: int = 4, mixing: float = 0.9, ema_kimg: float = 10.0,
                 rtil: dict | None = None, sample_every_n_steps: int = 1000, num_samples: int = 32, seed: int = 0,
                 channels_last: bool = False):
        if d_reg_every < 1 or g_reg_every < 1 or path_batch_shrink < 1:
            raise UserInputError("d_reg_every, g_reg_every and path_batch_shrink must be >= 1")
        loss = {"_target_": "lightning_modules.losses.Logistic", "r1": float(r1), "reg_every": int(d_reg_every)}
        super().__init__(prior, discriminator, loss, lr, betas, ema_kimg, rtil, sample_every_n_steps, num_samples, seed,
                         channels_last=channels_last)
        self.save_hyperparameters({  # the StyleGAN2 signature (Lightning checkpoints rebuild the module from it)
            "prior": plain_config(prior), "discriminator": plain_config(discriminator), "lr": float(lr),
            "betas": [float(b) for b in betas], "r1": float(r1), "d_reg_every": int(d_reg_every),
            "path_regularize": float(path_regularize), "path_batch_shrink": int(path_batch_shrink),
            "path_decay": float(path_decay), "g_reg_every": int(g_reg_every), "mixing": float(mixing),
            "ema_kimg": float(ema_kimg), "rtil": {**RTIL_DEFAULTS, **plain_config(rtil or {})},
            "sample_every_n_steps": int(sample_every_n_steps), "num_samples": int(num_samples), "seed": int(seed),
            "channels_last": bool(channels_last)})
        self.g_reg_every = int(g_reg_every)
        self.register_buffer("mean_path_length", torch.zeros(len(self.members)))

    # -- StyleGAN2 latents -----------------------------------------------------------------------
    def fixed_latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.generator.style_dim, generator=generator)  # z of the mapping network

    def sample_representation(self, gen: StyleGAN2Prior) -> Representation:
        return gen.initial_representation(gen.w_to_latent(gen.broadcast_w(gen.mapping(self.sample_z))))

    def sample_w_plus(self, gen: StyleGAN2Prior, n: int) -> torch.Tensor:
        """W+ (n, n_latent, style_dim) with style mixing: two mapped codes switched at a random index."""
        py_rng = self._generators()[1]
        if self.hparams.mixing > 0 and py_rng.random() < self.hparams.mixing:
            w1, w2 = gen.mapping(self._randn(2 * n, gen.style_dim)).chunk(2)
            cut = py_rng.randint(1, gen.n_latent - 1)
            return torch.cat([gen.broadcast_w(w1)[:, :cut], gen.broadcast_w(w2)[:, cut:]], 1)
        return gen.broadcast_w(gen.mapping(self._randn(n, gen.style_dim)))

    def w_plus_representation(self, gen: StyleGAN2Prior, w_plus: torch.Tensor, fixed_noise: bool = False):
        return gen.initial_representation(gen.w_to_latent(w_plus), randomize_noise=not fixed_noise,
                                          generator=self._generators()[0])

    def latent_representation(self, gen: StyleGAN2Prior, n: int) -> Representation:
        return self.w_plus_representation(gen, self.sample_w_plus(gen, n))

    def generate(self, gen: StyleGAN2Prior, w_plus: torch.Tensor, k: int, fixed_noise: bool = False) -> torch.Tensor:
        """G̃_k(w_plus): images in [-1, 1] with N(0, sigma²) added to ``"state"`` after splits 1..k."""
        return self.family_image(gen, self.w_plus_representation(gen, w_plus, fixed_noise), k, self.training_draw)

    # -- path-length regularization ----------------------------------------------------------------
    def path_length_loss(self, n: int) -> dict[str, torch.Tensor]:
        """Σ_k w_k mean((|J_k^T y| − a_k)²), a_k each member's running mean path length."""
        penalty, anchor, lengths_mean = 0.0, None, 0.0
        new_means = []
        for m, (k, weight) in enumerate(self.members):
            w_plus = self.sample_w_plus(self.generator, n)
            images = self.generate(self.generator, w_plus, k)
            lengths = path_lengths(images, w_plus, self._generators()[0])
            mean = self.mean_path_length[m] + self.hparams.path_decay * (lengths.mean() - self.mean_path_length[m])
            penalty = penalty + weight * (lengths - mean).pow(2).mean()
            new_means.append(mean.detach())
            lengths_mean = lengths_mean + weight * lengths.detach().mean()
            # zero-weight use of the image keeps every generator parameter in the graph (DDP)
            anchor = images[0, 0, 0, 0] if anchor is None else anchor + images[0, 0, 0, 0]
        self.mean_path_length.copy_(torch.stack(new_means))
        return {"loss": penalty, "anchor": anchor, "path_length": lengths_mean}

    def generator_regularization(self, n: int) -> dict[str, torch.Tensor]:
        hp = self.hparams
        with float32(self.device):  # |J^T y| of tiny per-pixel noise: underflows in float16, coarse in bf16
            pl = self.path_length_loss(max(1, n // hp.path_batch_shrink))
        return {"loss": hp.path_regularize * hp.g_reg_every * pl["loss"] + 0 * pl["anchor"], "path_loss": pl["loss"],
                "path_length": pl["path_length"],
                "mean_path_length": sum(w * a for (_, w), a in zip(self.members, self.mean_path_length))}

    # -- export --------------------------------------------------------------------------------------
    def prepare_prior(self) -> None:
        """Fit the EMA generator's Gaussianized-W statistics (saved with checkpoints and exports)."""
        self.prior.fit_latent_statistics()
