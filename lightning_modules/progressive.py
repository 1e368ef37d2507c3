"""Progressive growing (Karras et al. 2018) on the adversarial core: PGGAN training with RTIL.

The generator and discriminator are built at their final resolution; the module trains them at
resolution 4·2^level, fading each new block in over ``fade_images`` images (α from 0 to 1) and then
training it for ``stable_images`` images (the first resolution only has the stable phase).
During a fade the generator outputs (1 − α)·up(toRGB_{level−1}) + α·toRGB_level, the discriminator
mixes fromRGB of the 2×-pooled image in the same way, and real images are blended between the two
resolutions (as in the PGGAN code). ``images_seen``, ``level`` and ``alpha`` are buffers: Lightning
checkpoints carry them and a resumed run continues at the same level and α. Real images are
average-pooled to the current resolution inside the module. The exported prior is the EMA generator
at its final resolution (``priors.pggan.PGGANPrior`` on the layered protocol).

RTIL at a level: member k adds noise at its splits that exist at that level (<= level + 1), so with
``layers: [4]`` the family is G alone until the 4th block is trained (the multicode family likewise
mixes codes only once its split exists).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from common.errors import UserInputError
from lightning_modules.adversarial import AdversarialModule, flat_logits
from lightning_modules.vae import plain_config
from priors.base import Representation
from priors.pggan import PGGANPrior


class GrowthSchedule:
    """(level, α) after a number of training images: ``resolutions`` (consecutive doublings, the last
    one the generator's size), ``fade_images`` per fade-in, ``stable_images`` per stable phase."""

    def __init__(self, resolutions: Sequence[int], fade_images: int, stable_images: int, size: int):
        res = [int(r) for r in resolutions]
        if not res or res[-1] != size or res[0] < 4 or any(b != 2 * a for a, b in zip(res, res[1:])) \
                or res[0] & (res[0] - 1):
            example = [4 * 2 ** i for i in range(int(math.log2(size)) - 1)]
            raise UserInputError(f"growing.resolutions {res} must double from a power of two >= 4 up to the "
                                 f"generator's size {size} (data.image_size), e.g. {example}")
        if fade_images < 1 or stable_images < 1:
            raise UserInputError(f"growing.fade_images={fade_images} and stable_images={stable_images} must be >= 1")
        self.levels = [int(math.log2(r)) - 2 for r in res]
        self.fade, self.stable = int(fade_images), int(stable_images)

    def __call__(self, images: int) -> tuple[int, float]:
        t = images - self.stable
        if t < 0:
            return self.levels[0], 1.0
        for level in self.levels[1:]:
            if t < self.fade:
                return level, t / self.fade
            t -= self.fade + self.stable
            if t < 0:
                return level, 1.0
        return self.levels[-1], 1.0


class ProgressiveGANModule(AdversarialModule):
    """PGGAN (WGAN-GP with drift by config) with progressive growing; ``self.prior`` is the EMA generator."""

    def __init__(self, prior: dict, discriminator: dict, loss: dict, growing: dict, lr: float = 0.001,
                 betas: Sequence[float] = (0.0, 0.99), ema_kimg: float = 10.0, rtil: dict | None = None,
                 sample_every_n_steps: int = 1000, num_samples: int = 32, seed: int = 0, channels_last: bool = False):
        super().__init__(prior, discriminator, loss, lr, betas, ema_kimg, rtil, sample_every_n_steps, num_samples, seed,
                         channels_last=channels_last)
        growing = plain_config(growing)
        self.save_hyperparameters({**self.hparams, "growing": growing})
        self.generator: PGGANPrior
        self.schedule = GrowthSchedule(growing["resolutions"], growing["fade_images"], growing["stable_images"],
                                       self.generator.size)
        level, alpha = self.schedule(0)
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("level", torch.tensor(level, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float64))

    @property
    def resolution(self) -> int:
        return 4 * 2 ** int(self.level)

    def training_step(self, batch, batch_idx):
        level, alpha = self.schedule(int(self.images_seen))
        self.level.fill_(level)
        self.alpha.fill_(alpha)
        super().training_step(batch, batch_idx)
        self.images_seen += batch["image"].shape[0] * self.trainer.world_size
        self.log_dict({"train/level": float(level), "train/alpha": alpha}, on_step=True, on_epoch=False,
                      batch_size=batch["image"].shape[0])

    def family_image(self, gen: PGGANPrior, rep: Representation, k: int,
                     draw: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """G̃_k at the current level and α: the blocks up to ``level``, toRGB (faded), noise at k's splits."""
        level, alpha = int(self.level), float(self.alpha)
        previous = None
        for j in range(1, level + 2):
            rep = self.perturb(gen.run(rep, j - 1, j), j, k, draw)
            if j == level:
                previous = rep["state"]
        image = gen.to_rgb[level](rep["state"])
        if alpha < 1:
            image = torch.lerp(F.interpolate(gen.to_rgb[level - 1](previous), scale_factor=2, mode="nearest"),
                               image, alpha)
        return image

    def codes(self, k: int) -> int:
        """The multicode family mixes only once its split exists at the current level and no fade reads the
        unmixed maps before it (G alone before)."""
        level = int(self.level)
        return super().codes(k) if k <= level or (k == level + 1 and float(self.alpha) >= 1) else 1

    def real_images(self, batch: dict) -> torch.Tensor:
        x = batch["image"] * 2 - 1
        factor = x.shape[-1] // self.resolution
        if factor > 1:
            x = F.avg_pool2d(x, factor)
        alpha = float(self.alpha)
        if alpha < 1:
            x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), x, alpha)
        return x

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        return flat_logits(self.discriminator(images, int(self.level), float(self.alpha)))
