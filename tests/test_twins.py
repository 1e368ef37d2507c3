"""Fourier twin selection without ground truth (solvers/twins.py) and its place in invert.py."""
import pickle
from types import SimpleNamespace

import pytest
import torch

from common.errors import UserInputError
from evaluation.alignment import FourierAlignment, apply_alignment
from operators import FourierPhaseRetrieval, Inpainting
from priors.vae import VAE
from solvers.generative import GenerativeSolver
from solvers.twins import TwinSelection, centred, elbo, reconstruction_residual, resolve_rule, select_twins
from tests.cli import run_inprocess, tiny_vae_prior


def digit(h=28, w=28):
    """An asymmetric stroke image whose mass centre lies within half a pixel of (14, 14), as MNIST's do."""
    x = torch.zeros(1, 1, h, w)
    x[0, 0, 8:20, 12] = 1.0
    x[0, 0, 8, 12:18] = 1.0
    x[0, 0, 19, 9:13] = 0.5
    rows, cols = torch.arange(h).float(), torch.arange(w).float()
    m = x.sum()
    com = ((x[0, 0].sum(1) * rows).sum() / m, (x[0, 0].sum(0) * cols).sum() / m)
    shift = (round(14 - com[0].item()), round(14 - com[1].item()))
    return x.roll(shift, dims=(-2, -1))


def twins_of(x, shifts, flips):
    n = len(shifts)
    al = FourierAlignment(shift=torch.tensor(shifts), flipped=torch.tensor(flips), sign=torch.ones(n, dtype=torch.long))
    return apply_alignment(x.expand(n, -1, -1, -1), al)


def test_centring_undoes_every_shift_including_wrap_around():
    x = digit()
    shifts = [[0, 0], [3, 25], [27, 1], [14, 14], [20, 9]]
    moved = twins_of(x, shifts, [False] * 5)
    out = centred(moved, torch.zeros(5, dtype=torch.bool), (14.0, 14.0))
    assert torch.allclose(out, x.expand(5, -1, -1, -1))
    # flipped twins come back as the centred flip, whatever their shift
    flipped = twins_of(x, shifts, [True] * 5)
    out = centred(flipped, torch.zeros(5, dtype=torch.bool), (14.0, 14.0))
    assert torch.allclose(out, out[:1].expand(5, -1, -1, -1))
    assert torch.allclose(centred(out[:1], torch.ones(1, dtype=torch.bool), (14.0, 14.0)), x)


def test_twins_keep_the_fourier_magnitudes_and_centre_elbo_keeps_the_higher_elbo():
    torch.manual_seed(0)
    vae = VAE((1, 28, 28), latent_dim=4, hidden_dim=16).eval().requires_grad_(False)
    x = torch.cat([twins_of(digit(), [[5, 7]], [True]), torch.rand(2, 1, 28, 28)])
    op = FourierPhaseRetrieval((1, 28, 28))
    for rule in ("centre", "centre_elbo", "centre_recon"):
        out = select_twins(x, rule, vae)
        assert torch.allclose(op(out), op(x), atol=1e-5)
    n = len(x)
    plain = centred(x, torch.zeros(n, dtype=torch.bool), (14.0, 14.0))
    flipped = centred(x, torch.ones(n, dtype=torch.bool), (14.0, 14.0))
    e_plain, e_flip = elbo(vae, plain), elbo(vae, flipped)
    expected = torch.where((e_flip > e_plain)[:, None, None, None], flipped, plain)
    assert torch.equal(select_twins(x, "centre_elbo", vae), expected)
    r_plain, r_flip = reconstruction_residual(vae, plain), reconstruction_residual(vae, flipped)
    expected = torch.where((r_flip < r_plain)[:, None, None, None], flipped, plain)
    assert torch.equal(select_twins(x, "centre_recon", vae), expected)
    assert torch.equal(select_twins(x, "none", vae), x)


def test_wrapper_applies_only_to_fourier_magnitudes_without_oversampling():
    torch.manual_seed(0)
    vae = VAE((1, 28, 28), latent_dim=4, hidden_dim=16).eval().requires_grad_(False)
    solver = GenerativeSolver(vae, [{"kind": "init", "steps": 3, "lr": 0.1}])
    wrapped = TwinSelection(solver, "centre_elbo")
    assert wrapped.prior is vae and wrapped.restarts == 1  # the solver's own attributes
    copy = pickle.loads(pickle.dumps(wrapped))  # DDP spawn pickles the solver into each process
    assert copy.rule == "centre_elbo" and copy.restarts == 1
    x = twins_of(digit(), [[5, 7], [20, 3]], [True, False])
    fourier = FourierPhaseRetrieval((1, 28, 28))
    raw, kept = solver.solve(fourier, fourier(x), [0, 1], seed=0), wrapped.solve(fourier, fourier(x), [0, 1], seed=0)
    assert torch.equal(kept.x, select_twins(raw.x, "centre_elbo", vae))
    assert torch.equal(kept.measurement_error, raw.measurement_error) and kept.latent is None
    assert TwinSelection.applies("centre", fourier, vae)
    assert not TwinSelection.applies("centre", FourierPhaseRetrieval((1, 28, 28), oversampling=2), vae)
    assert not TwinSelection.applies("centre", Inpainting((1, 28, 28)), vae)
    assert not TwinSelection.applies("none", fourier, vae)
    assert not TwinSelection.applies("centre_elbo", fourier, object())  # no encoder: no ELBO
    with pytest.raises(UserInputError, match="twin_selection.rule"):
        TwinSelection(solver, "elbo")
    with pytest.raises(UserInputError, match="VAE"):
        TwinSelection(SimpleNamespace(prior=object()), "centre_elbo")
    with pytest.raises(UserInputError, match="VAE"):
        TwinSelection(SimpleNamespace(prior=object()), "centre_recon")


def test_auto_rule_only_where_validated():
    vae = VAE((1, 28, 28), latent_dim=4, hidden_dim=16)
    assert resolve_rule("auto", True, vae) == "centre_recon"
    assert resolve_rule("auto", True, vae, select="best") == "centre_recon"
    assert resolve_rule("auto", True, vae, select="final") == "none"  # the paper's x* = G(z_0*) stays as it is
    assert resolve_rule("auto", False, vae) == "none"  # data not placed by its mass centre
    assert resolve_rule("auto", True, object()) == "none"  # no encoder
    assert resolve_rule("centre", False, object()) == "centre"  # explicit rules are the user's choice
    with pytest.raises(UserInputError, match="auto or one of"):
        resolve_rule("elbo", True, vae)


def test_invert_cli_twin_selection(tmp_path):
    prior = tiny_vae_prior(tmp_path / "vae.pt")
    common = [f"prior.checkpoint={prior}", "solver=csgm", "init=random", "num_images=3", "restarts=1", "logger=csv",
              "trainer.enable_progress_bar=false", "solver.schedule=[{kind:init,steps:5,lr:0.1}]"]
    recs = {}
    for rule in ("none", "centre"):
        out = tmp_path / rule
        proc = run_inprocess("invert.py", *common, f"twin_selection.rule={rule}", f"hydra.run.dir={out}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        recs[rule] = torch.load(out / "reconstructions.pt")["x_hat"]
    assert torch.equal(recs["centre"], select_twins(recs["none"], "centre"))
    proc = run_inprocess("invert.py", *common, "twin_selection.rule=elbo", f"hydra.run.dir={tmp_path / 'bad'}")
    assert proc.returncode == 2 and "twin_selection.rule" in proc.stderr
