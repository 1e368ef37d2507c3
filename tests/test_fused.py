"""Fused (torch.compile) kernels against their eager twins, in the projection and a whole solve;
and the fallback to eager when compilation fails."""
import warnings

import pytest
import torch

from common import fused
from operators import FourierPhaseRetrieval
from priors.vae import VAE
from solvers.generative import GenerativeSolver
from solvers.initialization import RandomInit
from solvers.projection import L1Ball, project_l1_ball


@pytest.fixture
def kernels(monkeypatch):
    """Run the body with fused kernels on at every size, restoring the switch (and any failure state) afterwards."""
    broken = fused._broken
    monkeypatch.setattr(fused, "MIN_NUMEL", 0)
    fused.set_enabled(True)
    yield
    fused.set_enabled(None)
    fused._broken = broken


def both(fn):
    """fn() with eager and with fused kernels."""
    fused.set_enabled(False)
    eager = fn()
    fused.set_enabled(True)
    return eager, fn()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_projection_matches_eager(kernels, dtype):
    g = torch.Generator().manual_seed(0)
    center = torch.randn(64, 3, 50, generator=g, dtype=dtype)
    v = center + 2 * torch.randn(64, 3, 50, generator=g, dtype=dtype)
    v[3] = center[3] + 1e-3  # inside the ball
    v[7, 1, 4] = float("nan")  # a diverged row
    radius = torch.linspace(1, 80, 64, dtype=dtype)
    eager, compiled = both(lambda: project_l1_ball(v, center, radius))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(eager, compiled, atol=tol, rtol=tol, equal_nan=True)
    # the row inside and the diverged row are left as they are
    assert torch.equal(compiled[3], v[3]) and torch.allclose(compiled[7], v[7], equal_nan=True)
    on_sphere = torch.ones(64, dtype=torch.bool)
    on_sphere[[3, 7]] = False
    norms = (compiled - center)[on_sphere].flatten(1).abs().sum(1)
    assert torch.allclose(norms, radius[on_sphere], rtol=tol)


@pytest.mark.slow
def test_fused_warm_started_ball_matches_eager_over_a_descent(kernels):
    """Projected steps of the same walk with either kernel stay together (warm starts included)."""
    g = torch.Generator().manual_seed(1)
    center = torch.randn(32, 200, generator=g)
    steps = 0.2 * torch.randn(20, 32, 200, generator=g)

    def walk():
        v, ball = center.clone(), L1Ball(center, 15.0)
        for step in steps:
            ball.project_(v.add_(step))
        return v
    eager, compiled = both(walk)
    assert torch.allclose(eager, compiled, atol=1e-5)
    assert torch.allclose((compiled - center).abs().sum(1), torch.full((32,), 15.0), rtol=1e-5)


@pytest.mark.slow
def test_fused_solve_matches_eager(kernels):
    torch.manual_seed(0)
    prior = VAE(image_shape=(1, 8, 8), latent_dim=8, hidden_dim=48).eval().requires_grad_(False)
    prior.decoder[-1].weight.mul_(6.0)
    op = FourierPhaseRetrieval((1, 8, 8), seed=1)
    with torch.no_grad():
        y = op(prior(prior.sample_latent(4, generator=torch.Generator().manual_seed(11))))
    schedule = [{"kind": "init", "steps": 40, "lr": 0.1, "radius": 100},
                {"kind": "forward", "layer": 1, "steps": 40, "lr": 0.05, "radius": 5.0},
                {"kind": "backproject", "layer": 1, "steps": 20, "lr": 0.05, "center": "zero"},
                {"kind": "refine", "steps": 20, "lr": 0.05, "radius": 100}]

    def solve():
        solver = GenerativeSolver(prior, schedule, init=RandomInit(), restarts=2, select="best",
                                  gradient_noise={"eta": 0.02, "gamma": 0.55})
        return solver.solve(op, y, range(4), seed=3)
    eager, compiled = both(solve)
    assert torch.allclose(eager.x, compiled.x, atol=1e-4)
    assert torch.allclose(eager.measurement_error, compiled.measurement_error, rtol=1e-3, atol=1e-8)


def test_failed_compilation_falls_back_to_eager_with_one_warning(kernels, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")
    monkeypatch.setattr(torch, "compile", no_compiler)
    kernel = fused.FusedKernel(lambda x: x * 2, eager=lambda x: x + x)
    other = fused.FusedKernel(lambda x: x * 3, eager=lambda x: 3 * x)
    with pytest.warns(UserWarning, match="torch.compile is not available here.*no C\\+\\+ compiler"):
        assert torch.equal(kernel(torch.ones(3)), torch.full((3,), 2.0))
    assert not fused.enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: every kernel now runs eagerly
        assert torch.equal(other(torch.ones(2)), torch.full((2,), 3.0))


@pytest.mark.slow
def test_small_calls_run_eagerly_without_compiling(kernels, monkeypatch):
    monkeypatch.setattr(fused, "MIN_NUMEL", 100)
    kernel = fused.FusedKernel(lambda x: x * 2, eager=lambda x: x + 1)
    assert torch.equal(kernel(torch.ones(99)), torch.full((99,), 2.0))  # eager twin
    assert kernel._compiled is None
    assert torch.equal(kernel(torch.ones(100)), torch.full((100,), 2.0))  # compiled fn
    assert kernel._compiled is not None


def test_switch_follows_the_environment(monkeypatch):
    fused.set_enabled(None)
    broken, fused._broken = fused._broken, None
    try:
        monkeypatch.setenv(fused.ENV, "0")
        assert not fused.enabled()
        monkeypatch.setenv(fused.ENV, "1")
        assert fused.enabled()
        fused.set_enabled(False)
        assert not fused.enabled()
    finally:
        fused.set_enabled(None)
        fused._broken = broken
