"""GAN training module: EMA math, RTIL mixture (lambda = 1 is vanilla, lambda = 0 only the family), DDP."""
from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from common.errors import UserInputError
from lightning_modules.adversarial import ema_decay, ema_update, rtil_members
from lightning_modules.gan import GANModule
from lightning_modules.losses import r1_penalty
from priors.stylegan2 import StyleGAN2Prior

torch.set_num_threads(1)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
PRIOR = dict(_target_="priors.stylegan2.StyleGAN2Prior", size=16, channels=1, style_dim=16, n_mlp=2, max_channels=8)
DISC = dict(_target_="priors.stylegan2.StyleGAN2Discriminator", size=16, channels=1, max_channels=8)
# a list of dicts is a picklable map-style dataset (ddp_spawn ships it to the workers)
DATA = [{"image": torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(i)), "index": i} for i in range(20)]


def make_module(**kwargs) -> GANModule:
    torch.manual_seed(0)
    return GANModule(PRIOR, DISC, sample_every_n_steps=10_000, num_samples=4, **kwargs)


def fit(module: GANModule, iterations: int, **trainer_kwargs) -> pl.Trainer:
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                         limit_train_batches=iterations, **trainer_kwargs)
    trainer.fit(module, DataLoader(DATA, batch_size=4))
    return trainer


# -- EMA -------------------------------------------------------------------------------------
def test_ema_decay_is_the_stylegan2_half_life():
    assert ema_decay(32, 10.0) == 0.5 ** (32 / 10_000)
    # after half_life_kimg thousand images the old weights count one half
    assert math.isclose(ema_decay(8, 10.0) ** (10_000 / 8), 0.5, rel_tol=1e-9)


def test_ema_update_moves_parameters_and_leaves_buffers():
    torch.manual_seed(0)
    ema, model = StyleGAN2Prior(size=8, style_dim=4, n_mlp=1, max_channels=2), StyleGAN2Prior(size=8, style_dim=4,
                                                                                             n_mlp=1, max_channels=2)
    with torch.no_grad():
        model.w_gauss_std.fill_(3.0)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    ema_update(ema, model, 0.9)
    for name, p in ema.named_parameters():
        expected = 0.9 * before[name] + 0.1 * dict(model.named_parameters())[name]
        assert torch.allclose(p, expected, atol=1e-6), name
    assert torch.equal(ema.w_gauss_std, before["w_gauss_std"])
    ema_update(ema, model, 0.0)
    assert all(torch.equal(p, q) for p, q in zip(ema.parameters(), model.parameters()))


# -- the RTIL mixture ------------------------------------------------------------------------
def test_rtil_mixture_weights_and_bad_configs():
    assert rtil_members(0.5, [1, 2, 3, 4], 7) == [(0, 0.5), (1, 0.125), (2, 0.125), (3, 0.125), (4, 0.125)]
    assert rtil_members(0.2, [4, 3, 2, 1], 7) == [(0, 0.2)] + [(k, pytest.approx(0.2)) for k in (1, 2, 3, 4)]
    assert rtil_members(1.0, [1, 2], 7) == [(0, 1.0)]
    assert rtil_members(0.0, [1, 2], 7) == [(1, 0.5), (2, 0.5)]
    assert [k for k, _ in rtil_members(0.5, None, 7)] == [0, 1, 2, 3, 4]  # paper: up to the 4th block
    assert [k for k, _ in rtil_members(0.5, None, 4)] == [0, 1, 2, 3]  # 32x32: the image split is 4
    for lam, layers in [(0.5, [4]), (0.5, [0]), (0.5, [1, 1]), (1.5, [1]), (0.5, [])]:
        with pytest.raises(UserInputError):
            rtil_members(lam, layers, 4)


def test_family_member_adds_noise_to_the_state_after_each_split():
    module = make_module(rtil={"lambda_": 0.5, "sigma": 0.0, "layers": [1, 2]})
    gen = module.generator
    w_plus = gen.broadcast_w(gen.mapping(torch.randn(3, 16)))
    plain = module.generate(gen, w_plus, 0, fixed_noise=True)
    assert torch.equal(module.generate(gen, w_plus, 2, fixed_noise=True), plain)  # sigma = 0: G~_k = G
    module.sigma = 0.7
    module._generators()[0].manual_seed(5)
    noisy = module.generate(gen, w_plus, 2, fixed_noise=True)
    # by hand: z_1 after split 1, z_2 after split 2, then the rest of the generator
    g = torch.Generator().manual_seed(5)
    rep = gen.to_layer(gen.w_to_latent(w_plus), 1)
    rep["state"] = rep["state"] + 0.7 * torch.randn(rep["state"].shape, generator=g)
    rep = gen.run(rep, 1, 2)
    rep["state"] = rep["state"] + 0.7 * torch.randn(rep["state"].shape, generator=g)
    assert torch.allclose(noisy, gen.from_layer(rep, 2) * 2 - 1, atol=1e-6)
    assert not torch.allclose(noisy, plain, atol=1e-2)


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    a = torch.randn(1, 3, 4, 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    assert torch.allclose(r1_penalty((x * a).flatten(1).sum(1, keepdim=True), x), a.pow(2).sum())


def test_optimizers_carry_the_lazy_regularization_correction():
    g_opt, d_opt = make_module().configure_optimizers()
    assert g_opt.param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5)
    assert g_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert d_opt.param_groups[0]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert all(isinstance(b, float) for b in g_opt.param_groups[0]["betas"])


def test_lambda_one_is_exactly_vanilla_training():
    vanilla, rtil = make_module(), make_module(rtil={"lambda_": 1.0, "sigma": 1.0, "layers": [1, 2]})
    t1, t2 = fit(vanilla, 3), fit(rtil, 3)
    metrics = [{k: float(v) for k, v in t.callback_metrics.items()} for t in (t1, t2)]
    assert metrics[0] == metrics[1]
    for (name, p), q in zip(vanilla.state_dict().items(), rtil.state_dict().values()):
        assert torch.equal(p, q), name


def test_lambda_zero_trains_only_the_family():
    module = make_module(rtil={"lambda_": 0.0, "sigma": 1.0, "layers": [1, 2]})
    calls = []
    original = module.family_image
    module.family_image = lambda gen, rep, k, draw: calls.append(k) or original(gen, rep, k, draw)
    losses = module.generator_loss(4)
    assert set(losses) == {"loss", "k1", "k2"}
    assert torch.allclose(losses["loss"], (losses["k1"] + losses["k2"]) / 2)
    module.discriminator_loss(torch.rand(4, 1, 16, 16) * 2 - 1)
    module.path_length_loss(2)
    assert calls == [1, 2] * 3  # G(z0) never reaches a loss


@pytest.mark.parametrize("rtil", [None, {"lambda_": 0.5, "sigma": 1.0, "layers": [1, 2]}], ids=["vanilla", "rtil"])
def test_tiny_stylegan2_trains_without_nans_and_exports_a_prior(rtil):
    module = make_module(rtil=rtil)
    start = {k: v.clone() for k, v in module.generator.state_dict().items()}
    trainer = fit(module, 5)  # iterations 0 and 4 include R1 and path-length steps
    assert int(module.iteration) == 5
    metrics = trainer.callback_metrics
    for key in ("train/d_loss", "train/g_loss", "train/r1", "train/path_loss", "train/mean_path_length"):
        assert torch.isfinite(metrics[key]), key
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert (module.mean_path_length > 0).all()
    changed = [k for k, v in module.generator.state_dict().items() if not torch.equal(v, start[k])]
    assert "conv1.conv.weight" in changed and "style.1.weight" in changed
    # the EMA generator moved a little towards the trained one
    ema, gen = module.prior.conv1.conv.weight, module.generator.conv1.conv.weight
    assert not torch.equal(ema, start["conv1.conv.weight"]) and not torch.equal(ema, gen)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)  # Lightning checkpoints carry fitted statistics too
    assert (checkpoint["state_dict"]["prior.w_gauss_std"] != 1).all()
    exported = module.export_prior()
    prior = instantiate(exported["prior_config"])
    prior.load_state_dict(exported["state_dict"], strict=True)
    assert (prior.w_gauss_std != 1).all()
    x = prior(prior.sample_latent(2))
    assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()
    samples = module.member_samples(max(k for k, _ in module.members))
    assert samples.shape == (4, 1, 16, 16) and samples.min() >= 0 and samples.max() <= 1


class CheckRanksAgree(pl.Callback):
    """Every rank must hold the same weights after training (gradients are averaged)."""

    def on_train_end(self, trainer, pl_module):
        total = torch.stack([p.detach().double().sum() for p in pl_module.parameters()]).sum()
        gathered = trainer.strategy.all_gather(total)
        assert torch.allclose(gathered, gathered[0].expand_as(gathered), rtol=0, atol=1e-9), gathered
        draws = trainer.strategy.all_gather(pl_module.mean_path_length)
        assert not torch.equal(draws[0], draws[1])  # ranks draw different latents


@pytest.mark.slow
def test_ddp_spawn_two_processes():
    module = make_module(rtil={"lambda_": 0.5, "sigma": 1.0, "layers": [1, 2]})
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1, limit_train_batches=2,
                         callbacks=[CheckRanksAgree()])
    trainer.fit(module, DataLoader(DATA, batch_size=4))
    assert int(module.iteration) == 2  # rank 0's state comes back to this process
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("model,members", [("stylegan2", [0]), ("rtil_stylegan2", [0, 1, 2, 3])])
def test_model_configs_compose_and_build(model, members):
    overrides = [f"model={model}", "model.module.prior.style_dim=16",
                 "model.module.prior.n_mlp=1", "model.module.prior.max_channels=4"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    module = instantiate(cfg.model.module)
    assert isinstance(module, GANModule) and [k for k, _ in module.members] == members
    assert module.prior.image_shape == (cfg.data.channels, 32, 32)
    assert module.discriminator.convs[0][0].weight.shape == (4, cfg.data.channels, 1, 1)
    assert module.hparams.betas == [0.0, 0.99]
