"""The shared datamodule: split pools into train/val/test, wrap them, serve dict batches.

A concrete datamodule only says where its images come from (:meth:`ImageDataModule.load_pools`):
a dict with some of the keys ``"train"``, ``"val"``, ``"test"``, each a sequence of uint8
images (a ``(N, H, W[, C])`` array or a lazily decoded :class:`~datamodules.image_files.ImageFiles`).
Splits a dataset does not define are carved out of ``"train"`` with a seeded permutation
(:func:`carve_splits`), so an image folder gets all three, MNIST gets a validation split
next to its official test split, and CelebA with its partition file uses it as is.

Each split's images are then put in a seeded order (:func:`order_split`): the first images of
a split are a fair sample of it, not the first class of a dataset stored sorted by class. Where
the dataset has class labels (:meth:`ImageDataModule.load_labels`) the order is class-balanced
(round robin over the classes), so the first 10·k test digits hold k of each digit.

Batches are ``{"image": float32 (B, C, H, W) in [0, 1], "index": int64 (B,)}``; ``index`` is
the sample's position in its split, stable across runs, batch sizes and devices.
"""
from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common.errors import UserInputError
from datamodules.transforms import ImageTransform, check_size

SPLITS = ("train", "val", "test")


class ImageDataset(Dataset):
    """One split: ``images[source_ids[i]]`` transformed, served as ``{"image", "index": i}``;
    ``labels[i]`` is its class where the dataset has labels (else ``labels`` is None)."""

    def __init__(
        self, images: Sequence, source_ids: np.ndarray, transform: ImageTransform, labels: np.ndarray | None = None
    ):
        self.images = images
        self.source_ids = np.asarray(source_ids, dtype=np.int64)
        self.transform = transform
        self.labels = None if labels is None else np.asarray(labels)[self.source_ids]

    def __len__(self) -> int:
        return len(self.source_ids)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a split of {len(self)} images")
        return {"image": self.transform(self.images[int(self.source_ids[index])]), "index": index}


def carve_splits(n: int, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Seeded disjoint index sets: ``sizes`` (e.g. ``{"test": 500, "val": 500}``) are drawn
    in that order from one permutation of ``range(n)``, ``"train"`` gets the rest; each set
    is sorted. Growing ``val`` leaves ``test`` unchanged when ``test`` comes first."""
    total = sum(sizes.values())
    if total >= n:
        wanted = ", ".join(f"{k}_size={v}" for k, v in sizes.items())
        raise UserInputError(
            f"cannot carve {wanted} out of {n} images and keep any for training; lower data.val_size/data.test_size"
        )
    perm = np.random.default_rng(seed).permutation(n)
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = np.sort(perm[start : start + size])
        start += size
    out["train"] = np.sort(perm[start:])
    return out


def order_split(ids: np.ndarray, labels: np.ndarray | None, seed: int, split: str) -> np.ndarray:
    """``ids`` (a split's members) in a seeded order of their own, independent of the order
    they are stored in. Without labels a uniform permutation; with ``labels`` (one per source
    image) class-balanced: each class's members are permuted and dealt in rounds of one per
    class, each round in a random order (a class that runs out drops out of later rounds).
    The order depends only on ``seed``, the split's name and its members."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    rng = np.random.default_rng([seed, SPLITS.index(split), 0x5EED])
    if labels is None:
        return ids[rng.permutation(len(ids))]
    member_labels = np.asarray(labels)[ids]
    round_of = np.empty(len(ids), dtype=np.int64)
    for label in np.unique(member_labels):
        members = np.flatnonzero(member_labels == label)
        round_of[members[rng.permutation(len(members))]] = np.arange(len(members))
    return ids[np.lexsort((rng.permutation(len(ids)), round_of))]


def resolve_root(root: str | os.PathLike) -> Path:
    """Absolute dataset root; relative roots are taken against the directory the command
    was started from (Hydra's original cwd when a Hydra app runs with ``hydra.job.chdir``)."""
    path = Path(os.path.expandvars(str(root))).expanduser()
    if path.is_absolute():
        return path
    base = Path.cwd()
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.utils import get_original_cwd

        if HydraConfig.initialized():
            base = Path(get_original_cwd())
    except ImportError:
        pass
    return base / path


def require_dir(root: Path, what: str, hint: str) -> Path:
    if not root.is_dir():
        raise UserInputError(f"dataset root {root} does not exist or is not a folder; it should hold {what}; {hint}")
    return root


class ImageDataModule(L.LightningDataModule, abc.ABC):
    """Base of all datamodules; subclasses implement :meth:`load_pools` (and, if they can
    download, :meth:`prepare_data`).

    Args:
        channels: 1 or 3; images are converted (see :class:`ImageTransform`).
        image_size: output height = width in pixels.
        batch_size: per-device batch size of every dataloader.
        num_workers: dataloader worker processes.
        split_seed: seed of the permutation that carves splits a dataset lacks.
        val_size, test_size: sizes of carved validation / test splits (ignored for
            splits the dataset defines itself).
        crop_size: center-crop side before resizing (None: largest centered square).
    """

    #: what the root should contain, for error messages (subclasses with a root set it)
    root_contents = "the dataset files"
    #: images are placed by their centre of mass at the field's centre (MNIST; measured by
    #: benchmarks/fourier_twins.py): lets the Fourier twin rules of solvers/twins.py fix the shift
    mass_centred = False

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        batch_size: int = 64,
        num_workers: int = 0,
        split_seed: int = 0,
        val_size: int = 1000,
        test_size: int = 1000,
        crop_size: int | None = None,
    ):
        super().__init__()
        self.transform = ImageTransform(channels, image_size, crop_size)
        self.batch_size = check_size("batch_size", batch_size)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise UserInputError(f"num_workers={num_workers!r} is invalid; data.num_workers must be an integer >= 0")
        self.num_workers = num_workers
        self.split_seed = int(split_seed)
        for name, value in (("val_size", val_size), ("test_size", test_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserInputError(f"{name}={value!r} is invalid; data.{name} must be an integer >= 0")
        self.val_size, self.test_size = val_size, test_size
        self.train_set: ImageDataset | None = None
        self.val_set: ImageDataset | None = None
        self.test_set: ImageDataset | None = None

    # -- what subclasses provide --------------------------------------------------------
    @abc.abstractmethod
    def load_pools(self) -> dict[str, Sequence]:
        """Image sequences for ``"train"`` and any of ``"val"``/``"test"`` the dataset defines.

        Raise :class:`UserInputError` when the files are missing."""

    def load_labels(self, pools: dict[str, Sequence]) -> dict[str, np.ndarray]:
        """Class labels of ``pools`` (the result of :meth:`load_pools`; same keys and lengths)
        where the dataset has them; used only to order splits class-balanced. Default: none."""
        return {}

    # -- derived ------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return self.transform.channels

    @property
    def image_size(self) -> int:
        return self.transform.image_size

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        pools = self.load_pools()
        labels = self.load_labels(pools)
        missing = {name: size for name, size in (("test", self.test_size), ("val", self.val_size)) if name not in pools}
        members = {name: ("train", ids) for name, ids in carve_splits(len(pools["train"]), missing, self.split_seed).items()}
        members.update({name: (name, np.arange(len(pools[name]))) for name in SPLITS if name not in members})
        sets = {}
        for name, (pool, ids) in members.items():
            pool_labels = labels.get(pool)
            order = order_split(ids, pool_labels, self.split_seed, name)
            sets[name] = ImageDataset(pools[pool], order, self.transform, pool_labels)
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def _loader(self, dataset: ImageDataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before asking for a dataloader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split in index order (what inversion runs iterate over)."""
        return self._loader(self.test_set, shuffle=False)

    def labels(self, name: str) -> np.ndarray:
        """Class labels of split ``name`` in index order; refused for unlabelled datasets."""
        labels = getattr(self.split(name), "labels", None)
        if labels is None:
            raise UserInputError(f"{type(self).__name__} has no class labels; this needs labelled data "
                                 f"such as data=mnist_embedded, mnist, fashion_mnist or emnist")
        return labels

    def split(self, name: str) -> ImageDataset:
        """The dataset of split ``name`` (``"train"``, ``"val"``, ``"test"``, or ``"predict"`` = test)."""
        if name == "predict":
            name = "test"
        if name not in SPLITS:
            raise UserInputError(f"unknown split {name!r}; use one of train, val, test, predict")
        self.setup()
        return getattr(self, f"{name}_set")
