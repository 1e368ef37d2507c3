"""CelebA (Liu et al., 2015): the aligned 178×218 JPEGs, center-cropped to 108×108 and
resized to 64×64 by default.

The 108 px center crop then 64 px resize is the DCGAN preprocessing (carpedm20's
DCGAN-tensorflow, ``--input_height=108 --crop``) behind the CelebA generators of Bora et
al. (CSGM), DPR and PRILO ("cropped and rescaled to a resolution of 64×64"); the crop
window is rows 55–162, columns 35–142. ``crop_size=140`` gives the other common crop.

Layouts found under ``root``: ``<root>/img_align_celeba/`` or ``<root>/celeba/img_align_celeba/``
(torchvision's), the images possibly one folder deeper (Kaggle's copy). The official
partition (``list_eval_partition.txt`` or Kaggle's ``.csv`` next to the image folder:
162,770 train / 19,867 val / 19,962 test) is used when present; otherwise train/val/test
are carved with ``split_seed``.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import UserInputError
from datamodules.base import ImageDataModule, resolve_root
from datamodules.image_files import ImageFiles, scan_images

IMAGE_FOLDER = "img_align_celeba"
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")
PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def read_partition(path: Path) -> dict[str, str]:
    """``{file name: split}`` from CelebA's partition list (space- or comma-separated)."""
    out = {}
    for line in path.read_text().splitlines():
        fields = line.replace(",", " ").split()
        if len(fields) == 2 and fields[1] in PARTITIONS:
            out[fields[0]] = PARTITIONS[fields[1]]
    if not out:
        raise UserInputError(f"{path} lists no '<image> <0|1|2>' lines; replace it with CelebA's list_eval_partition.txt")
    return out


class CelebADataModule(ImageDataModule):
    """CelebA aligned faces; see the module docstring for crop, layouts and splits."""

    def __init__(
        self,
        root: str | os.PathLike = "data/celeba",
        channels: int = 3,
        image_size: int = 64,
        crop_size: int | None = 108,
        download: bool = False,
        **kwargs,
    ):
        super().__init__(channels=channels, image_size=image_size, crop_size=crop_size, **kwargs)
        self.root = root
        self.download = bool(download)

    def locate(self, root: Path) -> Path | None:
        """The folder holding ``img_align_celeba/`` (``root`` or ``root/celeba``)."""
        return next((base for base in (root, root / "celeba") if (base / IMAGE_FOLDER).is_dir()), None)

    def prepare_data(self) -> None:
        root = resolve_root(self.root)
        if not self.download or self.locate(root) is not None:
            return
        import torchvision

        try:
            torchvision.datasets.CelebA(str(root), split="all", download=True)
        except (OSError, RuntimeError) as err:
            raise UserInputError(
                f"downloading CelebA to {root} failed ({err}); copy img_align_celeba/ and "
                "list_eval_partition.txt there yourself and set data.download=false"
            ) from err

    def load_pools(self) -> dict[str, ImageFiles]:
        root = resolve_root(self.root)
        base = self.locate(root)
        if base is None:
            raise UserInputError(
                f"dataset root {root} has no {IMAGE_FOLDER}/ folder (nor celeba/{IMAGE_FOLDER}/); "
                "pass data.root=<folder containing img_align_celeba> or data.download=true"
            )
        files = scan_images(base / IMAGE_FOLDER)
        partition_file = next((base / n for n in PARTITION_FILES if (base / n).is_file()), None)
        if partition_file is None:
            return {"train": files}
        partition = read_partition(partition_file)
        pools = {split: [] for split in PARTITIONS.values()}
        for path in files.paths:
            if path.name in partition:
                pools[partition[path.name]].append(path)
        empty = [split for split, paths in pools.items() if not paths]
        if empty:
            raise UserInputError(
                f"no image in {base / IMAGE_FOLDER} belongs to the {'/'.join(empty)} partition of {partition_file}; "
                "copy the complete img_align_celeba/ folder or remove the partition file to carve seeded splits"
            )
        return {split: ImageFiles(paths) for split, paths in pools.items()}
