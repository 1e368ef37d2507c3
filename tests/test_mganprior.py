"""mGANprior inversion (RTIL algorithm 2): N codes mixed with channel weights at a split point."""
from __future__ import annotations

import json

import pytest
import torch

from common.errors import UserInputError
from operators import (CirculantCompressedSensing, Denoising, FourierPhaseRetrieval, GaussianCompressedSensing,
                       GaussianPhaseRetrieval, Inpainting, SuperResolution)
from priors.dcgan import DCGANPrior
from solvers.generative import GenerativeSolver
from solvers.mganprior import MultiCodeSolver
from tests.cli import run_inprocess, tiny_vae_prior

torch.set_num_threads(1)
SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    dcgan = DCGANPrior(size=28, channels=1, latent_dim=8, width=4).eval().requires_grad_(False)
    for m in dcgan.modules():  # the tutorial initialisation's images are all ~0.5: spread them over [0, 1]
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.normal_(m.weight, 0.0, 0.2)
    return dcgan


@pytest.fixture(scope="module")
def truth(prior):
    with torch.no_grad():
        return prior(prior.sample_latent(3, generator=torch.Generator().manual_seed(11)))


OPERATORS = {
    "cs_gaussian": lambda: GaussianCompressedSensing(SHAPE, ratio=0.1, seed=1),
    "cs_circulant": lambda: CirculantCompressedSensing(SHAPE, ratio=0.1, seed=1),
    "inpainting": lambda: Inpainting(SHAPE, observed_ratio=0.3, seed=1),
    "super_resolution": lambda: SuperResolution(SHAPE, factor=4, seed=1),
    "denoising": lambda: Denoising(SHAPE, seed=1),
    "gaussian_pr": lambda: GaussianPhaseRetrieval(SHAPE, ratio=0.3, seed=1),
    "fourier_pr": lambda: FourierPhaseRetrieval(SHAPE, seed=1),
}


def mgan(prior, **kwargs) -> MultiCodeSolver:
    options = dict(num_codes=4, layer=2, steps=40, lr=0.05, optimizer="adam", restarts=2)
    return MultiCodeSolver(prior, **{**options, **kwargs})


@pytest.mark.parametrize("operator_name", list(OPERATORS))
def test_mganprior_fits_the_measurements_for_every_operator(prior, truth, operator_name):
    op = OPERATORS[operator_name]()
    y = op(truth)
    solver = mgan(prior)
    codes = solver.initial_codes(op, y, [0, 1, 2], seed=3)
    with torch.no_grad():
        start = op.measurement_error(solver.image(codes, solver.alpha0.expand(6, -1, -1)), y.repeat_interleave(2, 0))
    result = solver.solve(op, y, [0, 1, 2], seed=3)
    assert result.x.shape == truth.shape and 0 <= result.x.min() and result.x.max() <= 1 and not result.failed.any()
    assert torch.allclose(result.measurement_error, op.measurement_error(result.x, y), rtol=1e-3, atol=1e-7)
    assert result.measurement_error.mean() < 0.5 * start.mean()
    assert list(result.history) == ["00_mganprior@2"] and len(result.history["00_mganprior@2"]) == 40


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_one_code_with_unit_fixed_channel_weights_is_csgm_exactly(prior, truth, optimizer):
    op = GaussianCompressedSensing(SHAPE, ratio=0.1, seed=1)
    y = op(truth)
    lr = 0.05 if optimizer == "adam" else 0.002
    one = mgan(prior, num_codes=1, optimize_alpha=False, optimizer=optimizer, lr=lr).solve(op, y, [0, 1, 2], seed=3)
    csgm = GenerativeSolver(prior, [{"kind": "init", "steps": 40, "lr": lr}], restarts=2,
                            optimizer=optimizer).solve(op, y, [0, 1, 2], seed=3)
    assert torch.equal(one.x, csgm.x) and torch.equal(one.measurement_error, csgm.measurement_error)


def test_gradients_reach_the_channel_weights_and_codes(prior, truth):
    op = Inpainting(SHAPE, observed_ratio=0.3, seed=1)
    y = op(truth).repeat_interleave(2, 0)
    solver = mgan(prior)
    codes = solver.initial_codes(op, y[::2], [0, 1, 2], seed=3).requires_grad_(True)
    alpha = solver.alpha0.expand(6, -1, -1).clone().requires_grad_(True)
    loss, *_ = solver._objective(solver.image(codes, alpha), op, y)
    loss.sum().backward()
    channels = prior.to_layer(prior.sample_latent(1), 2)["state"].shape[1]
    assert alpha.shape == (6, 4, channels) and alpha.grad.abs().sum(2).min() > 0  # every code's weights move
    assert codes.grad.abs().flatten(2).sum(2).min() > 0


def test_results_are_per_image_whatever_the_batch(prior, truth):
    op = GaussianCompressedSensing(SHAPE, ratio=0.1, seed=1)
    y = op(truth)
    solver = mgan(prior, steps=10)
    batch = solver.solve(op, y, [0, 1, 2], seed=3)
    alone = solver.solve(op, y[2:], [2], seed=3)
    assert torch.allclose(batch.x[2:], alone.x, atol=1e-6)


def test_several_codes_fit_better_than_one(prior, truth):
    op = GaussianCompressedSensing(SHAPE, ratio=0.1, seed=1)
    # an image outside the prior's range: the extended range of N codes fits its measurements better
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(0))
    y = op(x)
    errors = {n: mgan(prior, num_codes=n, steps=150, lr=0.05, restarts=1).solve(op, y, [0, 1], seed=3)
              .measurement_error.mean() for n in (1, 8)}
    assert errors[8] < 0.8 * errors[1]


def test_initialisations(prior, truth):
    op = GaussianCompressedSensing(SHAPE, ratio=0.1, seed=1)
    y = op(truth)
    shared = mgan(prior, codes_init="shared").initial_codes(op, y, [0, 1, 2], seed=3)
    assert torch.equal(shared[:, 0], shared[:, 3])
    independent = mgan(prior).initial_codes(op, y, [0, 1, 2], seed=3)
    assert torch.equal(independent[:, 0], shared[:, 0]) and not torch.equal(independent[:, 0], independent[:, 1])
    assert torch.equal(mgan(prior, alpha_init="ones").alpha0, torch.ones_like(mgan(prior).alpha0))
    assert torch.equal(mgan(prior).alpha0, torch.full_like(mgan(prior).alpha0, 0.25))
    per_code = mgan(prior, alpha_init=[1.0, 0.0, 0.0, 0.0]).alpha0
    assert torch.equal(per_code[0], torch.ones(per_code.shape[1])) and per_code[1:].eq(0).all()


@pytest.mark.parametrize("kwargs, needle", [
    (dict(num_codes=0), "number of codes must be an integer >= 1"),
    (dict(layer=3), "split point 3 is outside the generator"),
    (dict(layer=0), "split point 0 is outside the generator"),
    (dict(alpha_init=[1.0, 2.0]), r"alpha_init has shape \(2,\)"),
    (dict(alpha_init=[[1.0] * 3] * 4), r"alpha_init has shape \(4, 3\)"),
    (dict(alpha_init="random"), "alpha_init must be"),
    (dict(codes_init="zeros"), "codes_init must be"),
])
def test_bad_input_is_one_line(prior, kwargs, needle):
    with pytest.raises(UserInputError, match=needle) as err:
        mgan(prior, **kwargs)
    assert "\n" not in str(err.value)


def test_invert_runs_mganprior_and_refuses_bad_input(tmp_path):
    prior = tiny_vae_prior(tmp_path / "vae.pt")
    common = ["invert.py", "solver=mganprior", "init=random", "operator=inpainting", f"prior.checkpoint={prior}",
              "data.image_size=28", "logger=csv", "num_images=3", "batch_size=2", "restarts=2",
              "trainer.enable_progress_bar=false", "solver.num_codes=3", "solver.steps=20", "solver.optimizer=adam",
              "solver.lr=0.05"]
    proc = run_inprocess(*common, "solver.layer=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["method"] == "mganprior-random" and summary["num_images"] == 3
    proc = run_inprocess(*common, "solver.layer=7", f"hydra.run.dir={tmp_path / 'bad'}")
    assert proc.returncode == 2 and "split point 7 is outside the generator" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad" / "metrics.csv").exists()
