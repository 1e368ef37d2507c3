"""Adversarial training of any layered generator, with RTIL (Gunn et al. 2023, eq. 2).

One iteration: a discriminator step (the configured loss; its lazy regularizer every
``loss.reg_every`` iterations), a generator step (plus the architecture's lazy generator
regularizer every ``g_reg_every`` iterations), then the EMA update of ``self.prior``, the
generator that gets exported (parameters averaged, buffers such as batch-norm statistics copied).
Manual optimization; under DDP the module averages gradients itself (one all-reduce per optimizer step).

RTIL: the family G̃_k(z_0, z_1..z_k) adds z_j ~ N(0, σ² I) to the representation's ``"state"``
after the split points j <= k (``rtil.cumulative: true``) or only after split k (``false``,
RTIL section 3.1 with g_0 = the first k layers). Generator and discriminator losses mix G = G̃_0
with weight ``lambda_`` and each k in ``layers`` with ``(1 - lambda_) / len(layers)``; members of
weight zero are never computed, so ``lambda_ = 1`` is exactly vanilla training.
``rtil.family: multicode`` (RTIL section 3.2, mGANprior's family) replaces the noise by
G̃(z^1..z^N) = g1(Σ_k g0(z^k) · α′_k) with α′ ~ Dir_N(1), N = ``rtil.num_codes``, at the one
split point ``rtil.layers: [ℓ]`` (:mod:`priors.multicode`).

What a generator must provide to train here (``model.module.prior``, built with ``_target_``):

* a :class:`priors.base.LayeredPrior`: ``num_layers``, ``latent_shape``, ``image_shape``,
  ``initial_representation(z0)``, ``apply_layer(rep, i)``, ``to_image(rep)`` (images in [0, 1];
  trained as ``2 x - 1``); training latents are N(0, I) of ``latent_shape`` (override
  ``latent_representation`` otherwise); its config (``_target_`` + arguments) rebuilds it (the export);
* a discriminator (``model.module.discriminator``): images in [-1, 1] → one logit/critic value
  per image, shape (N,) or (N, 1);
* a loss (``model.module.loss``): :mod:`lightning_modules.losses`.

``channels_last=True`` stores generator and discriminator convolution weights channels-last and
feeds the discriminator channels-last images (NHWC: the fast layout of bf16/fp16 convolutions on
tensor cores); outputs equal the default layout's to rounding. Subclasses pass it through.
Mixed precision (``trainer.precision=bf16-mixed``/``16-mixed``): Lightning autocasts
``training_step``; logits and losses are float32 and the gradient penalties run in float32
(:mod:`common.precision`).

That is all a plain generator/discriminator pair needs (e.g. DCGAN). Architectures with more
(StyleGAN2's mapping network, style mixing, path length: ``lightning_modules.gan``; progressive
growing: ``lightning_modules.progressive``) subclass and override the hooks
``latent_representation``, ``family_image`` (members act through ``perturb``; ``codes``: latents per sample),
``real_images``, ``discriminate``,
``generator_regularization``, ``fixed_latents``/``sample_representation``, ``prepare_prior``.
"""
from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Sequence

import torch
from hydra.utils import instantiate
from lightning.pytorch import LightningModule
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.parallel import DistributedDataParallel

from common.checkpoint import exportable
from common.errors import UserInputError
from common.precision import channels_last as to_channels_last
from common.randomness import sample_seed
from lightning_modules.image_logging import log_image_grid
from lightning_modules.vae import plain_config
from priors.base import LayeredPrior, Representation
from priors.multicode import check_multicode, combine_codes, flat_dirichlet

RTIL_DEFAULTS = {"lambda_": 1.0, "sigma": 1.0, "layers": [], "cumulative": True, "family": "noise", "num_codes": 2}
FAMILIES = ("noise", "multicode")


def ema_decay(images_per_step: int, half_life_kimg: float) -> float:
    """Per-step EMA decay whose weight halves every ``half_life_kimg`` thousand images (StyleGAN2)."""
    return 0.5 ** (images_per_step / (half_life_kimg * 1000.0))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay · ema + (1 − decay) · model, for every parameter (buffers are left alone)."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)


@torch.no_grad()
def copy_buffers(ema: torch.nn.Module, model: torch.nn.Module) -> None:
    """Buffers (batch-norm statistics, fixed noise) are not averaged: the EMA generator takes the trained one's."""
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def rtil_members(lambda_: float, layers: Sequence[int] | None, num_layers: int) -> list[tuple[int, float]]:
    """``[(k, weight)]`` of the mixture: k = 0 is G itself, k >= 1 adds noise after split k (and before).

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


def flat_logits(pred: torch.Tensor) -> torch.Tensor:
    """(N,) float32 logits (losses stay float32 under mixed precision)."""
    return pred.reshape(pred.shape[0]).float()


class AdversarialModule(LightningModule):
    """Generator/discriminator training on the layered protocol; ``self.prior`` is the EMA generator."""

    #: lazy generator regularization interval (0: none); subclasses with a regularizer set it
    g_reg_every = 0

    def __init__(self, prior: dict, discriminator: dict, loss: dict, lr: float = 0.002,
                 betas: Sequence[float] = (0.0, 0.99), ema_kimg: float = 10.0, rtil: dict | None = None,
                 sample_every_n_steps: int = 1000, num_samples: int = 32, seed: int = 0,
                 channels_last: bool = False):
        super().__init__()
        self.automatic_optimization = False
        rtil = {**RTIL_DEFAULTS, **plain_config(rtil or {})}
        self.save_hyperparameters({
            "prior": plain_config(prior), "discriminator": plain_config(discriminator), "loss": plain_config(loss),
            "lr": float(lr), "betas": [float(b) for b in betas], "ema_kimg": float(ema_kimg), "rtil": rtil,
            "sample_every_n_steps": int(sample_every_n_steps), "num_samples": int(num_samples), "seed": int(seed),
            "channels_last": bool(channels_last)})
        if rtil["sigma"] < 0:
            raise UserInputError(f"rtil.sigma must be >= 0, got {rtil['sigma']}")
        if sample_every_n_steps < 1:
            raise UserInputError(f"sample_every_n_steps must be >= 1, got {sample_every_n_steps}")
        self.generator: LayeredPrior = instantiate(exportable(prior, "prior", "model.module.prior"))
        self.discriminator: torch.nn.Module = instantiate(discriminator)
        self.loss = instantiate(loss)
        if channels_last:
            to_channels_last(self.generator)
            to_channels_last(self.discriminator)
        self.prior: LayeredPrior = copy.deepcopy(self.generator).requires_grad_(False)
        self.members = rtil_members(float(rtil["lambda_"]), rtil["layers"], self.generator.num_layers)
        self.sigma, self.cumulative = float(rtil["sigma"]), bool(rtil["cumulative"])
        self.family, self.num_codes = rtil["family"], rtil["num_codes"]
        if self.family not in FAMILIES:
            raise UserInputError(f"rtil.family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.family == "multicode":
            if rtil["layers"] is None or len(rtil["layers"]) != 1:
                raise UserInputError(f"rtil.family=multicode mixes codes at one split point: set rtil.layers=[l], "
                                     f"got {rtil['layers']}")
            check_multicode(self.generator, self.num_codes, rtil["layers"][0], "rtil.num_codes / rtil.layers")
        # iteration counter for lazy regularization (trainer.global_step counts every optimizer step)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.register_buffer("sample_z", self.fixed_latents(num_samples, torch.Generator().manual_seed(seed)))
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

    # -- hooks: generation -------------------------------------------------------------------------
    def fixed_latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The fixed latents of the sample grids (buffer ``sample_z``)."""
        return torch.randn((n, *self.generator.latent_shape), generator=generator)

    def sample_representation(self, gen: LayeredPrior) -> Representation:
        return gen.initial_representation(self.sample_z)

    def latent_representation(self, gen: LayeredPrior, n: int) -> Representation:
        """A fresh split-0 representation for training."""
        return gen.initial_representation(self._randn(n, *gen.latent_shape))

    def noise_splits(self, k: int) -> list[int]:
        """The split points where member k adds noise."""
        return list(range(1, k + 1)) if self.cumulative else ([k] if k else [])

    def member_splits(self, k: int) -> list[int]:
        """The split points where member k perturbs the representation (multicode: where it mixes)."""
        if self.family == "multicode":
            return [k] if self.codes(k) > 1 else []
        return self.noise_splits(k)

    def codes(self, k: int) -> int:
        """Latent codes per sample member k reads: N for the multicode family, else 1."""
        return self.num_codes if self.family == "multicode" and k else 1

    def perturb(self, rep: Representation, j: int, k: int,
                draw: Callable[[torch.Tensor], torch.Tensor]) -> Representation:
        """Member k's change of the representation after split j (noise, or the Dirichlet mixture of codes)."""
        if j not in self.member_splits(k):
            return rep
        if self.family == "multicode":
            n = rep["state"].shape[0] // self.num_codes
            return combine_codes(rep, flat_dirichlet(n, self.num_codes, draw, like=rep["state"]))
        return {**rep, "state": rep["state"] + self.sigma * draw(rep["state"])}

    def family_image(self, gen: LayeredPrior, rep: Representation, k: int,
                     draw: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """G̃_k from a split-0 representation (``codes(k)`` rows per sample), images in [-1, 1];
        ``draw(t)``: standard normals shaped like t."""
        splits = self.member_splits(k)
        last = splits[-1] if splits else 0
        for j in range(1, last + 1):
            rep = self.perturb(gen.run(rep, j - 1, j), j, k, draw)
        return gen.from_layer(rep, last) * 2 - 1

    def training_draw(self, t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=self._generators()[0], device=t.device, dtype=t.dtype)

    def fakes(self, n: int) -> list[tuple[int, float, torch.Tensor]]:
        """``[(k, weight, images)]``: one batch per mixture member, each from its own latents."""
        return [(k, w, self.family_image(self.generator, self.latent_representation(self.generator, n * self.codes(k)),
                                         k, self.training_draw)) for k, w in self.members]

    # -- hooks: discriminator side -----------------------------------------------------------------
    def real_images(self, batch: dict) -> torch.Tensor:
        """Training images in [-1, 1] as the discriminator sees them."""
        return batch["image"] * 2 - 1

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        return flat_logits(self.discriminator(images))

    def generator_regularization(self, n: int) -> dict[str, torch.Tensor]:
        """``{"loss": …, logs…}`` of a lazy generator regularizer, run every ``g_reg_every`` iterations."""
        raise NotImplementedError

    # -- losses ------------------------------------------------------------------------------------
    def discriminator_loss(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fakes = [(w, img) for _, w, img in self.fakes(real.shape[0])]
        return self.loss.discriminator_loss(self.discriminate, real, fakes, self._generators()[0])

    def generator_loss(self, n: int) -> dict[str, torch.Tensor]:
        losses = {k: self.loss.generator_loss(self.discriminate(img)) for k, _, img in self.fakes(n)}
        total = sum(w * losses[k] for k, w in self.members)
        return {"loss": total, **{f"k{k}": v for k, v in losses.items()}}

    # -- training ------------------------------------------------------------------------------------
    def configure_optimizers(self):
        def adam(params, reg_every):  # lazy regularization correction of StyleGAN2 (none without one)
            ratio = reg_every / (reg_every + 1) if reg_every else 1.0
            b1, b2 = self.hparams.betas
            return torch.optim.Adam(params, lr=self.hparams.lr * ratio, betas=(b1 ** ratio, b2 ** ratio))

        return [adam(self.generator.parameters(), self.g_reg_every),
                adam(self.discriminator.parameters(), self.loss.reg_every)]

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

    def optimizer_step_on(self, opt, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._average_gradients(opt)
        opt.step()

    def training_step(self, batch, batch_idx):
        with self._no_ddp_sync():
            self.train_iteration(batch)

    def train_iteration(self, batch) -> None:
        g_opt, d_opt = self.optimizers()
        real = self.real_images(batch)
        if self.hparams.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        n, it = real.shape[0], int(self.iteration)

        self.generator.requires_grad_(False)
        self.discriminator.requires_grad_(True)
        d = self.discriminator_loss(real)
        self.optimizer_step_on(d_opt, d["loss"])
        logs = {"d_loss": d.pop("loss"), **d}
        if self.loss.reg_every and it % self.loss.reg_every == 0:
            reg = self.loss.lazy_regularizer(self.discriminate, real)
            self.optimizer_step_on(d_opt, reg.pop("loss"))
            logs.update(reg)

        self.generator.requires_grad_(True)
        self.discriminator.requires_grad_(False)
        g = self.generator_loss(n)
        self.optimizer_step_on(g_opt, g["loss"])
        logs.update({"g_loss": g.pop("loss"), **{f"g_loss/{k}": v for k, v in g.items()}})
        if self.g_reg_every and it % self.g_reg_every == 0:
            reg = self.generator_regularization(max(1, n))
            self.optimizer_step_on(g_opt, reg.pop("loss"))
            logs.update(reg)

        ema_update(self.prior, self.generator, ema_decay(n * self.trainer.world_size, self.hparams.ema_kimg))
        copy_buffers(self.prior, self.generator)
        self.iteration += 1
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=False, on_step=True,
                      on_epoch=False, sync_dist=True, batch_size=n)
        if it % self.hparams.sample_every_n_steps == 0 and self.trainer.is_global_zero and self.logger is not None:
            self.log_samples()

    # -- samples and export ------------------------------------------------------------------------
    @torch.no_grad()
    def member_samples(self, k: int) -> torch.Tensor:
        """EMA-generator images in [0, 1] of the fixed ``sample_z`` through member k (fixed RTIL draws)."""
        g = torch.Generator().manual_seed(sample_seed(self.hparams.seed, "rtil_samples", k))
        training = self.prior.training
        self.prior.eval()  # as the exported prior runs (batch-norm statistics, not the grid's batch)
        rep = self.sample_representation(self.prior)
        if self.codes(k) > 1:  # sample i mixes the fixed latents i, i - 1, …: rows sample-major
            rep = {name: torch.stack([v.roll(c, 0) for c in range(self.codes(k))], 1).flatten(0, 1)
                   for name, v in rep.items()}
        images = self.family_image(self.prior, rep, k, lambda t: torch.randn(t.shape, generator=g).to(t))
        self.prior.train(training)
        return ((images + 1) / 2).clamp(0, 1)

    def log_samples(self) -> None:
        for k in sorted({0} | {k for k, _ in self.members}):
            log_image_grid(self, "samples/G" if k == 0 else f"samples/G_tilde_{k}", self.member_samples(k))

    def prepare_prior(self) -> None:
        """Make ``self.prior`` ready for use as a prior before it is saved (e.g. fit latent statistics)."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints carry a usable prior too (``priors.io.load_prior`` reads their ``prior.*``)."""
        self.prepare_prior()
        for name, buf in self.prior.named_buffers():
            checkpoint["state_dict"][f"prior.{name}"] = buf.detach().clone()

    def export_prior(self) -> dict:
        self.prepare_prior()
        return {"prior_config": self.hparams.prior, "state_dict": self.prior.state_dict(),
                "extra": {"iteration": int(self.iteration), "rtil": dict(self.hparams.rtil),
                          "members": [list(m) for m in self.members]}}
