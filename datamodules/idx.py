"""Reading IDX files (the MNIST family's format), gzipped or raw, and finding them under a root.

An IDX file is ``00 00 <dtype code> <ndim>`` followed by ``ndim`` big-endian uint32 sizes
and the big-endian data. MNIST, Fashion-MNIST and EMNIST ship their images as
``(N, 28, 28)`` uint8 IDX files named like ``train-images-idx3-ubyte[.gz]``.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from common.atomic import write_bytes
from common.errors import UserInputError

_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

#: how deep below a root :func:`find_idx_file` looks (root/MNIST/raw/<file> is depth 2)
SEARCH_DEPTH = 3


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file; gzip is detected from the content, not the name."""
    path = Path(path)
    with open(path, "rb") as f:
        is_gzip = f.read(2) == _GZIP_MAGIC
    with (gzip.open(path, "rb") if is_gzip else open(path, "rb")) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserInputError(f"{path} is not an IDX file (bad header); point data.root at the original IDX files")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise UserInputError(
            f"{path} is truncated or corrupt ({len(raw)} bytes, header says {expected}); re-download or re-copy it"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``)."""
    codes = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
    array = np.asarray(array)
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    big_endian = array.astype(_DTYPES[code], copy=False)
    payload = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + big_endian.tobytes()
    write_bytes(path, gzip.compress(payload) if str(path).endswith(".gz") else payload)


def _canonical(name: str) -> str:
    # "train-images.idx3-ubyte.gz" (original LeCun naming) and "train-images-idx3-ubyte" match
    return name.removesuffix(".gz").replace(".", "-")


def find_idx_file(root: Path, name: str) -> Path | None:
    """The file called ``name`` (e.g. ``train-images-idx3-ubyte``), with or without ``.gz``,
    in ``root`` or up to :data:`SEARCH_DEPTH` folders below; shallowest first, raw before gz."""
    wanted = _canonical(name)
    root = Path(root)
    level = [root]
    for _ in range(SEARCH_DEPTH + 1):
        hits = sorted(
            (p for d in level for p in d.iterdir() if p.is_file() and _canonical(p.name) == wanted),
            key=lambda p: (p.name.endswith(".gz"), str(p)),
        )
        if hits:
            return hits[0]
        level = sorted(p for d in level for p in d.iterdir() if p.is_dir())
    return None
