"""ILO as its authors run it (conf/solver/ilo_stylegan.yaml): each ingredient, then whole runs."""
import math

import pytest
import torch
from omegaconf import OmegaConf

from common.errors import UserInputError
from operators import Inpainting
from priors.io import save_prior
from priors.vae import VAE
from solvers.generative import GenerativeSolver, _Position
from solvers.initialization import GaussianInit, random_noise_maps
from solvers.lr_schedule import lr_factor
from solvers.regularizers import geocross
from solvers.schedule import parse_schedule
from solvers.sphere import SphereProjection
from tests.cli import ROOT, run_inprocess
from tests.test_stylegan2_inversion import prior  # noqa: F401  (the tiny StyleGAN2 fixture)


def official_geocross(latent):  # ilo_stylegan.py loss_geocross, verbatim but for the batch of one
    num_latents = latent.size()[1]
    X = latent.view(-1, 1, num_latents, 512)
    Y = latent.view(-1, num_latents, 1, 512)
    A = ((X - Y).pow(2).sum(-1) + 1e-9).sqrt()
    B = ((X + Y).pow(2).sum(-1) + 1e-9).sqrt()
    D = 2 * torch.atan2(A, B)
    return ((D.pow(2) * 512).mean((1, 2)) / 8.).mean()


def test_geocross_values():
    d = 4
    orthogonal = torch.zeros(1, 2, d)
    orthogonal[0, 0, 0] = orthogonal[0, 1, 1] = 3.0  # two rows at a right angle
    assert geocross(orthogonal).item() == pytest.approx(d * math.pi ** 2 / 64, rel=1e-5)
    opposite = torch.stack([orthogonal[:, 0], -orthogonal[:, 0]], dim=1)  # angle pi
    assert geocross(opposite).item() == pytest.approx(d * math.pi ** 2 / 16, rel=1e-5)
    assert geocross(torch.ones(3, 5, d)).abs().max() < 1e-3  # identical rows
    assert torch.equal(geocross(torch.randn(3, d)), torch.zeros(3))  # no rows to compare
    z = torch.randn(1, 18, 512, generator=torch.Generator().manual_seed(0))
    assert geocross(z).item() == pytest.approx(official_geocross(z).item(), rel=1e-6)
    two = torch.randn(2, 6, 512)
    assert torch.allclose(geocross(two), torch.stack([official_geocross(r[None]) for r in two]))


def test_sphere_projection_restores_each_norm():
    latent, noise, flat = torch.randn(2, 3, 8), torch.randn(2, 1, 4, 4), torch.randn(2, 5)
    start = [latent.norm(dim=2), noise.flatten(2).norm(dim=2), flat.norm(dim=1)]
    sphere = SphereProjection([latent, noise, flat])
    steps = [torch.randn_like(v) for v in (latent, noise, flat)]
    moved = []
    for v, s in zip((latent, noise, flat), steps):
        v.add_(s)
        moved.append(v.clone())
    sphere.project_()
    norms = [latent.norm(dim=2), noise.flatten(2).norm(dim=2), flat.norm(dim=1)]
    for a, b in zip(norms, start):
        assert torch.allclose(a, b, atol=1e-5)
    # only the length changes: the projected variable is a positive multiple of the moved one
    assert torch.allclose(latent / latent.norm(dim=2, keepdim=True), moved[0] / moved[0].norm(dim=2, keepdim=True),
                          atol=1e-6)


def test_cosine_schedule_values():
    assert lr_factor("cosine", 0.0) == 0.0  # the official first step does not move
    assert lr_factor("cosine", 0.025) == pytest.approx(0.5)  # half-way through the 5% warm-up
    assert lr_factor("cosine", 0.05) == pytest.approx(1.0)
    assert lr_factor("cosine", 0.25) == pytest.approx(1.0)  # decay starts at 25%
    assert lr_factor("cosine", 0.625) == pytest.approx(0.5)
    assert lr_factor("cosine", 0.9) == pytest.approx(0.5 - 0.5 * math.cos(0.1 / 0.75 * math.pi))
    assert lr_factor("cosine", 1.0) == pytest.approx(0.0)
    assert lr_factor("constant", 0.0) == 1.0
    with pytest.raises(UserInputError, match="lr_schedule"):
        parse_schedule([{"kind": "init", "steps": 2, "lr": 0.1, "lr_schedule": "linear"}])


def test_cosine_stage_of_one_step_does_not_move(prior):
    op = Inpainting((1, 32, 32), observed_ratio=0.5, seed=0)
    with torch.no_grad():
        y = op(prior(prior.sample_latent(2, generator=torch.Generator().manual_seed(1))))
    z0 = GaussianInit()(prior, op, y, [0, 1], seed=3, restarts=1)
    moved = {}
    for schedule in ("cosine", "constant"):
        solver = GenerativeSolver(prior, [{"kind": "init", "steps": 1, "lr": 0.5, "lr_schedule": schedule}],
                                  init=GaussianInit())
        moved[schedule] = solver.solve(op, y, [0, 1], seed=3).latent
    assert torch.equal(moved["cosine"], z0)
    assert not torch.allclose(moved["constant"], z0)


def test_noise_maps_limit_which_maps_are_optimised(prior):
    stages = parse_schedule([{"kind": "init", "steps": 1, "lr": 0.1, "optimize_noise": True, "noise_maps": 3},
                             {"kind": "forward", "layer": 1, "steps": 1, "lr": 0.1, "optimize_noise": True,
                              "noise_maps": 5},
                             {"kind": "forward", "layer": 1, "steps": 1, "lr": 0.1, "optimize_noise": True}])
    solver = GenerativeSolver(prior, [{"kind": "init", "steps": 1, "lr": 0.1}])
    pos = _Position(z0=prior.sample_latent(1))
    names = [sorted(v.name for v in solver.declare(stage, pos).variables) for stage in stages]
    assert names[0] == ["noise.0", "noise.1", "noise.2", "state"]  # z_0 is the state at split 0
    assert names[1] == ["latent", "noise.1", "noise.2", "noise.3", "noise.4", "state"]  # noise.0 is read before
    assert names[2] == ["latent"] + [f"noise.{j}" for j in range(1, prior.num_convs)] + ["state"]


def test_random_noise_maps_and_gaussian_init_are_per_sample(prior):
    both, one = random_noise_maps(prior, 5, [3, 4], 2), random_noise_maps(prior, 5, [4], 2)
    fixed = prior.noise_maps(1)
    assert set(both) == set(fixed)
    for k in both:
        assert both[k].shape == (4, *fixed[k].shape[1:])
        assert torch.equal(both[k][2:], one[k])  # index 4's maps do not depend on the batch
        assert not torch.equal(both[k][0], both[k][1])  # restarts draw their own
    z = GaussianInit()(prior, None, None, [3, 4], seed=5, restarts=2)
    assert z.shape == (4, *prior.latent_shape)
    assert torch.equal(z[2:], GaussianInit()(prior, None, None, [4], seed=5, restarts=2))
    assert not torch.allclose(z[0, 0], z[0, 1])  # every W+ row on its own
    with pytest.raises(UserInputError, match="noise maps"):
        random_noise_maps(VAE((1, 8, 8), latent_dim=4, hidden_dim=16), 0, [0], 1)


def test_best_last_stage_keeps_the_lowest_error_of_the_last_stage():
    torch.manual_seed(0)
    vae = VAE((1, 8, 8), latent_dim=4, hidden_dim=16).eval().requires_grad_(False)
    op = Inpainting((1, 8, 8), observed_ratio=0.5, seed=0)
    with torch.no_grad():
        y = op(vae(torch.randn(1, 4, generator=torch.Generator().manual_seed(2))))
    # steps large enough to oscillate: stage 1 ends above its best, and the rules differ
    schedule = [{"kind": "init", "steps": 30, "lr": 1.0}, {"kind": "init", "steps": 8, "lr": 1.0}]
    runs = {select: GenerativeSolver(vae, schedule, select=select).solve(op, y, [0], seed=1)
            for select in ("best", "best_last_stage", "final")}
    last = runs["best_last_stage"]
    final = runs["final"].measurement_error.item()  # the same trajectory's last iterate
    expected = min(min(last.history["01_init"]), final)
    assert last.measurement_error.item() == pytest.approx(expected, rel=1e-5)
    assert runs["best"].measurement_error.item() <= min(runs["best"].history["00_init"]) + 1e-7
    assert runs["best"].measurement_error.item() < last.measurement_error.item()


def official_solver(prior, steps, **overrides):
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/solver/ilo_stylegan.yaml"))
    cfg.pop("defaults")
    cfg["loss"]["lpips"] = 0.0  # a 1-channel 32 px test prior; LPIPS-VGG is covered in test_lpips.py
    for stage, n in zip(cfg["schedule"], steps):
        stage["steps"] = n
    cfg.update(overrides)
    return GenerativeSolver(prior, init=GaussianInit(), **{k: v for k, v in cfg.items() if k != "_target_"})


def test_official_ilo_reduces_the_measurement_error(prior):
    op = Inpainting((1, 32, 32), observed_ratio=0.5, seed=0)
    with torch.no_grad():
        y = op(prior(prior.sample_latent(3, generator=torch.Generator().manual_seed(4))))
    z0 = GaussianInit()(prior, op, y, [0, 1, 2], seed=1, restarts=1)
    noise = random_noise_maps(prior, 1, [0, 1, 2], 1)
    with torch.no_grad():
        start = op.measurement_error(prior.from_layer({**prior.initial_representation(z0), **noise}, 0), y)
    solver = official_solver(prior, [30, 20, 10, 10])
    assert [s.label for s in solver.stages] == ["init", "forward@1", "forward@2", "forward@3"]
    result = solver.solve(op, y, [0, 1, 2], seed=1)
    assert not result.failed.any()
    assert result.measurement_error.mean() < 0.5 * start.mean()


def test_invert_cli_runs_official_ilo(tmp_path, prior):
    path = save_prior({"prior_config": prior.config(), "state_dict": prior.state_dict(), "extra": {}},
                      tmp_path / "sg2.pt")
    out = tmp_path / "run"
    proc = run_inprocess("invert.py", f"prior.checkpoint={path}", "data.image_size=32", "solver=ilo_stylegan",
                         "init=gaussian", "operator=inpainting", "num_images=2", "restarts=1", f"hydra.run.dir={out}",
                         "logger=csv", "trainer.enable_progress_bar=false", "solver.loss.lpips=0",
                         "solver.schedule=[{kind:init,steps:6,noise_maps:5},{kind:forward,layer:1,steps:6,noise_maps:7},"
                         "{kind:forward,layer:2,steps:4,noise_maps:9}]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ilo-gaussian" in (out / "summary.md").read_text()
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and all(",ok" in r or "status" in r for r in rows)


@pytest.mark.parametrize("solver, lpips, geocross", [("ilo_stylegan", 1.0, 0.01), ("ilo_stylegan_mse", 0.0, 0.0)])
def test_composed_official_ilo_loss_is_the_mean_squared_error_alone(solver, lpips, geocross):
    """As invert.py composes it (defaults chain ilo -> ilo_stylegan), not as the file reads: the official loss
    is 4 x the mean squared error on [0, 1] images (+ LPIPS, geocross), with no summed squared error on top."""
    from benchmarks.common import compose_invert

    loss = compose_invert(f"solver={solver}").solver.loss
    assert dict(loss) == {"mse": 0.0, "mse_mean": 4.0, "lpips": lpips, "geocross": geocross}
