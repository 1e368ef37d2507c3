"""Measurement files (``python invert.py save_measurements=true``): y, sample indices, and the operator.

Everything is checked before any solving: a file that would give wrong or ambiguous results
(duplicate or negative indices, counts that disagree, measurements the operator cannot produce)
is refused with one line.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import torch

from common.checkpoint import checkpoint_format, describe_format, read_checkpoint
from common.errors import UserInputError
from operators.base import ForwardOperator
from operators.registry import operator_from_state


def load_measurement_file(path: str | os.PathLike, operator: ForwardOperator) -> tuple[list[dict], ForwardOperator]:
    """(samples ``{"measurement", "index"}``, the operator rebuilt from the file); ``operator`` is the
    configured one, which must agree with the file's on name and input shape."""
    path = Path(path)
    where = f"measurement file {path}"
    record = read_checkpoint(path, "measurement file", "write one with `python invert.py save_measurements=true`")
    if checkpoint_format(record) != "measurements":
        raise UserInputError(f"{where} is {describe_format(record)}; a measurement file holds y, index and "
                             f"operator {{spec, state_dict}} as written by save_measurements=true")
    y, index, stored = record["y"], record["index"], record["operator"]
    if not isinstance(y, torch.Tensor) or not (y.is_floating_point() or y.is_complex()) or y.dim() < 2:
        raise UserInputError(f"{where}: y must be a float tensor (N, *measurement_shape)")
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype.is_floating_point or index.is_complex():
        raise UserInputError(f"{where}: index must be a 1-D integer tensor with one sample index per measurement")
    if y.shape[0] != index.shape[0]:
        raise UserInputError(f"{where} holds {y.shape[0]} measurements but {index.shape[0]} indices")
    if index.numel() == 0:
        raise UserInputError(f"{where} holds no measurements")
    if (index < 0).any():
        raise UserInputError(f"{where} has negative sample indices (e.g. {int(index[index < 0][0])}); "
                             f"indices name samples and must be >= 0")
    repeated = {i: n for i, n in Counter(index.tolist()).items() if n > 1}
    if repeated:
        first = sorted(repeated)[:3]
        raise UserInputError(f"{where} has duplicate sample indices ({len(repeated)} repeated, e.g. "
                             f"{', '.join(f'{i} x{repeated[i]}' for i in first)}); each measurement needs its own "
                             f"index: fix the file's index tensor")
    spec = stored.get("spec") if isinstance(stored, dict) else None
    if not isinstance(spec, dict):
        raise UserInputError(f"{where}: operator must be {{spec, state_dict}} as written by save_measurements=true")
    configured = operator.spec()
    mismatch = {k: (spec.get(k), v) for k, v in configured.items() if k in ("name", "input_shape") and spec.get(k) != v}
    if mismatch:
        raise UserInputError(f"{where} was taken with operator parameters {mismatch} (file, config) "
                             f"that do not match the configured operator; set operator=/data= to match the file")
    file_operator = operator_from_state(stored)
    file_operator.check_measurements(y)
    return [{"measurement": y[i], "index": int(index[i])} for i in range(len(index))], file_operator
