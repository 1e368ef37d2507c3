"""Training PRILO's learned-initialization encoder (section 2.2, eq. 9) against a frozen prior G.

Every iteration measures the training images, y = A(x) (+ per-sample noise when the
operator has ``noise_std > 0``), renders x̂ = G(E(y)) once, then

* critic step(s) (WGAN-GP, Gulrajani et al. 2017):
  L_D = mean D(x̂) − mean D(x) + λ_gp · mean (‖∇D(x̃)‖₂ − 1)², x̃ = ε x + (1 − ε) x̂, ε ~ U[0, 1] per image;
* encoder step: L_E = MSE(x̂, x) + λ_perc · LPIPS(x̂, x) + λ_adv · (−mean D(x̂)).

G stays frozen (eval mode, no gradients, excluded from Lightning checkpoints and
reloaded from ``prior_checkpoint``); only E and D are optimised. At the end of fit the
encoder is written with the prior and operator it was trained for
(:func:`solvers.learned_init.save_encoder`) to ``<trainer.default_root_dir>/encoder.pt``
and ``export_path``, where ``init=li`` looks by default.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning.pytorch import LightningModule
from torch import autograd
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from common.errors import UserInputError
from common.precision import float32
from common.checkpoint import exportable
from common.instantiate import instantiate
from common.prior_choice import train_command
from common.randomness import per_sample_normal, sample_seed
from evaluation.metrics import LPIPS_MIN_SIZE, lpips_loss, psnr
from lightning_modules.image_logging import log_image_grid
from lightning_modules.vae import plain_config
from priors.io import load_prior
from solvers.learned_init import prior_fingerprint, save_encoder

#: images smaller than the LPIPS backbone accepts (28x28 MNIST for AlexNet) are upsampled to this side
LPIPS_UPSAMPLE_SIZE = 32


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """mean over images of (‖∇_x̃ D(x̃)‖₂ − 1)² at x̃ = eps · real + (1 − eps) · fake (differentiable in D)."""
    with float32(real.device):  # input gradients underflow in float16 (mixed precision)
        mixed = (eps * real.detach().float() + (1 - eps) * fake.detach().float()).requires_grad_(True)
        (grad,) = autograd.grad(critic(mixed).sum().float(), mixed, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def perceptual_loss(x_hat: torch.Tensor, x: torch.Tensor, net: str) -> torch.Tensor:
    """Per-image differentiable LPIPS; images below the backbone's minimum size are bilinearly upsampled
    so their shorter side is :data:`LPIPS_UPSAMPLE_SIZE`."""
    h, w = x.shape[-2:]
    if min(h, w) < LPIPS_MIN_SIZE.get(net, 1):
        scale = LPIPS_UPSAMPLE_SIZE / min(h, w)
        size = (math.ceil(h * scale), math.ceil(w * scale))
        x_hat, x = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (x_hat, x))
    return lpips_loss(x_hat, x, net=net)


class LearnedInitModule(LightningModule):
    """Encoder E_θ: measurements → z_0 of the frozen prior, with a Wasserstein critic D_φ (eq. 9).

    ``operator``, ``encoder`` and ``critic`` are ``_target_`` configs; the encoder gets
    ``measurement_shape`` and ``latent_shape``, the critic ``image_shape`` filled in here.

    ``lambda_adv`` defaults to 1e-3, not the paper's 0.1: with the per-pixel mean MSE on [0, 1]
    images, a gradient-penalised critic's gradient (norm ~1 per image) outweighs the MSE's
    (norm ~2‖x̂ − x‖ / #pixels) at 0.1 and the encoder trades reconstruction for critic score
    (docs/LEARNED_INIT.md has the measurements).
    """

    def __init__(self, prior_checkpoint: str, operator: dict, encoder: dict, critic: dict,
                 lambda_perc: float = 5e-5, lambda_adv: float = 1e-3, lambda_gp: float = 10.0,
                 lpips_net: str = "alex", lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 critic_lr: float = 1e-4, critic_betas: Sequence[float] = (0.0, 0.9), critic_steps: int = 1,
                 export_path: str | None = None, num_logged_images: int = 16, seed: int = 0,
                 overwrite: bool = False, init_default: str | None = None):
        super().__init__()
        # how to publish the export (common.artifacts.publish), not hyperparameters
        self.overwrite, self.init_default = bool(overwrite), init_default
        self.automatic_optimization = False
        weights = {"lambda_perc": lambda_perc, "lambda_adv": lambda_adv, "lambda_gp": lambda_gp, "lr": lr,
                   "critic_lr": critic_lr}
        for key, value in weights.items():
            if not math.isfinite(float(value)) or float(value) < 0:
                raise UserInputError(f"model.module.{key} must be a number >= 0, got {value}")
        if lpips_net not in LPIPS_MIN_SIZE:
            raise UserInputError(f"model.module.lpips_net must be one of {', '.join(LPIPS_MIN_SIZE)}, "
                                 f"got {lpips_net!r}")
        if int(critic_steps) < 1:
            raise UserInputError(f"model.module.critic_steps must be >= 1, got {critic_steps}")
        self.save_hyperparameters({
            "prior_checkpoint": str(prior_checkpoint), "operator": plain_config(operator),
            "encoder": plain_config(encoder), "critic": plain_config(critic),
            **{k: float(v) for k, v in weights.items()}, "lpips_net": lpips_net,
            "betas": [float(b) for b in betas], "critic_betas": [float(b) for b in critic_betas],
            "critic_steps": int(critic_steps), "export_path": None if export_path is None else str(export_path),
            "num_logged_images": int(num_logged_images), "seed": int(seed)})
        if not Path(prior_checkpoint).exists() and (command := train_command(prior_checkpoint)) is not None:
            raise UserInputError(f"the encoder is trained for the prior {prior_checkpoint}, which does not exist: "
                                 f"train it first with `{command}` or pass model.module.prior_checkpoint=FILE")
        self.prior = load_prior(prior_checkpoint)
        self.operator = instantiate(self.hparams.operator)
        if tuple(self.operator.input_shape) != tuple(self.prior.image_shape):
            raise UserInputError(f"operator input_shape {list(self.operator.input_shape)} does not match the prior's "
                                 f"images {list(self.prior.image_shape)}; set model.module.operator.input_shape")
        self.encoder_config = {**self.hparams.encoder, "measurement_shape": list(self.operator.measurement_shape),
                               "latent_shape": list(self.prior.latent_shape)}
        self.encoder = instantiate(exportable(self.encoder_config, "encoder", "model.module.encoder"))
        self.critic = instantiate({**self.hparams.critic, "image_shape": list(self.prior.image_shape)})
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self._rng: torch.Generator | None = None

    def train(self, mode: bool = True):
        super().train(mode)
        self.prior.eval()  # G is frozen, whatever Lightning switches
        return self

    def on_train_start(self) -> None:
        self.train()  # Lightning keeps the modes modules were in; E's normalisation must collect statistics

    # -- measurements and randomness ----------------------------------------------------------------
    def measure(self, x: torch.Tensor, index: Sequence[int], stream: str) -> torch.Tensor:
        """y = A(x) with noise ε from (seed, stream, index) when the operator is noisy."""
        eps = None
        if self.operator.noise_std > 0:
            eps = per_sample_normal(self.operator.measurement_shape, self.hparams.seed, stream, index,
                                    device=x.device, dtype=x.dtype)
        return self.operator.measure(x, eps)

    def _uniform(self, n: int) -> torch.Tensor:
        """Interpolation weights ε ~ U[0, 1], one per image, from a per-(seed, rank) stream."""
        if self._rng is None or self._rng.device != self.device:
            seed = sample_seed(self.hparams.seed, "li_gradient_penalty", self.global_rank)
            self._rng = torch.Generator(device=self.device).manual_seed(seed)
        return torch.rand(n, generator=self._rng, device=self.device)

    # -- losses -----------------------------------------------------------------------------------------
    def critic_losses(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """WGAN-GP critic loss with its parts; ``gradient_penalty`` is the unweighted mean (‖∇D‖ − 1)²."""
        real_score, fake_score = self.critic(real).mean(), self.critic(fake.detach()).mean()
        eps = self._uniform(real.shape[0]).to(real.dtype).view(-1, *[1] * (real.dim() - 1))
        gp = gradient_penalty(self.critic, real, fake, eps)
        return {"loss": fake_score - real_score + self.hparams.lambda_gp * gp, "gradient_penalty": gp,
                "wasserstein": real_score - fake_score}

    def encoder_losses(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. (9) for rendered x̂ = G(E(y)): the total and its unweighted terms (batch means)."""
        hp = self.hparams
        zero = x_hat.new_zeros(())
        terms = {"mse": F.mse_loss(x_hat, x),
                 "perceptual": perceptual_loss(x_hat, x, hp.lpips_net).mean() if hp.lambda_perc > 0 else zero,
                 "adversarial": -self.critic(x_hat).mean() if hp.lambda_adv > 0 else zero}
        loss = terms["mse"] + hp.lambda_perc * terms["perceptual"] + hp.lambda_adv * terms["adversarial"]
        return {"loss": loss, **terms}

    # -- training -----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        return [torch.optim.Adam(self.encoder.parameters(), lr=hp.lr, betas=tuple(hp.betas)),
                torch.optim.Adam(self.critic.parameters(), lr=hp.critic_lr, betas=tuple(hp.critic_betas))]

    def _no_ddp_sync(self):
        # the alternating critic/encoder backward passes do not fit DDP's one-reduction-per-forward
        # hooks; they are switched off and _step all-reduces each optimizer's gradients itself
        model = self.trainer.strategy.model
        return model.no_sync() if isinstance(model, DistributedDataParallel) else contextlib.nullcontext()

    def _step(self, opt, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.trainer.world_size > 1:
            for group in opt.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad = self.trainer.strategy.reduce(p.grad, reduce_op="mean")
        opt.step()

    def training_step(self, batch, batch_idx):
        x, index = batch["image"], batch["index"].tolist()
        encoder_opt, critic_opt = self.optimizers()
        y = self.measure(x, index, f"li_measurement_noise.epoch{self.current_epoch}")
        logs = {}
        with self._no_ddp_sync():
            x_hat = self.prior(self.encoder(y))
            if self.hparams.lambda_adv > 0:
                for _ in range(self.hparams.critic_steps):
                    critic = self.critic_losses(x, x_hat.detach())
                    self._step(critic_opt, critic["loss"])
                logs.update({"critic_loss": critic["loss"], "gradient_penalty": critic["gradient_penalty"],
                             "wasserstein": critic["wasserstein"]})
            self.critic.requires_grad_(False)
            terms = self.encoder_losses(x_hat, x)
            self._step(encoder_opt, terms["loss"])
            self.critic.requires_grad_(True)
        self.iteration += 1
        logs.update(terms)
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=False, on_step=True,
                      on_epoch=True, sync_dist=True, batch_size=x.shape[0])
        if batch_idx == 0:
            self.log_pairs("train/x_vs_G(E(y))", x, x_hat)

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        x, index = batch["image"], batch["index"].tolist()
        y = self.measure(x, index, "li_measurement_noise.val")
        x_hat = self.prior(self.encoder(y))
        metrics = {"mse": F.mse_loss(x_hat, x), "psnr": psnr(x_hat, x).mean(),
                   "measurement_error": self.operator.measurement_error(x_hat, y).mean()}
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, prog_bar=True, sync_dist=True,
                      batch_size=x.shape[0])
        if batch_idx == 0:
            self.log_pairs("val/x_vs_G(E(y))", x, x_hat)

    def log_pairs(self, key: str, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        """Ground truth (top row) over G(E(y)) (bottom row)."""
        n = min(self.hparams.num_logged_images, x.shape[0])
        log_image_grid(self, key, torch.cat([x[:n], x_hat[:n]]), nrow=n)

    # -- checkpoints and export -----------------------------------------------------------------------
    #: state-dict prefixes that Lightning checkpoints leave out (read by common.checkpoint.check_resume_checkpoint)
    checkpoint_excluded_prefixes = ("prior.",)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Lightning checkpoints leave the frozen prior out (it is reloaded from ``prior_checkpoint``)."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(self.checkpoint_excluded_prefixes)]:
            del state[key]
        checkpoint["prior_fingerprint"] = prior_fingerprint(self.prior)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get("prior_fingerprint") != prior_fingerprint(self.prior):
            raise UserInputError(f"this checkpoint was trained against another prior than "
                                 f"{self.hparams.prior_checkpoint}; resume with the same model.module.prior_checkpoint")
        checkpoint["state_dict"].update({f"prior.{k}": v for k, v in self.prior.state_dict().items()})

    def save_encoder(self, path: str | Path) -> Path:
        extra = {"iterations": int(self.iteration), "epochs": int(self.current_epoch),
                 **{k: v for k, v in self.hparams.items() if isinstance(v, (int, float, str))}}
        return save_encoder(path, self.encoder_config, self.encoder, self.prior, self.hparams.prior_checkpoint,
                            self.operator, extra)

    def on_fit_end(self) -> None:
        """``<run dir>/encoder.pt`` and a copy at ``export_path``, neither replacing an existing file
        unless ``overwrite`` (:func:`common.artifacts.publish`)."""
        from common.artifacts import publish
        from lightning_modules.callbacks import published_message

        if not self.trainer.is_global_zero:
            return
        run_path = Path(self.trainer.default_root_dir) / "encoder.pt"
        tmp = self.save_encoder(run_path.with_name(".encoder.pt.new"))
        try:
            run_written, _ = publish(tmp, run_path)
        finally:
            tmp.unlink()
        print(f"encoder written to {run_written}")
        export = Path(self.hparams.export_path) if self.hparams.export_path else None
        if export is not None and export.resolve() != run_path.resolve():
            written, kept = publish(run_written, export, self.overwrite)
            default = Path(self.init_default) if self.init_default else None
            print(published_message("encoder", written, export, kept, self.overwrite, "init=li", default,
                                    "init.checkpoint"))

    def export_prior(self) -> None:
        """Not a prior: nothing for train.py's ExportPrior callback to write (it skips None)."""
        return None
