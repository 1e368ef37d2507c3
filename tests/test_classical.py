"""Classical phase retrieval baselines: ER, HIO, GS (Fourier) and Wirtinger flow (Gaussian)."""
from __future__ import annotations

import pytest
import torch

from common.errors import UserInputError
from operators import (ComplexGaussianPhaseRetrieval, FourierPhaseRetrieval, GaussianCompressedSensing,
                       GaussianPhaseRetrieval)
from solvers.base import SolveResult
from solvers.classical import (CLASSICAL_SOLVERS, ErrorReduction, GerchbergSaxton, HybridInputOutput, WirtingerFlow,
                               reduce_restarts)

FOURIER_METHODS = [ErrorReduction, HybridInputOutput, GerchbergSaxton]


def digit(size: int = 12, dtype=torch.float64) -> torch.Tensor:
    """A synthetic '6'-like digit: an elliptic ring and a bar, values in [0, 1], (1, 1, size, size)."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=dtype), torch.arange(size, dtype=dtype), indexing="ij")
    c = (size - 1) / 2
    r = ((yy - c) ** 2 / (size / 3) ** 2 + (xx - c) ** 2 / (size / 4) ** 2).sqrt()
    ring = torch.exp(-((r - 1) ** 2) / 0.05)
    bar = ((xx - (c + 2)).abs() < 1).to(dtype) * (yy > c)
    return (ring + bar).clamp(0, 1)[None, None]


def mnist_like_batch(n: int = 3, size: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, size, size, generator=g, dtype=torch.float64)
    x[..., :2, :] = 0  # empty borders, like MNIST digits
    x[..., :, -2:] = 0
    return x


def padded_alignment_mse(op: FourierPhaseRetrieval, x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Oracle MSE after the trivial ambiguities of oversampled Fourier PR: circular shifts of
    the padded grid and the 180° reflection (brute force; fine for tiny images)."""
    a, b = op.pad(x_hat)[0, 0], op.pad(x)[0, 0]
    h, w = a.shape
    best = float("inf")
    for cand in (a, torch.flip(a, dims=(0, 1))):
        for dy in range(h):
            for dx in range(w):
                best = min(best, (torch.roll(cand, (dy, dx), dims=(0, 1)) - b).pow(2).sum().item())
    return best / x.numel()


def test_hio_solves_oversampled_fourier_from_random_start():
    x = digit()
    op = FourierPhaseRetrieval((1, 12, 12), oversampling=2)
    y = op(x)
    result = HybridInputOutput(iterations=200, restarts=4).solve(op, y, indices=[0], seed=0)
    assert isinstance(result, SolveResult) and result.latent is None
    assert result.measurement_error.item() < 1e-4 * y.pow(2).mean().item()
    assert torch.allclose(result.measurement_error, op.measurement_error(result.x, y))
    assert padded_alignment_mse(op, result.x, x) < 1e-3  # the digit itself, up to shift/flip
    er = ErrorReduction(iterations=200, restarts=4).solve(op, y, indices=[0], seed=0)
    assert er.measurement_error.item() > 10 * result.measurement_error.item()  # HIO escapes ER's stagnation


@pytest.mark.parametrize("method", FOURIER_METHODS)
def test_non_oversampled_fourier_runs(method):
    x = mnist_like_batch().float()
    op = FourierPhaseRetrieval((1, 12, 12))
    y = op(x)
    result = method(iterations=20, restarts=2).solve(op, y, indices=[4, 9, 2], seed=3)
    assert result.x.shape == x.shape and result.x.dtype == torch.float32
    assert (result.x >= 0).all() and (result.x <= 1).all()
    assert result.measurement_error.shape == (3,) and torch.isfinite(result.measurement_error).all()
    assert not result.failed.any()
    curve = result.history[method.method]
    assert len(curve) == 20 and all(torch.isfinite(torch.tensor(curve)))
    assert (result.measurement_error <= op.measurement_error(result.x, y) + 1e-12).all()


def test_error_reduction_never_increases_the_error():
    x = mnist_like_batch(2)
    for oversampling in (1, 2):
        op = FourierPhaseRetrieval((1, 12, 12), oversampling=oversampling)
        curve = torch.tensor(ErrorReduction(iterations=60, restarts=2).solve(op, op(x), [0, 1], seed=1).history["er"])
        assert (curve[1:] <= curve[:-1] * (1 + 1e-9) + 1e-15).all()
        assert curve[-1] < curve[0]


@pytest.mark.parametrize("method", FOURIER_METHODS)
def test_estimates_satisfy_the_image_constraints(method):
    op = FourierPhaseRetrieval((1, 12, 12), oversampling=2)
    y = 3 * op(mnist_like_batch())  # brighter than [0, 1] images: the upper bound is active
    boxed = method(iterations=5).solve(op, y, [0, 1, 2], seed=0)
    assert (boxed.x >= 0).all() and (boxed.x <= 1).all()
    nonneg = method(iterations=5, upper_bound=None).solve(op, y, [0, 1, 2], seed=0)
    assert (nonneg.x >= 0).all() and (nonneg.x > 1).any()  # Fienup's non-negativity alone


@pytest.mark.parametrize("operator_cls", [GaussianPhaseRetrieval, ComplexGaussianPhaseRetrieval])
def test_wirtinger_flow_recovers_real_signal_up_to_sign(operator_cls):
    op = operator_cls((1, 6, 6), ratio=8, seed=3)
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = WirtingerFlow(iterations=300, image_constraints=False).solve(op, op(x), [0, 1], seed=0)
    xf, xr = result.x.flatten(1), x.flatten(1)
    distance = torch.minimum((xf - xr).norm(dim=1), (xf + xr).norm(dim=1)) / xr.norm(dim=1)
    assert (distance < 1e-4).all()
    curve = result.history["wf"]
    assert len(curve) == 300 and curve[-1] < 1e-6 * curve[0]


def test_wirtinger_flow_images_are_signed_and_clamped():
    op = GaussianPhaseRetrieval((1, 6, 6), ratio=8, seed=1)
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    result = WirtingerFlow(iterations=300, restarts=2).solve(op, op(x), [0, 1], seed=0)
    assert (result.x - x).abs().max() < 1e-4  # no sign ambiguity left for non-negative images


def test_restart_selection_by_measurement_error():
    x = torch.arange(6, dtype=torch.float64).view(6, 1, 1, 1)  # image-major: 2 images x 3 restarts
    errors = torch.tensor([0.3, 0.1, float("nan"), float("nan"), float("inf"), float("nan")])
    kept, err, failed = reduce_restarts(x, errors, 3)
    assert kept[0].item() == 1.0 and err[0] == 0.1
    assert failed.tolist() == [False, True]  # every restart of image 1 diverged
    # more restarts (restart 0 is the same draw) can only lower the kept error, never raise it
    op = FourierPhaseRetrieval((1, 12, 12))
    y = op(mnist_like_batch())
    one = HybridInputOutput(iterations=15, restarts=1).solve(op, y, [0, 1, 2], seed=5)
    four = HybridInputOutput(iterations=15, restarts=4).solve(op, y, [0, 1, 2], seed=5)
    assert (four.measurement_error <= one.measurement_error).all()
    assert (four.measurement_error < one.measurement_error).any()


def test_results_do_not_depend_on_batch_composition():
    op = FourierPhaseRetrieval((1, 12, 12))
    y = op(mnist_like_batch())
    solver = ErrorReduction(iterations=10, restarts=2)
    together = solver.solve(op, y, [7, 8, 9], seed=1)
    alone = solver.solve(op, y[1:2], [8], seed=1)
    assert torch.allclose(together.x[1:2], alone.x, atol=1e-10)
    other_seed = solver.solve(op, y[1:2], [8], seed=2)
    assert not torch.allclose(other_seed.x, alone.x)


@pytest.mark.parametrize("method, operator", [
    (ErrorReduction, GaussianPhaseRetrieval((1, 4, 4), m=20)),
    (HybridInputOutput, GaussianCompressedSensing((1, 4, 4), m=20)),
    (GerchbergSaxton, ComplexGaussianPhaseRetrieval((1, 4, 4), m=20)),
    (WirtingerFlow, FourierPhaseRetrieval((1, 4, 4))),
])
def test_unsupported_operator_refused(method, operator):
    y = operator(torch.rand(1, 1, 4, 4)).abs()
    with pytest.raises(UserInputError, match="problems only"):
        method(iterations=2).solve(operator, y, [0], seed=0)


def test_bad_solver_input():
    op = FourierPhaseRetrieval((1, 4, 4))
    y = op(torch.rand(2, 1, 4, 4))
    with pytest.raises(UserInputError, match="one per sample"):
        ErrorReduction(iterations=2).solve(op, y, [0], seed=0)
    with pytest.raises(UserInputError, match="magnitudes"):
        ErrorReduction(iterations=2).solve(op, -y, [0, 1], seed=0)
    for bad in ({"iterations": 0}, {"restarts": 0}):
        with pytest.raises(UserInputError):
            ErrorReduction(**bad)
    with pytest.raises(UserInputError, match="beta"):
        HybridInputOutput(beta=0)
    with pytest.raises(UserInputError, match="upper_bound"):
        ErrorReduction(upper_bound=0)
    assert set(CLASSICAL_SOLVERS) == {"er", "hio", "gs", "wf"}
