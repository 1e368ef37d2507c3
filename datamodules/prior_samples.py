"""Seeded samples of a prior as a dataset: ground truth that lies exactly in the prior's range.

Sample ``i`` of split ``s`` is ``G(z)`` with ``z`` drawn from the prior's latent distribution
by a generator seeded from ``(seed, "prior_samples.<s>", i)`` (common.randomness), generated
on its own (independent of batch size and order) when first asked for and then kept. Used
where no dataset of the prior's domain is at hand (e.g. the pretrained face DCGAN,
docs/DCGAN.md): reconstructions are then scored against the prior's own samples, and the
prior's oracle bound (the best image it can generate) is the ground truth itself.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from common.errors import UserInputError
from common.randomness import sample_generators
from datamodules.base import ImageDataModule


class PriorSampleDataset(Dataset):
    """``{"image": G(z_i), "index": i}`` for ``i < size``."""

    def __init__(self, prior, size: int, seed: int, split: str):
        self.prior, self.size, self.seed, self.stream = prior, int(size), int(seed), f"prior_samples.{split}"
        self.cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for a split of {self.size} samples")
        if index not in self.cache:
            z = self.prior.sample_latent(1, generator=sample_generators(self.seed, self.stream, [index])[0])
            with torch.no_grad():
                self.cache[index] = self.prior(z)[0].cpu()
        return {"image": self.cache[index], "index": index}


class PriorSamplesDataModule(ImageDataModule):
    """Samples of the prior in ``checkpoint`` (any file ``priors.io.load_prior`` reads) as train/val/test splits.

    ``channels``/``image_size`` state what the prior generates (the operator configs read them);
    a prior of another shape is refused.
    """

    def __init__(self, checkpoint: str | None = None, channels: int = 3, image_size: int = 64, seed: int = 0,
                 train_size: int = 10000, val_size: int = 1000, test_size: int = 1000, **kwargs):
        super().__init__(channels=channels, image_size=image_size, val_size=val_size, test_size=test_size, **kwargs)
        if not checkpoint:
            raise UserInputError("data=prior_samples needs the prior to sample: pass data.checkpoint=PATH "
                                 "(in invert.py it defaults to prior.checkpoint)")
        if isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 0:
            raise UserInputError(f"train_size={train_size!r} is invalid; data.train_size must be an integer >= 0")
        self.checkpoint, self.seed, self.train_size = str(checkpoint), int(seed), train_size

    def load_pools(self):
        raise NotImplementedError("prior samples are generated, not loaded: see setup()")

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from priors.io import load_prior

        prior = load_prior(self.checkpoint)
        if tuple(prior.image_shape) != self.image_shape:
            c, h, _ = prior.image_shape
            raise UserInputError(f"prior {self.checkpoint} generates {tuple(prior.image_shape)} images but data.channels/"
                                 f"data.image_size say {self.image_shape}; set data.channels={c} data.image_size={h}")
        self.train_set, self.val_set, self.test_set = (
            PriorSampleDataset(prior, size, self.seed, split)
            for split, size in (("train", self.train_size), ("val", self.val_size), ("test", self.test_size)))
