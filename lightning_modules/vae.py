"""Training the VAE prior (PRILO appendix A): Bernoulli likelihood, Adam 1e-3."""
from __future__ import annotations

import torch
from hydra.utils import instantiate
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from common.checkpoint import exportable
from lightning_modules.image_logging import log_image_grid
from priors.vae import VAE


def plain_config(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


class VAEModule(LightningModule):
    def __init__(self, prior: dict, lr: float = 1e-3, num_logged_images: int = 32, sample_seed: int = 0):
        super().__init__()
        self.save_hyperparameters({"prior": plain_config(prior), "lr": lr, "num_logged_images": num_logged_images})
        self.prior: VAE = instantiate(exportable(self.hparams.prior, "prior", "model.module.prior"))
        g = torch.Generator().manual_seed(sample_seed)
        self.register_buffer("fixed_latents", torch.randn(num_logged_images, *self.prior.latent_shape, generator=g),
                             persistent=False)

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch means of the negative ELBO's terms (nats per image)."""
        mean, logvar = self.prior.encode(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        logits = self.prior.decode_logits(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)).mean()
        return {"recon": recon, "kl": kl, "loss": recon + kl}

    def training_step(self, batch, batch_idx):
        terms = self.elbo_terms(batch["image"])
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, on_step=True, on_epoch=True,
                      batch_size=batch["image"].shape[0])
        return terms["loss"]

    def validation_step(self, batch, batch_idx):
        terms = self.elbo_terms(batch["image"])
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, prog_bar=False, sync_dist=True,
                      batch_size=batch["image"].shape[0])
        if batch_idx == 0:
            n = self.hparams.num_logged_images
            x = batch["image"][:n]
            mean, _ = self.prior.encode(x)
            log_image_grid(self, "val/reconstructions", torch.cat([x, self.prior(mean)]), nrow=len(x))
            log_image_grid(self, "val/samples", self.prior(self.fixed_latents))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def export_prior(self) -> dict:
        return {"prior_config": self.hparams.prior, "state_dict": self.prior.state_dict(), "extra": {}}
