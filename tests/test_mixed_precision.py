"""trainer.precision=bf16-mixed (bf16 autocast runs on the CPU) and channels_last: GAN, VAE and LI
encoder training steps stay finite, penalties and operators stay float32, inversion under bf16 is
within the tolerance stated in the README of float32, and channels-last models give the same outputs."""
from __future__ import annotations

import csv

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from common.precision import channels_last, float32, uncached_autocast
from evaluation.metrics import psnr
from lightning_modules.gan import GANModule
from lightning_modules.losses import WGANGP, Logistic
from lightning_modules.progressive import ProgressiveGANModule
from lightning_modules.vae import VAEModule
from operators.fourier import FourierPhaseRetrieval
from operators.gaussian import GaussianCompressedSensing, GaussianPhaseRetrieval
from priors.io import load_prior
from priors.stylegan2 import StyleGAN2Discriminator, StyleGAN2Prior
from solvers.generative import GenerativeSolver
from solvers.initialization import RandomInit
from tests import test_gan_training as sg2
from tests import test_pggan as pg
from tests.cli import run_inprocess, tiny_vae_prior

torch.set_num_threads(1)
BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}
#: the stated tolerance (README "Mixed precision"; benchmarks/mixed_precision.py measures it)
PSNR_TOLERANCE_DB, ERROR_TOLERANCE = 1.0, 0.05


def fit(module, data, iterations: int, precision: str = "bf16-mixed", root=None) -> None:
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                         limit_train_batches=iterations, precision=precision, default_root_dir=root)
    trainer.fit(module, DataLoader(data, batch_size=4))


def finite_and_moved(module, before: dict) -> None:
    state = module.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert any(not torch.equal(state[k], v) for k, v in before.items() if k.startswith(("generator.", "encoder.",
                                                                                         "prior.", "discriminator.")))


# -- training under bf16-mixed --------------------------------------------------------------------
def test_stylegan2_rtil_trains_under_bf16_with_r1_and_path_length_every_step():
    module = sg2.make_module(rtil={"lambda_": 0.5, "sigma": 1.0, "layers": [1, 2]}, d_reg_every=1, g_reg_every=1)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    fit(module, sg2.DATA, 3)
    finite_and_moved(module, before)
    assert module.mean_path_length.dtype == torch.float32 and (module.mean_path_length > 0).all()


def test_pggan_rtil_trains_under_bf16_through_a_fade():
    module = pg.make(rtil=pg.RTIL)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    fit(module, pg.DATA, 4)  # level 0, then the fade to 8x8
    finite_and_moved(module, before)
    assert int(module.level) == 1


def test_vae_trains_under_bf16():
    module = VAEModule({"_target_": "priors.vae.VAE", "image_shape": [1, 8, 8], "latent_dim": 4, "hidden_dim": 16})
    before = {k: v.clone() for k, v in module.state_dict().items()}
    data = [{"image": torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(i)), "index": i} for i in range(16)]
    fit(module, data, 3)
    finite_and_moved(module, before)


def test_learned_init_encoder_trains_under_bf16(tmp_path):
    from tests.test_learned_init import SHAPE, make_module, prior_images

    module = make_module(tiny_vae_prior(tmp_path / "vae.pt", image_shape=SHAPE), lambda_perc=0.0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = prior_images(module.prior, 16, seed=1)
    fit(module, [{"image": x[i], "index": i} for i in range(16)], 3, root=tmp_path)  # encoder.pt goes there
    finite_and_moved(module, before)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])  # 16-mixed is GPU-only in Lightning
def test_gradient_penalties_are_float32_under_autocast(dtype):
    torch.manual_seed(0)
    disc = StyleGAN2Discriminator(size=16, channels=1, max_channels=8)
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    critic = lambda x: disc(x).flatten()  # noqa: E731
    reference = Logistic(r1=10.0, reg_every=1).lazy_regularizer(critic, real)["r1"]
    with torch.autocast("cpu", dtype=dtype):
        r1 = Logistic(r1=10.0, reg_every=1).lazy_regularizer(critic, real)["r1"]
        gp = WGANGP().discriminator_loss(critic, real, [(1.0, real.flip(0).to(dtype))],
                                         torch.Generator().manual_seed(0))["gradient_penalty"]
    assert r1.dtype == gp.dtype == torch.float32
    torch.testing.assert_close(r1, reference, rtol=1e-5, atol=0)  # computed in float32, not in half precision
    # the path-length penalty of StyleGAN2 too: the same draws give the float32 value
    reference = sg2.make_module().generator_regularization(4)["path_loss"]
    with torch.autocast("cpu", dtype=dtype):
        path_loss = sg2.make_module().generator_regularization(4)["path_loss"]
    torch.testing.assert_close(path_loss, reference, rtol=1e-5, atol=0)


# -- operators and inversion ------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda s: FourierPhaseRetrieval(s, oversampling=2.0),
                                  lambda s: GaussianPhaseRetrieval(s, ratio=2.0),
                                  lambda s: GaussianCompressedSensing(s, ratio=0.5)])
def test_operators_evaluate_in_float32_under_autocast(make):
    op = make((1, 8, 8))
    x = torch.rand(3, 1, 8, 8)
    y = op(x)
    with torch.autocast(**BF16):
        assert torch.equal(op(x), y) and torch.equal(op.measurement_error(x, y), op.measurement_error(x, y))
        assert op(x.bfloat16()).dtype == torch.float32  # half inputs are cast up
        if op.is_linear:
            assert torch.equal(op.adjoint(y), op.adjoint(y)) and op.adjoint(y).dtype == torch.float32
        else:
            assert torch.equal(op.linear(x), op.linear(x))
    with float32("cpu"), torch.autocast(**BF16):
        pass  # nesting is allowed either way round


@pytest.mark.parametrize("prior_kind", ["vae", "stylegan2"])
def test_inversion_under_bf16_autocast_is_within_the_stated_tolerance_of_float32(tmp_path, prior_kind):
    if prior_kind == "vae":
        prior = load_prior(tiny_vae_prior(tmp_path / "vae.pt"))
    else:
        torch.manual_seed(0)
        prior = StyleGAN2Prior(size=16, channels=1, style_dim=16, n_mlp=2, max_channels=8).eval()
    prior.requires_grad_(False)
    with torch.no_grad():
        x = prior(prior.sample_latent(8, torch.Generator().manual_seed(1))).clamp(0, 1)
    op = GaussianPhaseRetrieval(prior.image_shape, ratio=2.0, noise_std=0.05)
    y = op.measure(x, torch.randn((8, *op.measurement_shape), generator=torch.Generator().manual_seed(2)))
    schedule = [{"kind": "init", "steps": 60, "lr": 0.1, "radius": None},
                {"kind": "forward", "layer": 1, "steps": 60, "lr": 0.05, "radius": 5}]
    solver = GenerativeSolver(prior, schedule, init=RandomInit(), restarts=2, select="best")
    full = solver.solve(op, y, list(range(8)), seed=0)
    # a user's autocast caches casts of leaf tensors; the engine turns the cache off (variables change in place)
    with torch.autocast(**BF16, cache_enabled=True):
        half = solver.solve(op, y, list(range(8)), seed=0)
    assert half.x.dtype == torch.float32 and not half.failed.any()
    assert abs(float(psnr(half.x, x).mean() - psnr(full.x, x).mean())) <= PSNR_TOLERANCE_DB
    ratio = float(half.measurement_error.mean() / full.measurement_error.mean())
    assert abs(ratio - 1) <= ERROR_TOLERANCE
    assert float(psnr(half.x, x).mean()) > 25  # it solved the problem, not merely failed like float32


def test_invert_py_under_bf16_mixed_and_channels_last_matches_float32(tmp_path):
    """Lightning's precision plugin autocasts predict_step; the report is within the stated tolerance."""
    prior = tiny_vae_prior(tmp_path / "vae.pt")
    schedule = "solver.schedule=[{kind:init,steps:40,lr:0.1,radius:100},{kind:forward,layer:1,steps:40,lr:0.05,radius:5}]"
    psnrs = {}
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / precision
        proc = run_inprocess("invert.py", f"prior.checkpoint={prior}", f"hydra.run.dir={out}", "logger=csv",
                             "num_images=4", "restarts=2", "init=random", "operator=gaussian_pr",
                             "trainer.enable_progress_bar=false", f"trainer.precision={precision}",
                             f"channels_last={precision != '32-true'}", schedule)
        assert proc.returncode == 0, proc.stderr[-3000:]
        psnrs[precision] = torch.tensor([float(r["psnr"]) for r in csv.DictReader((out / "metrics.csv").open())])
    assert abs(float(psnrs["bf16-mixed"].mean() - psnrs["32-true"].mean())) <= PSNR_TOLERANCE_DB


def test_uncached_autocast_is_a_no_op_without_autocast():
    with uncached_autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with torch.autocast(**BF16), uncached_autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


# -- channels_last ----------------------------------------------------------------------------------
def test_channels_last_stylegan2_and_pggan_give_the_same_outputs():
    for make_pair in (lambda: (StyleGAN2Prior(size=16, channels=3, style_dim=16, n_mlp=2, max_channels=8),
                               StyleGAN2Discriminator(size=16, channels=3, max_channels=8)),
                      lambda: (pg.make().generator, pg.make().discriminator)):
        torch.manual_seed(0)
        gen, disc = make_pair()
        z = gen.sample_latent(4, torch.Generator().manual_seed(0))
        with torch.no_grad():
            rep = gen.initial_representation(z)
            image = gen.from_layer(rep, 0)
            args = () if isinstance(disc, StyleGAN2Discriminator) else (2, 1.0)
            logits = disc(image * 2 - 1, *args)
            channels_last(gen)
            channels_last(disc)
            image_cl = gen.from_layer(rep, 0)
            logits_cl = disc((image * 2 - 1).contiguous(memory_format=torch.channels_last), *args)
        torch.testing.assert_close(image_cl, image, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logits_cl, logits, rtol=1e-4, atol=1e-4)


def test_channels_last_gan_module_trains_like_the_default_layout():
    runs = []
    for flag in (False, True):
        module = sg2.make_module(channels_last=flag)
        assert module.hparams.channels_last is flag
        fit(module, sg2.DATA, 2, precision="32-true")
        runs.append(module.prior.state_dict())
    assert runs[1]["input.input"].is_contiguous(memory_format=torch.channels_last)
    for k, v in runs[0].items():
        torch.testing.assert_close(runs[1][k], v, rtol=1e-3, atol=1e-4, msg=k)
