"""Operators by config name; rebuilding from a spec, and saving/loading with parameters."""
from __future__ import annotations

import os

import torch

from common.atomic import torch_save
from common.checkpoint import check_finite, plain_data, read_checkpoint
from common.errors import UserInputError
from operators.base import ForwardOperator
from operators.circulant import CirculantCompressedSensing
from operators.denoising import Denoising
from operators.fourier import FourierPhaseRetrieval
from operators.gaussian import ComplexGaussianPhaseRetrieval, GaussianCompressedSensing, GaussianPhaseRetrieval
from operators.inpainting import Inpainting
from operators.super_resolution import SuperResolution

OPERATORS: dict[str, type[ForwardOperator]] = {
    cls.name: cls
    for cls in (FourierPhaseRetrieval, GaussianPhaseRetrieval, ComplexGaussianPhaseRetrieval,
                GaussianCompressedSensing, CirculantCompressedSensing, Inpainting, SuperResolution, Denoising)
}


def build_operator(spec: dict, state_dict: dict | None = None) -> ForwardOperator:
    """The operator ``spec["name"]`` (one of :data:`OPERATORS`) with the other spec entries as arguments
    (plain data only); with a ``state_dict`` its buffers are the saved ones (bit-identical A)."""
    if not isinstance(spec, dict):
        raise UserInputError(f"an operator spec must be a dict, got a {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or name not in OPERATORS:
        raise UserInputError(f"unknown operator {name!r}; choose one of {', '.join(OPERATORS)}")
    spec = {k: plain_data(v, f"operator {name}: argument {k}") for k, v in spec.items()}
    if state_dict is not None:
        if not isinstance(state_dict, dict) or not all(isinstance(t, torch.Tensor) for t in state_dict.values()):
            raise UserInputError(f"saved parameters of operator {name} must be a dict of tensors")
        check_finite(state_dict, f"saved operator {name}")
    return OPERATORS[name].from_spec(spec, state_dict)


def operator_state(op: ForwardOperator) -> dict:
    """A weights_only-loadable dict (plain types and CPU tensors) that rebuilds ``op``."""
    return {"spec": op.spec(), "state_dict": {k: v.detach().cpu() for k, v in op.state_dict().items()}}


def operator_from_state(state: dict) -> ForwardOperator:
    if not isinstance(state, dict) or "spec" not in state or "state_dict" not in state:
        raise UserInputError("not a saved operator (expected keys 'spec' and 'state_dict')")
    return build_operator(state["spec"], state["state_dict"])


def save_operator(op: ForwardOperator, path: str | os.PathLike) -> None:
    torch_save(operator_state(op), path)


def load_operator(path: str | os.PathLike) -> ForwardOperator:
    return operator_from_state(read_checkpoint(path, "operator file"))
