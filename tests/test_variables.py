"""Declared optimisation variables (solvers/variables.py), the priors' declarations, and the Solver interface."""
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from common.errors import UserInputError
from operators import FourierPhaseRetrieval, GaussianPhaseRetrieval, Inpainting
from solvers.base import Solver, solver_class
from solvers.classical import ErrorReduction
from solvers.generative import GenerativeSolver
from solvers.initialization import RandomInit
from solvers.mganprior import MultiCodeSolver
from solvers.twins import TwinSelection
from solvers.variables import Declaration, Variable
from tests.engine_cases import prior as tiny_prior

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vae():
    return tiny_prior("vae")


@pytest.fixture(scope="module")
def stylegan2():
    return tiny_prior("stylegan2")


def problem(prior, op, n=2, seed=11):
    with torch.no_grad():
        return op(prior(prior.sample_latent(n, generator=torch.Generator().manual_seed(seed))))


def test_priors_declare_their_optimisable_entries(vae, stylegan2):
    assert vae.variable_roles(vae.to_layer(vae.sample_latent(1), 1)) == {"state": "state"}
    rep = stylegan2.to_layer(stylegan2.sample_latent(1), 1)
    roles = stylegan2.variable_roles(rep)
    assert "skip" in rep and "skip" not in roles  # the running ToRGB image stays fixed
    assert roles == {"state": "state", "latent": "latent", **{k: "noise" for k in rep if k.startswith("noise.")}}


class ScaledLearningRates(GenerativeSolver):
    """Declares every variable with its own learning rate and gradient-noise flag."""

    def __init__(self, *args, lr=None, gradient_noise_on=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.variable_lr, self.gradient_noise_on = lr, gradient_noise_on

    def declare(self, stage, pos):
        decl = super().declare(stage, pos)
        decl.variables = [replace(v, lr=self.variable_lr, gradient_noise=self.gradient_noise_on)
                          for v in decl.variables]
        return decl


def test_the_engine_follows_each_variables_declared_learning_rate_and_noise(vae):
    op = GaussianPhaseRetrieval(vae.image_shape, ratio=0.6, seed=1)
    y = problem(vae, op)
    schedule = [{"kind": "init", "steps": 5, "lr": 0.1, "radius": 50},
                {"kind": "forward", "layer": 1, "steps": 5, "lr": 0.1, "radius": 5.0}]
    noise = {"eta": 0.02, "gamma": 0.55}

    def run(cls, schedule, **kwargs):
        return cls(vae, schedule, select="final", **kwargs).solve(op, y, [0, 1], seed=3).x

    slower = [{**s, "lr": 0.03} for s in schedule]
    assert torch.equal(run(ScaledLearningRates, schedule, lr=0.03), run(GenerativeSolver, slower))
    assert not torch.equal(run(GenerativeSolver, schedule), run(GenerativeSolver, slower))
    quiet = run(ScaledLearningRates, schedule, gradient_noise=noise, gradient_noise_on=False)
    assert torch.equal(quiet, run(GenerativeSolver, schedule))
    assert not torch.equal(run(GenerativeSolver, schedule, gradient_noise=noise), quiet)


def test_a_declaration_needs_distinct_variables():
    z = torch.zeros(2, 3)
    image = finish = lambda values: values  # noqa: E731
    with pytest.raises(UserInputError, match="no optimisation variables"):
        Declaration([], image, finish)
    with pytest.raises(UserInputError, match="declared twice"):
        Declaration([Variable("z", z), Variable("z", z)], image, finish)
    with pytest.raises(UserInputError, match="declared twice"):
        Declaration([Variable("z", z)], image, finish, constants={"z": z})
    with pytest.raises(UserInputError, match="center"):
        Variable("z", z, radius=1.0, center="origin")


def test_negation_check_with_optimised_noise_maps(stylegan2):
    """DPR's check evaluates z and -z with every other variable (here noise maps) doubled alongside."""
    op = FourierPhaseRetrieval(stylegan2.image_shape, seed=0)
    y = problem(stylegan2, op)
    solver = GenerativeSolver(stylegan2, [{"kind": "init", "steps": 4, "lr": 0.05, "optimize_noise": True,
                                           "radius": 1000}], negation_check=True, two_start=True, restarts=2)
    decl = solver.declare(solver.stages[0], solver.start(op, y, [0, 1], seed=2))
    assert [v.name for v in decl.variables if v.negatable] == ["state"]
    assert any(v.name.startswith("noise.") for v in decl.variables)
    result = solver.solve(op, y, [0, 1], seed=2)
    assert not result.failed.any() and result.x.shape == (2, *stylegan2.image_shape)


def test_backprojection_fits_the_state_reached_with_the_runs_noise_maps(stylegan2):
    """With per-run random noise maps, z_0 unchanged by a forward stage confined to a vanishing ball
    reproduces the state exactly: back-projection renders with the run's maps, not the prior's fixed ones."""
    op = Inpainting(stylegan2.image_shape, observed_ratio=0.5, seed=0)
    y = problem(stylegan2, op)
    solver = GenerativeSolver(stylegan2, [{"kind": "forward", "layer": 1, "steps": 1, "lr": 0.1, "radius": 1e-12,
                                           "latent_radius": 1e-12},
                                          {"kind": "backproject", "layer": 1, "steps": 1, "lr": 0.1}],
                              noise_init="random", restarts=1)
    first_residual = solver.solve(op, y, [0, 1], seed=1).history["01_backproject@1"][0]
    assert first_residual < 1e-12


def test_mganprior_declares_codes_and_channel_weights():
    prior = tiny_prior("dcgan")
    op = GaussianPhaseRetrieval(prior.image_shape, ratio=0.3, seed=1)
    y = problem(prior, op)
    for optimize_alpha, names in ((True, ["codes", "alpha"]), (False, ["codes"])):
        solver = MultiCodeSolver(prior, num_codes=3, layer=2, steps=2, optimize_alpha=optimize_alpha, restarts=2)
        decl = solver.declare(solver.stages[0], solver.start(op, y, [0, 1], seed=0))
        assert [v.name for v in decl.variables] == names
        assert decl.variables[0].start.shape == (4, 3, *prior.latent_shape)


def test_every_solver_config_names_a_solver():
    for path in sorted((ROOT / "conf" / "solver").glob("*.yaml")):
        target = OmegaConf.load(path).get("_target_")
        if target is None:  # a variant: its defaults name the base config
            continue
        cls = solver_class(target)
        assert cls.requires_prior == (not target.startswith("solvers.classical.")), path.name
    with pytest.raises(UserInputError, match="not a solver class") as excinfo:
        solver_class("pathlib.Path")
    assert "\n" not in str(excinfo.value)
    with pytest.raises(UserInputError, match="not a solver class"):
        solver_class("solvers.nowhere.Missing")


def test_solvers_refuse_an_operator_before_solving(vae):
    with pytest.raises(UserInputError, match="solves fourier_pr problems only"):
        ErrorReduction(iterations=2).check_setup(GaussianPhaseRetrieval(vae.image_shape, ratio=0.6, seed=1))
    solver = GenerativeSolver(vae, [{"kind": "init", "steps": 1, "lr": 0.1}], init=RandomInit())
    solver.check_setup(FourierPhaseRetrieval(vae.image_shape))  # a random init fits every operator
    twins = TwinSelection(solver, "centre")
    assert isinstance(twins, Solver) and twins.requires_prior and twins.prior is vae
    assert ErrorReduction(iterations=2).prior is None and not ErrorReduction.requires_prior
