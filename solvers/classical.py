"""Classical phase retrieval without learning: ER, HIO, Gerchberg–Saxton, Wirtinger flow.

Every solver answers ``solve(operator, y, indices, seed) -> SolveResult``. Restarts run
in the same batch (image-major), random initialisations come from
(seed, image index, restart) via ``common.randomness``, and per image the kept estimate
is the one with the lowest measurement error over iterations and restarts (never chosen
by ground truth).

Fourier methods (``fourier_pr``) iterate on the padded grid g between the Fourier
magnitude constraint P_M(g) = Re F⁻¹(y · F g / |F g|) and image-domain constraints:
real, zero outside the support, values in [0, 1] (P_C, pointwise). The returned image is
always P_C of the iterate, cropped to the support. Fienup's original object constraint
is non-negativity alone (``upper_bound=None``); the default also uses the images' upper
bound 1, which makes the non-oversampled MNIST problem markedly easier (see
benchmarks/classical_pr.py).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from common.errors import UserInputError
from common.randomness import per_sample_normal, sample_generators
from operators.base import ForwardOperator
from operators.fourier import FourierPhaseRetrieval
from operators.gaussian import ComplexGaussianPhaseRetrieval, GaussianPhaseRetrieval
from solvers.base import SolveResult, Solver, select_best_restart


def reduce_restarts(x: torch.Tensor, errors: torch.Tensor, restarts: int) -> tuple[torch.Tensor, ...]:
    """Per image the lowest-error restart of an image-major batch: (x, error, failed)."""
    keep = select_best_restart(errors, restarts)
    failed = ~torch.isfinite(errors.view(-1, restarts)).any(dim=1)
    return x[keep], errors[keep], failed


class _ClassicalSolver(Solver):
    method = "classical"
    operators: tuple[type[ForwardOperator], ...] = ()

    def __init__(self, iterations: int = 500, restarts: int = 1):
        if int(iterations) < 1:
            raise UserInputError(f"iterations must be >= 1, got {iterations}")
        if int(restarts) < 1:
            raise UserInputError(f"restarts must be >= 1, got {restarts}")
        self.iterations, self.restarts = int(iterations), int(restarts)

    def check_setup(self, operator: ForwardOperator) -> None:
        if not isinstance(operator, self.operators):
            supported = ", ".join(cls.name for cls in self.operators)
            raise UserInputError(f"{self.method} solves {supported} problems only, not {operator.name}")

    def check(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int]) -> None:
        self.check_setup(operator)
        operator.check_measurements(y)
        if len(indices) != y.shape[0]:
            raise UserInputError(
                f"got {len(indices)} sample indices for {y.shape[0]} measurements; give one per sample"
            )

    def solve(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int], seed: int) -> SolveResult:
        self.check(operator, y, indices)
        with torch.no_grad():
            y_all = y.repeat_interleave(self.restarts, dim=0)
            state = self.initial_state(operator, y_all, indices, seed)
            best_x = self.estimate(operator, state)
            best_err = operator.measurement_error(best_x, y_all).nan_to_num(nan=math.inf)
            curve = []
            for step in range(1, self.iterations + 1):
                state = self.step(operator, y_all, state, step)
                x = self.estimate(operator, state)
                err = operator.measurement_error(x, y_all)
                better = err < best_err  # NaN never wins; a diverged restart keeps error inf
                best_x = torch.where(better.view(-1, *[1] * (x.dim() - 1)), x, best_x)
                best_err = torch.where(better, err, best_err)
                curve.append(err.mean())
            x, err, failed = reduce_restarts(best_x, best_err, self.restarts)
        history = {self.method: torch.stack(curve).tolist()}
        return SolveResult(x=x, measurement_error=err, failed=failed, latent=None, history=history)

    # a method's iterate ("state") is opaque to the loop: a tensor or a dict of tensors
    def initial_state(self, operator, y, indices, seed):
        raise NotImplementedError

    def step(self, operator, y, state, step: int):
        raise NotImplementedError

    def estimate(self, operator, state) -> torch.Tensor:
        """The image (or signal) the state stands for; its measurement error is tracked."""
        raise NotImplementedError


class _FourierSolver(_ClassicalSolver):
    """Shared part of ER, HIO and GS: random-phase start, magnitude projection, P_C.

    ``upper_bound``: P_C clamps values to [0, upper_bound] (1.0: images in [0, 1]);
    None keeps Fienup's original non-negativity alone.
    """

    operators = (FourierPhaseRetrieval,)

    def __init__(self, iterations: int = 500, restarts: int = 1, upper_bound: float | None = 1.0):
        super().__init__(iterations, restarts)
        if upper_bound is not None and not upper_bound > 0:
            raise UserInputError(f"upper_bound must be > 0 or None (non-negativity only), got {upper_bound}")
        self.upper_bound = None if upper_bound is None else float(upper_bound)

    def project_image(self, operator: FourierPhaseRetrieval, g: torch.Tensor) -> torch.Tensor:
        """P_C: real, zero outside the support, clamped to [0, upper_bound]."""
        return g.clamp(0, self.upper_bound) * operator.support.to(g)

    @staticmethod
    def project_magnitudes(operator: FourierPhaseRetrieval, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """P_M: keep F g's phases, impose the measured magnitudes (phase 1 where F g = 0)."""
        z = operator.fft(g)
        r = z.abs()
        phase = torch.where(r > 0, z / r.clamp_min(torch.finfo(r.dtype).tiny), torch.ones_like(z))
        return operator.ifft(y * phase).real

    def initial_state(self, operator, y, indices, seed) -> torch.Tensor:
        """Measured magnitudes with uniform random phases per (seed, index, restart), back-transformed."""
        gens = sample_generators(seed, f"{self.method}.initial_phase", indices, self.restarts)
        uniform = torch.stack([torch.rand(operator.measurement_shape, generator=g, dtype=torch.float64) for g in gens])
        phase = 2 * math.pi * uniform.to(y)
        return self.project_image(operator, operator.ifft(y * torch.exp(1j * phase)).real)

    def estimate(self, operator, g) -> torch.Tensor:
        return operator.crop(self.project_image(operator, g))


class ErrorReduction(_FourierSolver):
    """Fienup's ER: g ← P_C(P_M(g)). The magnitude error never increases."""

    method = "er"

    def step(self, operator, y, g, step):
        return self.project_image(operator, self.project_magnitudes(operator, y, g))


class GerchbergSaxton(_FourierSolver):
    """Gerchberg–Saxton with a single (Fourier) magnitude: g ← P_S(P_M(g)), where P_S only
    imposes the linear constraints (real, zero outside the support); non-negativity and
    the [0, 1] range enter only the returned estimate P_C(g)."""

    method = "gs"

    def step(self, operator, y, g, step):
        return self.project_magnitudes(operator, y, g) * operator.support.to(g)


class HybridInputOutput(_FourierSolver):
    """Fienup's HIO: with g' = P_M(g), keep g' where it satisfies the image constraints and
    set g − β (g' − P_C(g')) elsewhere (outside the support and for values < 0 this is
    Fienup's g − β g'; values above ``upper_bound`` are pushed back the same way)."""

    method = "hio"

    def __init__(self, iterations: int = 500, restarts: int = 1, beta: float = 0.9, upper_bound: float | None = 1.0):
        super().__init__(iterations, restarts, upper_bound)
        if not math.isfinite(beta) or beta <= 0:
            raise UserInputError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)

    def step(self, operator, y, g, step):
        g_out = self.project_magnitudes(operator, y, g)
        violation = g_out - self.project_image(operator, g_out)
        return torch.where(violation == 0, g_out, g - self.beta * violation)


class WirtingerFlow(_ClassicalSolver):
    """Wirtinger flow (Candès, Li & Soltanolkotabi 2015) for real or complex Gaussian
    phase retrieval, restricted to real signals.

    Minimises f(z) = 1/(4m) Σ_r (|a_rᴴ z|² − y_r²)² by z ← z − μ_t/‖z₀‖² ∇f(z), with
    μ_t = min(1 − exp(−t/t0), mu_max), in Candès's normalisation (A rescaled so its entries
    have unit variance, whatever the operator's scale). Restart 0 starts from the spectral
    initialisation (top eigenvector of Re(1/m Σ y_r² a_r a_rᴴ) by power iteration, scaled to
    the norm estimate λ = √(n Σ y² / ‖A‖_F²)); further restarts start from random directions
    of norm λ. ``image_constraints``: the estimate is signed to a non-negative sum and
    clamped to [0, 1] (images); otherwise it is z itself (known only up to global sign).
    """

    method = "wf"
    operators = (GaussianPhaseRetrieval, ComplexGaussianPhaseRetrieval)

    def __init__(self, iterations: int = 500, restarts: int = 1, power_iterations: int = 50, mu_max: float = 0.2,
                 t0: float = 330.0, image_constraints: bool = True):
        super().__init__(iterations, restarts)
        if int(power_iterations) < 1 or mu_max <= 0 or t0 <= 0:
            raise UserInputError("power_iterations must be >= 1 and mu_max, t0 > 0")
        self.power_iterations, self.mu_max, self.t0 = int(power_iterations), float(mu_max), float(t0)
        self.image_constraints = bool(image_constraints)

    def initial_state(self, operator: GaussianPhaseRetrieval, y, indices, seed) -> dict:
        n, batch_shape = operator.input_size, (-1, *[1] * len(operator.input_shape))
        frob2 = operator.squared_norm().to(y)
        norm = torch.sqrt(n * y.pow(2).sum(1) / frob2).view(batch_shape)  # λ, an estimate of ‖x‖
        start = per_sample_normal(operator.input_shape, seed, f"{self.method}.initial_direction", indices,
                                  self.restarts, device=y.device, dtype=y.dtype)
        v = start
        for _ in range(self.power_iterations):
            v = _unit(operator.adjoint(y.pow(2) * operator.linear(v)))
        first = (torch.arange(y.shape[0], device=y.device) % self.restarts == 0).view(batch_shape)
        z = torch.where(first, v, _unit(start)) * norm
        # gradient in Candès's normalisation (unit-variance entries): 1/(m s⁴) Re Aᴴ((|Az|² − y²) ⊙ Az)
        grad_scale = 1.0 / (operator.m * (frob2 / (operator.m * n)).pow(2))
        return {"z": z, "step_scale": grad_scale / norm.pow(2).clamp_min(1e-30)}

    def step(self, operator, y, state, step):
        az = operator.linear(state["z"])
        grad = operator.adjoint((az.abs().pow(2) - y.pow(2)) * az)
        mu = min(1 - math.exp(-step / self.t0), self.mu_max)
        return {**state, "z": state["z"] - mu * state["step_scale"] * grad}

    def estimate(self, operator, state) -> torch.Tensor:
        z = state["z"]
        if not self.image_constraints:
            return z
        sign = torch.where(z.flatten(1).sum(1) < 0, -1.0, 1.0).to(z).view(-1, *[1] * (z.dim() - 1))
        return (z * sign).clamp(0, 1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Each sample scaled to unit Euclidean norm."""
    return v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (v.dim() - 1))


CLASSICAL_SOLVERS = {cls.method: cls for cls in (ErrorReduction, HybridInputOutput, GerchbergSaxton, WirtingerFlow)}
