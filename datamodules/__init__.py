"""Datamodules: every dataset as a LightningDataModule serving
``{"image": float32 (B, C, H, W) in [0, 1], "index": int64 (B,)}`` batches."""
from datamodules.base import ImageDataModule, ImageDataset, carve_splits
from datamodules.celeba import CelebADataModule
from datamodules.idx_datamodules import EMNISTDataModule, FashionMNISTDataModule, IdxDataModule, MNISTDataModule
from datamodules.image_folder import FFHQDataModule, ImageFolderDataModule
from datamodules.mnist_embedded import EmbeddedMNISTDataModule
from datamodules.prior_samples import PriorSamplesDataModule
from datamodules.transforms import ImageTransform

__all__ = [
    "CelebADataModule",
    "EMNISTDataModule",
    "EmbeddedMNISTDataModule",
    "FFHQDataModule",
    "FashionMNISTDataModule",
    "IdxDataModule",
    "ImageDataModule",
    "ImageDataset",
    "ImageFolderDataModule",
    "ImageTransform",
    "MNISTDataModule",
    "PriorSamplesDataModule",
    "carve_splits",
]
