"""Writing files atomically: a temporary file in the destination's folder, then ``os.replace``.

A reader, or a run interrupted mid-write, sees either the previous file or the complete new one, never
a partial one. Every result, export, measurement file and cache the project writes goes through here
(:func:`atomic_open` and its shorthands for bytes, text, JSON, ``torch.save`` and PNG images).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def temporary_sibling(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path ``.<name>.<random>.tmp`` next to ``path`` (its folder is created);
    removed on leaving unless it was moved away."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and caches are shared like any file
    try:
        yield Path(tmp)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temporary sibling of ``path``; it replaces ``path`` only if the block succeeds."""
    with temporary_sibling(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj, **dump_kwargs) -> Path:
    """``obj`` as indented JSON with a final newline (``dump_kwargs`` go to ``json.dump``)."""
    with atomic_open(path) as f:
        json.dump(obj, f, **{"indent": 2, **dump_kwargs})
        f.write("\n")
    return Path(path)


def torch_save(obj, path: str | os.PathLike) -> Path:
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def save_image(images, path: str | os.PathLike, **kwargs) -> Path:
    """``torchvision.utils.save_image`` (a grid of ``images``, or one image) as a PNG file."""
    from torchvision.utils import save_image as torchvision_save_image

    with atomic_open(path, "wb") as f:
        torchvision_save_image(images, f, format="png", **kwargs)
    return Path(path)
