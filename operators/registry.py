"""Operators by config name; rebuilding from a spec, and saving/loading with parameters."""
from __future__ import annotations

import os

import torch

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
    """The operator ``spec["name"]`` with the other spec entries as arguments; with a
    ``state_dict`` its buffers are the saved ones (bit-identical A)."""
    name = spec.get("name")
    if name not in OPERATORS:
        raise UserInputError(f"unknown operator {name!r}; choose one of {', '.join(OPERATORS)}")
    return OPERATORS[name].from_spec(dict(spec), state_dict)


def operator_state(op: ForwardOperator) -> dict:
    """A weights_only-loadable dict (plain types and CPU tensors) that rebuilds ``op``."""
    return {"spec": op.spec(), "state_dict": {k: v.detach().cpu() for k, v in op.state_dict().items()}}


def operator_from_state(state: dict) -> ForwardOperator:
    if not isinstance(state, dict) or "spec" not in state or "state_dict" not in state:
        raise UserInputError("not a saved operator (expected keys 'spec' and 'state_dict')")
    return build_operator(state["spec"], state["state_dict"])


def save_operator(op: ForwardOperator, path: str | os.PathLike) -> None:
    torch.save(operator_state(op), path)


def load_operator(path: str | os.PathLike, map_location="cpu") -> ForwardOperator:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserInputError(f"operator file {path} does not exist") from None
    except Exception as err:  # unpickling errors of every kind: not an operator file
        raise UserInputError(f"cannot read operator file {path}: {' '.join(str(err).split())[:200]}") from None
    return operator_from_state(state)
