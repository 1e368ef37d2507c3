"""StyleGAN2 training (Karras et al. 2020, rosinality's recipe) with RTIL (Gunn et al. 2023, eq. 2).

One iteration: a discriminator step (logistic loss; lazy R1 every ``d_reg_every``
iterations), a generator step (non-saturating loss; lazy path-length regularization every
``g_reg_every`` iterations), then the EMA generator update. Style mixing with probability
``mixing``; Adam's lr and betas are corrected for lazy regularization as in StyleGAN2.

RTIL for ILO: the family G̃_k(z_0, z_1..z_k) adds z_j ~ N(0, sigma² I) to the representation's
``"state"`` after every split point j <= k. Generator and discriminator losses mix the members
with weight ``lambda_`` for G = G̃_0 and ``(1 - lambda_) / len(layers)`` for each k in ``layers``
(paper: lambda_ = 1/2, sigma = 1, noise up to the 4th block; its code: uniform weights over
k = 0..4, i.e. lambda_ = 1/5). ``lambda_ = 1`` is vanilla StyleGAN2 training.
"""
from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Sequence

import torch
from hydra.utils import instantiate
from lightning.pytorch import LightningModule
from torch import autograd
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from common.checkpoint import exportable
from common.errors import UserInputError
from common.randomness import sample_seed
from lightning_modules.image_logging import log_image_grid
from lightning_modules.vae import plain_config
from priors.stylegan2 import StyleGAN2Prior


def ema_decay(images_per_step: int, half_life_kimg: float) -> float:
    """Per-step EMA decay whose weight halves every ``half_life_kimg`` thousand images (StyleGAN2)."""
    return 0.5 ** (images_per_step / (half_life_kimg * 1000.0))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay · ema + (1 − decay) · model, for every parameter (buffers are left alone)."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)


def rtil_members(lambda_: float, layers: Sequence[int] | None, num_layers: int) -> list[tuple[int, float]]:
    """``[(k, weight)]`` of the mixture: k = 0 is G itself, k >= 1 adds noise after splits 1..k.

    ``layers=None`` means every intermediate split up to the 4th block (RTIL appendix A.1).
    Members of weight zero are dropped, so ``lambda_ = 1`` is exactly vanilla training.
    """
    if not 0.0 <= lambda_ <= 1.0:
        raise UserInputError(f"rtil.lambda_ must be in [0, 1], got {lambda_}")
    top = num_layers - 1  # noise on the image split itself would not change the image
    layers = list(range(1, min(4, top) + 1)) if layers is None else [int(k) for k in layers]
    bad = [k for k in layers if not 1 <= k <= top]
    if bad or len(set(layers)) != len(layers):
        raise UserInputError(f"rtil.layers {layers} must be distinct split points in 1..{top} for this generator "
                             f"({num_layers} layers; the image split {num_layers} cannot be perturbed)")
    if lambda_ < 1 and not layers:
        raise UserInputError(f"rtil.lambda_={lambda_} < 1 needs a family: set rtil.layers (e.g. [1, 2, 3, 4])")
    members = [(0, float(lambda_))] + [(k, (1.0 - lambda_) / len(layers)) for k in sorted(layers)]
    return [(k, w) for k, w in members if w > 0]


def d_logistic_loss(real_pred: torch.Tensor, fake_preds: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """softplus(−D(x)) + Σ_k w_k softplus(D(G̃_k)): eq. 2's discriminator side (weights sum to one)."""
    return F.softplus(-real_pred).mean() + sum(w * F.softplus(p).mean() for w, p in fake_preds)


def r1_penalty(real_pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    (grad,) = autograd.grad(real_pred.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def family_image(gen: StyleGAN2Prior, rep: dict, k: int, sigma: float, draw) -> torch.Tensor:
    """G̃_k from a split-0 representation: ``sigma * draw(state)`` added to ``"state"`` after splits 1..k.

    Images in [0, 1]; ``draw(t)`` returns standard normals shaped like t.
    """
    for j in range(1, k + 1):
        rep = gen.run(rep, j - 1, j)
        rep["state"] = rep["state"] + sigma * draw(rep["state"])
    return gen.from_layer(rep, k)


def path_lengths(images: torch.Tensor, w_plus: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """|J_w^T y| per sample for y ~ N(0, I / (H W)) (StyleGAN2's path-length statistic)."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    noise = noise / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = autograd.grad((images * noise).sum(), w_plus, create_graph=True)
    return grad.pow(2).sum(2).mean(1).sqrt()


class GANModule(LightningModule):
    """StyleGAN2 generator/discriminator training; ``self.prior`` is the EMA generator (what gets exported)."""

    def __init__(self, prior: dict, discriminator: dict, lr: float = 0.002, betas: Sequence[float] = (0.0, 0.99),
                 r1: float = 10.0, d_reg_every: int = 16, path_regularize: float = 2.0, path_batch_shrink: int = 2,
                 path_decay: float = 0.01, g_reg_every: int = 4, mixing: float = 0.9, ema_kimg: float = 10.0,
                 rtil: dict | None = None, sample_every_n_steps: int = 1000, num_samples: int = 32, seed: int = 0):
        super().__init__()
        self.automatic_optimization = False
        rtil = {"lambda_": 1.0, "sigma": 1.0, "layers": [], **plain_config(rtil or {})}
        self.save_hyperparameters({
            "prior": plain_config(prior), "discriminator": plain_config(discriminator), "lr": float(lr),
            "betas": [float(b) for b in betas], "r1": float(r1), "d_reg_every": int(d_reg_every),
            "path_regularize": float(path_regularize), "path_batch_shrink": int(path_batch_shrink),
            "path_decay": float(path_decay), "g_reg_every": int(g_reg_every), "mixing": float(mixing),
            "ema_kimg": float(ema_kimg), "rtil": rtil, "sample_every_n_steps": int(sample_every_n_steps),
            "num_samples": int(num_samples), "seed": int(seed)})
        if d_reg_every < 1 or g_reg_every < 1 or path_batch_shrink < 1:
            raise UserInputError("d_reg_every, g_reg_every and path_batch_shrink must be >= 1")
        if rtil["sigma"] < 0:
            raise UserInputError(f"rtil.sigma must be >= 0, got {rtil['sigma']}")
        self.generator: StyleGAN2Prior = instantiate(exportable(self.hparams.prior, "prior", "model.module.prior"))
        self.discriminator = instantiate(self.hparams.discriminator)
        self.prior: StyleGAN2Prior = copy.deepcopy(self.generator).requires_grad_(False)
        self.members = rtil_members(float(rtil["lambda_"]), rtil["layers"], self.generator.num_layers)
        self.sigma = float(rtil["sigma"])
        # iteration counter for lazy regularization (trainer.global_step counts every optimizer step)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.register_buffer("mean_path_length", torch.zeros(len(self.members)))
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("sample_z", torch.randn(num_samples, self.generator.style_dim, generator=g))
        self._rng: torch.Generator | None = None
        self._py_rng: random.Random | None = None

    # -- randomness: a stream per (seed, rank), so DDP ranks draw different latents ----------------
    def _generators(self) -> tuple[torch.Generator, random.Random]:
        if self._rng is None or self._rng.device != self.device:
            seed = sample_seed(self.hparams.seed, "gan_training", self.global_rank)
            self._rng = torch.Generator(device=self.device).manual_seed(seed)
            self._py_rng = random.Random(seed)
        return self._rng, self._py_rng

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self._generators()[0], device=self.device)

    # -- generation ----------------------------------------------------------------------------
    def sample_w_plus(self, gen: StyleGAN2Prior, n: int) -> torch.Tensor:
        """W+ (n, n_latent, style_dim) with style mixing: two mapped codes switched at a random index."""
        py_rng = self._generators()[1]
        if self.hparams.mixing > 0 and py_rng.random() < self.hparams.mixing:
            w1, w2 = gen.mapping(self._randn(2 * n, gen.style_dim)).chunk(2)
            cut = py_rng.randint(1, gen.n_latent - 1)
            return torch.cat([gen.broadcast_w(w1)[:, :cut], gen.broadcast_w(w2)[:, cut:]], 1)
        return gen.broadcast_w(gen.mapping(self._randn(n, gen.style_dim)))

    def generate(self, gen: StyleGAN2Prior, w_plus: torch.Tensor, k: int, fixed_noise: bool = False) -> torch.Tensor:
        """G̃_k(w_plus): images in [-1, 1] with N(0, sigma²) added to ``"state"`` after splits 1..k."""
        rep = gen.initial_representation(gen.w_to_latent(w_plus), randomize_noise=not fixed_noise,
                                         generator=self._generators()[0])
        return family_image(gen, rep, k, self.sigma, lambda t: self._randn(*t.shape)) * 2 - 1

    def fakes(self, n: int) -> list[tuple[int, float, torch.Tensor]]:
        """``[(k, weight, images)]``: one batch per mixture member, each from its own latents."""
        return [(k, w, self.generate(self.generator, self.sample_w_plus(self.generator, n), k))
                for k, w in self.members]

    # -- losses ------------------------------------------------------------------------------------
    def discriminator_loss(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fakes = self.fakes(real.shape[0])
        real_pred = self.discriminator(real)
        fake_preds = [(w, self.discriminator(img)) for _, w, img in fakes]
        return {"loss": d_logistic_loss(real_pred, fake_preds), "real_score": real_pred.mean(),
                "fake_score": sum(w * p.mean() for w, p in fake_preds)}

    def generator_loss(self, n: int) -> dict[str, torch.Tensor]:
        losses = {k: F.softplus(-self.discriminator(img)).mean() for k, _, img in self.fakes(n)}
        total = sum(w * losses[k] for k, w in self.members)
        return {"loss": total, **{f"k{k}": v for k, v in losses.items()}}

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

    # -- training ------------------------------------------------------------------------------------
    def configure_optimizers(self):
        def adam(params, reg_every):
            ratio = reg_every / (reg_every + 1)
            b1, b2 = self.hparams.betas
            return torch.optim.Adam(params, lr=self.hparams.lr * ratio, betas=(b1 ** ratio, b2 ** ratio))

        return [adam(self.generator.parameters(), self.hparams.g_reg_every),
                adam(self.discriminator.parameters(), self.hparams.d_reg_every)]

    def _no_ddp_sync(self):
        # DDP's reducer expects a gradient for every parameter in every backward, which the
        # alternating G/D steps and lazy regularizers never give: its hooks are switched off and
        # _average_gradients does one all-reduce per optimizer step, whatever the DDP settings.
        model = self.trainer.strategy.model
        return model.no_sync() if isinstance(model, DistributedDataParallel) else contextlib.nullcontext()

    def _average_gradients(self, opt) -> None:
        if self.trainer.world_size == 1:
            return
        params = [p for group in opt.param_groups for p in group["params"]]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self.trainer.strategy.reduce(_flatten_dense_tensors(grads), reduce_op="mean")
        for p, g in zip(params, _unflatten_dense_tensors(flat, grads)):
            p.grad = g

    def _step(self, opt, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._average_gradients(opt)
        opt.step()

    def training_step(self, batch, batch_idx):
        with self._no_ddp_sync():
            self._train_iteration(batch)

    def _train_iteration(self, batch) -> None:
        g_opt, d_opt = self.optimizers()
        hp = self.hparams
        real = batch["image"] * 2 - 1
        n = real.shape[0]
        it = int(self.iteration)
        logs = {}

        self.generator.requires_grad_(False)
        self.discriminator.requires_grad_(True)
        d = self.discriminator_loss(real)
        self._step(d_opt, d["loss"])
        logs.update({"d_loss": d["loss"], "real_score": d["real_score"], "fake_score": d["fake_score"]})
        if it % hp.d_reg_every == 0:
            real_leaf = real.detach().requires_grad_(True)
            real_pred = self.discriminator(real_leaf)
            r1 = r1_penalty(real_pred, real_leaf)
            self._step(d_opt, hp.r1 / 2 * r1 * hp.d_reg_every + 0 * real_pred[0, 0])
            logs["r1"] = r1

        self.generator.requires_grad_(True)
        self.discriminator.requires_grad_(False)
        g = self.generator_loss(n)
        self._step(g_opt, g["loss"])
        logs.update({"g_loss": g.pop("loss"), **{f"g_loss/{k}": v for k, v in g.items()}})
        if it % hp.g_reg_every == 0:
            pl = self.path_length_loss(max(1, n // hp.path_batch_shrink))
            self._step(g_opt, hp.path_regularize * hp.g_reg_every * pl["loss"] + 0 * pl["anchor"])
            logs.update({"path_loss": pl["loss"], "path_length": pl["path_length"],
                         "mean_path_length": sum(w * a for (_, w), a in zip(self.members, self.mean_path_length))})

        ema_update(self.prior, self.generator, ema_decay(n * self.trainer.world_size, hp.ema_kimg))
        self.iteration += 1
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=False, on_step=True,
                      on_epoch=False, sync_dist=True, batch_size=n)
        if it % hp.sample_every_n_steps == 0 and self.trainer.is_global_zero and self.logger is not None:
            self.log_samples()

    @torch.no_grad()
    def member_samples(self, k: int) -> torch.Tensor:
        """EMA-generator images in [0, 1] of the fixed ``sample_z`` through member k (fixed noise maps)."""
        gen = self.prior
        rep = gen.initial_representation(gen.w_to_latent(gen.broadcast_w(gen.mapping(self.sample_z))))
        g = torch.Generator().manual_seed(sample_seed(self.hparams.seed, "rtil_samples", k))
        return family_image(gen, rep, k, self.sigma, lambda t: torch.randn(t.shape, generator=g).to(t)).clamp(0, 1)

    def log_samples(self) -> None:
        for k in sorted({0} | {k for k, _ in self.members}):
            log_image_grid(self, "samples/G" if k == 0 else f"samples/G_tilde_{k}", self.member_samples(k))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints carry a usable prior too: refit the EMA generator's latent statistics into them."""
        self.prior.fit_latent_statistics()
        for name in ("w_gauss_mean", "w_gauss_std", "latent_avg"):
            checkpoint["state_dict"][f"prior.{name}"] = getattr(self.prior, name).detach().clone()

    def export_prior(self) -> dict:
        """The EMA generator with freshly fitted Gaussianized-W statistics."""
        self.prior.fit_latent_statistics()
        return {"prior_config": self.prior.config(), "state_dict": self.prior.state_dict(),
                "extra": {"iteration": int(self.iteration), "rtil": dict(self.hparams.rtil),
                          "members": [list(m) for m in self.members]}}
