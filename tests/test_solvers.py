"""Generative solvers (CSGM, DPR, ILO, PRILO) on a small prior: convergence, identities, restarts, failures."""
import pytest
import torch

from common.errors import UserInputError
from operators import FourierPhaseRetrieval, GaussianCompressedSensing, GaussianPhaseRetrieval
from tests.cli import spread_vae
from solvers.base import select_best_restart
from solvers.generative import GenerativeSolver
from solvers.initialization import MagnitudeInformedInit, RandomInit
from solvers.schedule import parse_schedule

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def prior():
    return spread_vae(SHAPE)


@pytest.fixture(scope="module")
def truth(prior):
    with torch.no_grad():
        return prior(prior.sample_latent(4, generator=torch.Generator().manual_seed(11)))


SCHEDULES = {
    "csgm": dict(schedule=[{"kind": "init", "steps": 120, "lr": 0.1}]),
    "dpr": dict(schedule=[{"kind": "init", "steps": 120, "lr": 0.1}], two_start=True, negation_check=True),
    "prilo_paper": dict(schedule=[{"kind": "init", "steps": 60, "lr": 0.1, "radius": 100},
                                  {"kind": "forward", "layer": 2, "steps": 30, "lr": 0.05, "radius": 5.0},
                                  {"kind": "backproject", "layer": 2, "steps": 30, "lr": 0.05, "center": "zero"},
                                  {"kind": "refine", "steps": 30, "lr": 0.05, "radius": 100}],
                        gradient_noise={"eta": 0.02, "gamma": 0.55}, select="final"),
    "ilo": dict(schedule=[{"kind": "init", "steps": 60, "lr": 0.1},
                          {"kind": "forward", "layer": 1, "steps": 60, "lr": 0.05, "radius": 5.0},
                          {"kind": "forward", "layer": 2, "steps": 60, "lr": 0.05, "radius": 5.0}]),
    "prilo": dict(schedule=[{"kind": "init", "steps": 60, "lr": 0.1, "radius": 100},
                            {"repeat": 2, "stages": [
                                {"kind": "forward", "layer": 1, "steps": 30, "lr": 0.05, "radius": 5.0},
                                {"kind": "backproject", "layer": 1, "steps": 30, "lr": 0.05, "center": "zero"},
                                {"kind": "refine", "steps": 30, "lr": 0.05, "radius": 100}]}],
                  gradient_noise={"eta": 0.02, "gamma": 0.55}),
}


def operators():
    return {
        "gaussian_pr": GaussianPhaseRetrieval(SHAPE, m=48, seed=1),
        "fourier_pr": FourierPhaseRetrieval(SHAPE, seed=1),
        "cs_gaussian": GaussianCompressedSensing(SHAPE, m=24, seed=1),
    }


@pytest.mark.parametrize("solver_name", list(SCHEDULES))
@pytest.mark.parametrize("operator_name", ["gaussian_pr", "fourier_pr", "cs_gaussian"])
def test_solver_reduces_measurement_error(prior, truth, solver_name, operator_name):
    op = operators()[operator_name]
    y = op(truth)
    indices = list(range(len(truth)))
    z0 = RandomInit()(prior, op, y, indices, seed=3, restarts=1)
    with torch.no_grad():
        start = op.measurement_error(prior(z0), y)
    solver = GenerativeSolver(prior, restarts=2 if SCHEDULES[solver_name].get("two_start") else 1,
                              **SCHEDULES[solver_name])
    result = solver.solve(op, y, indices, seed=3)
    assert result.x.shape == truth.shape and result.x.min() >= 0 and result.x.max() <= 1
    assert not result.failed.any()
    assert torch.allclose(result.measurement_error, op.measurement_error(result.x, y), rtol=1e-3, atol=1e-7)
    assert result.measurement_error.mean() < 0.5 * start.mean()
    assert all(len(curve) > 0 for curve in result.history.values())


def test_intermediate_layer_optimisation_fits_better_than_latent_alone(prior, truth):
    """Range extension: with a ball, ILO reaches lower error than CSGM from the same start."""
    op = GaussianPhaseRetrieval(SHAPE, m=60, seed=2)
    target = (truth + 0.15 * torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    y = op(target)  # outside the range of G
    idx = list(range(len(truth)))
    csgm = GenerativeSolver(prior, [{"kind": "init", "steps": 300, "lr": 0.1}]).solve(op, y, idx, 0)
    ilo = GenerativeSolver(prior, [{"kind": "init", "steps": 300, "lr": 0.1},
                                   {"kind": "forward", "layer": 2, "steps": 300, "lr": 0.02, "radius": 20.0}]
                           ).solve(op, y, idx, 0)
    assert ilo.measurement_error.mean() < csgm.measurement_error.mean()


def test_no_perturbation_reproduces_the_prior_output(prior, truth):
    """A forward stage confined to a vanishing ball returns exactly G(z0) of the initial latent."""
    op = GaussianPhaseRetrieval(SHAPE, m=48, seed=1)
    y = op(truth)
    idx = [0, 1, 2, 3]
    z0 = RandomInit()(prior, op, y, idx, seed=5, restarts=1)
    solver = GenerativeSolver(prior, [{"kind": "forward", "layer": 1, "steps": 3, "lr": 0.1, "radius": 1e-12},
                                      {"kind": "forward", "layer": 2, "steps": 3, "lr": 0.1, "radius": 1e-12}])
    result = solver.solve(op, y, idx, seed=5)
    with torch.no_grad():
        assert torch.allclose(result.x, prior(z0), atol=1e-6)


def test_ball_constraint_holds(prior, truth):
    op = GaussianPhaseRetrieval(SHAPE, m=48, seed=1)
    y = op(truth)
    solver = GenerativeSolver(prior, [{"kind": "init", "steps": 50, "lr": 0.5, "radius": 0.3}])
    z0 = RandomInit()(prior, op, y, [0, 1, 2, 3], seed=2, restarts=1)
    result = solver.solve(op, y, [0, 1, 2, 3], seed=2)
    assert torch.all((result.latent - z0).abs().sum(1) <= 0.3 + 1e-5)


def test_restarts_select_lowest_measurement_error(prior, truth):
    op = FourierPhaseRetrieval(SHAPE, seed=1)
    y = op(truth)
    sched = [{"kind": "init", "steps": 40, "lr": 0.1}]
    one = GenerativeSolver(prior, sched, restarts=1).solve(op, y, [0, 1, 2, 3], seed=9)
    four = GenerativeSolver(prior, sched, restarts=4).solve(op, y, [0, 1, 2, 3], seed=9)
    # restart 0 of the 4-restart run is the 1-restart run, so the kept error can only be lower
    assert torch.all(four.measurement_error <= one.measurement_error + 1e-7)
    errors = torch.tensor([3.0, 1.0, float("nan"), 2.0, float("nan"), float("inf")])
    assert select_best_restart(errors, 3).tolist() == [1, 3]


def test_batch_size_invariance(prior, truth):
    op = GaussianPhaseRetrieval(SHAPE, m=48, seed=1)
    y = op(truth)
    idx = [10, 11, 12, 13]
    z_all = RandomInit()(prior, op, y, idx, seed=4, restarts=2)
    z_one = torch.cat([RandomInit()(prior, op, y[i:i + 1], [idx[i]], seed=4, restarts=2) for i in range(4)])
    assert torch.equal(z_all, z_one)  # bit-identical initial latents
    solver = GenerativeSolver(prior, restarts=2, **SCHEDULES["prilo"])
    batched = solver.solve(op, y, idx, seed=4)
    single = torch.cat([solver.solve(op, y[i:i + 1], [idx[i]], seed=4).x for i in range(4)])
    assert torch.allclose(batched.x, single, atol=1e-3)


def test_mii_picks_the_candidate_with_lowest_measurement_error(prior, truth):
    op = GaussianPhaseRetrieval(SHAPE, m=48, seed=1)
    y = op(truth)
    mii = MagnitudeInformedInit(num_candidates=300, chunk_size=64)
    z = mii(prior, op, y, [0, 1, 2, 3], seed=0, restarts=2)
    cands, meas = mii.candidates(prior, op, 0, 1)
    with torch.no_grad():
        errors = op.measurement_error(prior(cands), y[0:1].expand(len(cands), -1))
        assert torch.equal(z[1], cands[errors.argmin()])
        random = RandomInit()(prior, op, y, [0, 1, 2, 3], seed=0, restarts=2)
        assert op.measurement_error(prior(z), y.repeat_interleave(2, 0)).mean() < \
            op.measurement_error(prior(random), y.repeat_interleave(2, 0)).mean()


def test_diverging_image_is_reported_failed_without_spoiling_the_batch(prior, truth):
    op = GaussianCompressedSensing(SHAPE, m=24, seed=1)
    y = op(truth)
    y[0] = 1e30  # squares overflow to inf: this image's iterate turns NaN
    result = GenerativeSolver(prior, [{"kind": "init", "steps": 20, "lr": 0.1}]).solve(op, y, [0, 1, 2, 3], 0)
    assert result.failed.tolist() == [True, False, False, False]
    assert torch.isfinite(result.measurement_error[1:]).all()


@pytest.mark.parametrize("bad, match", [
    ([{"kind": "forward", "layer": 7, "steps": 5, "lr": 0.1}], "layer 7"),
    ([{"kind": "init", "steps": 0, "lr": 0.1}], "steps"),
    ([{"kind": "init", "steps": 5, "lr": -1.0}], "lr"),
    ([{"kind": "init", "steps": 5, "lr": 0.1, "radius": 0}], "radius"),
    ([{"kind": "jump", "steps": 5, "lr": 0.1}], "kind"),
    ([{"kind": "backproject", "layer": 1, "steps": 5, "lr": 0.1}], "must follow a forward"),
])
def test_bad_schedules_are_refused(prior, bad, match):
    with pytest.raises(UserInputError, match=match):
        GenerativeSolver(prior, bad)


def test_ablation_switches():
    sched = [{"kind": "init", "steps": 5, "lr": 0.1, "radius": 1.0},
             {"repeat": 2, "stages": [{"kind": "forward", "layer": 1, "steps": 5, "lr": 0.1, "radius": 2.0},
                                      {"kind": "backproject", "layer": 1, "steps": 5, "lr": 0.1},
                                      {"kind": "refine", "steps": 5, "lr": 0.1, "radius": 3.0}]}]
    assert [s.kind for s in parse_schedule(sched)] == ["init"] + ["forward", "backproject", "refine"] * 2
    assert [s.kind for s in parse_schedule(sched, skip=["refine"])] == ["init"] + ["forward", "backproject"] * 2
    assert all(s.radius is None for s in parse_schedule(sched, ball=False))


def test_paper_rule_returns_the_decoder_image_of_its_latent(prior, truth):
    """select=final on a schedule ending in refinement is PRILO's x* = G(z_0*): G(latent) is the image."""
    op = FourierPhaseRetrieval(SHAPE, seed=1)
    result = GenerativeSolver(prior, restarts=2, **SCHEDULES["prilo_paper"]).solve(op, op(truth), [0, 1, 2, 3], 5)
    with torch.no_grad():
        assert torch.equal(prior(result.latent).clamp(0, 1), result.x)
    best = GenerativeSolver(prior, restarts=2, **{**SCHEDULES["prilo_paper"], "select": "best"})
    assert best.solve(op, op(truth), [0, 1, 2, 3], 5).latent is None  # its image need not be G of any latent


def test_restarts_count_starts_with_two_start(prior, truth):
    """two_start splits the R starts into R/2 initial latents and their negations: no hidden doubling."""
    op = GaussianPhaseRetrieval(SHAPE, m=48, seed=1)
    y = op(truth)
    seen = []

    class Recording(RandomInit):
        def __call__(self, prior, operator, y, indices, seed, restarts):
            seen.append(restarts)
            return super().__call__(prior, operator, y, indices, seed, restarts)

    sched = [{"kind": "init", "steps": 3, "lr": 0.1}]
    GenerativeSolver(prior, sched, init=Recording(), restarts=4, two_start=True).solve(op, y, [0, 1, 2, 3], 0)
    GenerativeSolver(prior, sched, init=Recording(), restarts=4).solve(op, y, [0, 1, 2, 3], 0)
    assert seen == [2, 4]
    with pytest.raises(UserInputError, match="must be even"):
        GenerativeSolver(prior, sched, restarts=3, two_start=True)


def test_negation_check_flips_inside_a_ball(prior):
    """-z is far better than z, and z's stage ball (radius 0.5) excludes -z: the flip must survive projection."""
    op = GaussianPhaseRetrieval(SHAPE, m=48, seed=1)
    idx = [0, 1, 2, 3]
    z = RandomInit()(prior, op, None, idx, seed=6, restarts=1)
    with torch.no_grad():
        y = op(prior(-z))
    sched = [{"kind": "init", "steps": 5, "lr": 0.01, "radius": 0.5}]
    flipped = GenerativeSolver(prior, sched, init=RandomInit(), negation_check=True).solve(op, y, idx, seed=6)
    assert torch.all((flipped.latent + z).abs().sum(1) <= 0.5 + 1e-5)  # inside the ball around -z
    plain = GenerativeSolver(prior, sched, init=RandomInit()).solve(op, y, idx, seed=6)
    assert torch.all((plain.latent - z).abs().sum(1) <= 0.5 + 1e-5)
    assert torch.all(flipped.measurement_error < 0.1 * plain.measurement_error)
