"""Publishing a finished artifact (exported prior, LI encoder) without destroying an earlier one.

:func:`publish` copies a file to its destination; when the destination already holds a file it is
kept and the new one gets the first free versioned name ``<stem>.v2<suffix>``, ``.v3`` … (the
destination is claimed with a hard link, so two runs finishing at once cannot take the same name),
unless ``overwrite`` asks to replace it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from common.atomic import temporary_sibling


def versioned(path: Path, version: int) -> Path:
    return path if version == 1 else path.with_name(f"{path.stem}.v{version}{path.suffix}")


def publish(source: str | os.PathLike, destination: str | os.PathLike, overwrite: bool = False) -> tuple[Path, bool]:
    """Copy ``source`` to ``destination`` (or its first free versioned name); returns the path
    written and whether an earlier file at ``destination`` was kept."""
    destination = Path(destination)
    with temporary_sibling(destination) as tmp:
        shutil.copyfile(source, tmp)
        if overwrite:
            os.replace(tmp, destination)
            return destination, False
        version = 1
        while True:
            target = versioned(destination, version)
            try:
                os.link(tmp, target)  # fails if target exists: never replaces
                return target, version > 1
            except FileExistsError:
                version += 1
