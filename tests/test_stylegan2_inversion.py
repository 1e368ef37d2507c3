"""ILO and PRILO on the StyleGAN2 prior: W+ latent, noise maps and the z_0 radius, through invert.py too."""
import pytest
import torch

from operators import FourierPhaseRetrieval, Inpainting
from priors.io import save_prior
from priors.stylegan2 import StyleGAN2Prior
from solvers.generative import GenerativeSolver
from solvers.initialization import RandomInit
from tests.cli import run_inprocess

TINY = dict(size=32, channels=1, style_dim=16, n_mlp=2, max_channels=8)


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    g = StyleGAN2Prior(**TINY)
    g.fit_latent_statistics(num_samples=500)
    return g.eval().requires_grad_(False)


def test_protocol_identity_inside_the_solver(prior):
    """Forward stages confined to vanishing balls (state, W+ latent) return G(z0) of the start."""
    op = Inpainting((1, 32, 32), observed_ratio=0.5, seed=0)
    with torch.no_grad():
        y = op(prior(prior.sample_latent(2, generator=torch.Generator().manual_seed(1))))
    z0 = RandomInit()(prior, op, y, [0, 1], seed=2, restarts=1)
    solver = GenerativeSolver(prior, [{"kind": "forward", "layer": i, "steps": 2, "lr": 0.1, "radius": 1e-12,
                                       "latent_radius": 1e-12} for i in (1, 2, 3)])
    result = solver.solve(op, y, [0, 1], seed=2)
    with torch.no_grad():
        assert torch.allclose(result.x, prior(z0).clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("stages", [
    # ILO 4.1: W+ and noise first, then synthesis blocks in turn with the travelling W+ bounded
    [{"kind": "init", "steps": 40, "lr": 0.1, "optimize_noise": True},
     {"kind": "forward", "layer": 1, "steps": 40, "lr": 0.05, "radius": 50, "latent_radius": 20, "optimize_noise": True},
     {"kind": "forward", "layer": 2, "steps": 40, "lr": 0.05, "radius": 50, "latent_radius": 20}],
    # PRILO table 9 structure
    [{"kind": "init", "steps": 40, "lr": 0.1, "radius": 1000},
     {"kind": "forward", "layer": 1, "steps": 40, "lr": 0.05, "radius": 200, "latent_radius": 100},
     {"kind": "backproject", "layer": 1, "steps": 20, "lr": 0.05, "radius": 1000, "center": "zero"},
     {"kind": "refine", "steps": 40, "lr": 0.05, "radius": 1000}],
])
def test_ilo_and_prilo_reduce_measurement_error(prior, stages):
    op = FourierPhaseRetrieval((1, 32, 32), seed=0)
    with torch.no_grad():
        y = op(prior(prior.sample_latent(3, generator=torch.Generator().manual_seed(4))))
    z0 = RandomInit()(prior, op, y, [0, 1, 2], seed=1, restarts=1)
    with torch.no_grad():
        start = op.measurement_error(prior(z0), y)
    result = GenerativeSolver(prior, stages, select="best").solve(op, y, [0, 1, 2], seed=1)
    assert not result.failed.any()
    assert result.measurement_error.mean() < 0.5 * start.mean()


def test_invert_cli_with_a_stylegan2_prior(tmp_path, prior):
    path = save_prior({"prior_config": prior.config(), "state_dict": prior.state_dict(), "extra": {}},
                      tmp_path / "sg2.pt")
    out = tmp_path / "run"
    proc = run_inprocess("invert.py", f"prior.checkpoint={path}", "data.image_size=32", "solver=ilo_stylegan_l1",
                         "init=random", "num_images=2", "restarts=1", f"hydra.run.dir={out}", "logger=csv",
                         "trainer.enable_progress_bar=false",
                   "solver.schedule=[{kind:init,steps:5,lr:0.1},{kind:forward,layer:1,steps:5,radius:100,latent_radius:30},"
                   "{kind:forward,layer:2,steps:5,radius:100,latent_radius:30}]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ilo_l1-random" in (out / "summary.md").read_text()
