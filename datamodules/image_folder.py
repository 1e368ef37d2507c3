"""Any folder of images, and FFHQ (a folder of PNGs) at a chosen resolution."""
from __future__ import annotations

import os

from datamodules.base import ImageDataModule, require_dir, resolve_root
from datamodules.image_files import scan_images


class ImageFolderDataModule(ImageDataModule):
    """Every image below ``root`` (recursively, sorted by relative path), center-cropped to a
    square (``crop_size`` or the largest one), resized to ``image_size``; train/val/test are
    carved with ``split_seed`` (``test_size`` and ``val_size`` images, the rest train)."""

    dataset_name = "image folder"

    def __init__(self, root: str | os.PathLike = "data/images", channels: int = 3, image_size: int = 64, **kwargs):
        super().__init__(channels=channels, image_size=image_size, **kwargs)
        self.root = root

    def load_pools(self):
        root = require_dir(
            resolve_root(self.root), f"the {self.dataset_name} images", "pass data.root=<folder with images>"
        )
        return {"train": scan_images(root)}


class FFHQDataModule(ImageFolderDataModule):
    """FFHQ (Karras et al., 2019): the 70,000 aligned 1024² PNGs (or any pre-resized copy,
    e.g. ``images1024x1024/`` or a 256² folder), resized to ``image_size``."""

    dataset_name = "FFHQ"

    def __init__(self, root: str | os.PathLike = "data/ffhq", channels: int = 3, image_size: int = 256, **kwargs):
        super().__init__(root=root, channels=channels, image_size=image_size, **kwargs)
