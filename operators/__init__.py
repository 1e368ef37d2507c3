"""Forward operators y = A(x) (+ noise), see operators/base.py and docs/OPERATORS.md."""
from operators.base import ForwardOperator, LinearOperator, PhaseRetrievalOperator
from operators.circulant import CirculantCompressedSensing
from operators.denoising import Denoising
from operators.fourier import FourierPhaseRetrieval
from operators.gaussian import ComplexGaussianPhaseRetrieval, GaussianCompressedSensing, GaussianPhaseRetrieval
from operators.inpainting import Inpainting
from operators.registry import (OPERATORS, build_operator, load_operator, operator_from_state, operator_state,
                                save_operator)
from operators.super_resolution import SuperResolution

__all__ = [
    "ForwardOperator", "LinearOperator", "PhaseRetrievalOperator", "FourierPhaseRetrieval", "GaussianPhaseRetrieval",
    "ComplexGaussianPhaseRetrieval", "GaussianCompressedSensing", "CirculantCompressedSensing", "Inpainting",
    "SuperResolution", "Denoising", "OPERATORS", "build_operator", "save_operator", "load_operator",
    "operator_state", "operator_from_state",
]
