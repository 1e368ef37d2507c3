"""Image grids to whatever logger a run uses: W&B images, or PNG files next to CSV logs."""
from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import WandbLogger
from torchvision.utils import make_grid

from common.atomic import save_image


@torch.no_grad()
def log_image_grid(module: LightningModule, key: str, images: torch.Tensor, nrow: int = 8) -> None:
    """Log images (N, C, H, W) in [0, 1] as one grid under ``key`` (rank zero only)."""
    if module.trainer is None or not module.trainer.is_global_zero or module.logger is None:
        return
    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=1.0)
    step = module.global_step
    for logger in module.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[grid], step=step)
        elif logger.log_dir is not None:
            path = Path(logger.log_dir) / "images" / f"{key.replace('/', '_')}_step{step:07d}.png"
            save_image(grid, path)
