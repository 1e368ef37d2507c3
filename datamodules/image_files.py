"""Lazily decoded image files: a sequence of paths whose items are uint8 arrays."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import UserInputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ImageFiles(Sequence):
    """``files[i]`` decodes path i to uint8 ``(H, W)`` (grayscale) or ``(H, W, 3)`` (anything else)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        path = self.paths[i]
        try:
            with Image.open(path) as img:
                if img.mode not in ("L", "RGB"):
                    img = img.convert("L" if img.mode in ("1", "LA") else "RGB")
                return np.array(img, dtype=np.uint8)
        except OSError as err:
            raise UserInputError(f"cannot read image {path} ({err}); remove or replace the file") from err


def scan_images(root: Path) -> ImageFiles:
    """All images below ``root`` (recursively), ordered by their path relative to ``root``."""
    paths = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not paths:
        raise UserInputError(
            f"image folder {root} contains no images ({', '.join(IMAGE_EXTENSIONS)}); "
            "pass data.root=<folder with images>"
        )
    return ImageFiles(paths)
