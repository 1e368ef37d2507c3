"""The generic adversarial core: any layered generator + discriminator + loss from config."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from common.errors import UserInputError
from lightning_modules.adversarial import AdversarialModule
from lightning_modules.losses import BCE, WGANGP, Logistic

torch.set_num_threads(1)

# a plain pair given by config: the fully connected VAE decoder as generator, a small conv discriminator
PRIOR = dict(_target_="priors.vae.VAE", image_shape=[1, 8, 8], latent_dim=4, hidden_dim=16)
DISC = dict(_target_="priors.stylegan2.StyleGAN2Discriminator", size=8, channels=1, max_channels=4)
LOSSES = {"logistic_r1": dict(_target_="lightning_modules.losses.Logistic", r1=10.0, reg_every=2),
          "bce": dict(_target_="lightning_modules.losses.BCE"),
          "wgan_gp": dict(_target_="lightning_modules.losses.WGANGP", gp=10.0, drift=0.001)}
DATA = [{"image": torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(i)), "index": i} for i in range(16)]


def make(loss: str, **kwargs) -> AdversarialModule:
    torch.manual_seed(0)
    return AdversarialModule(PRIOR, DISC, LOSSES[loss], sample_every_n_steps=10_000, num_samples=4, **kwargs)


def fit(module, iterations: int, data=DATA) -> pl.Trainer:
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                         limit_train_batches=iterations)
    trainer.fit(module, DataLoader(data, batch_size=4))
    return trainer


@pytest.mark.parametrize("loss", list(LOSSES))
def test_lambda_one_is_vanilla_and_rtil_trains_without_nans(loss):
    vanilla, one = make(loss), make(loss, rtil={"lambda_": 1.0, "sigma": 1.0, "layers": [1, 2]})
    fit(vanilla, 3), fit(one, 3)
    for (name, p), q in zip(vanilla.state_dict().items(), one.state_dict().values()):
        assert torch.equal(p, q), name
    rtil = make(loss, rtil={"lambda_": 0.5, "sigma": 1.0, "layers": [1, 2]})
    trainer = fit(rtil, 3)
    assert [k for k, _ in rtil.members] == [0, 1, 2] and int(rtil.iteration) == 3
    assert all(torch.isfinite(p).all() for p in rtil.parameters())
    assert torch.isfinite(trainer.callback_metrics["train/g_loss/k2"])
    assert not torch.equal(rtil.generator.decoder[0].weight, vanilla.generator.decoder[0].weight)
    exported = rtil.export_prior()
    assert exported["prior_config"] == PRIOR and exported["extra"]["members"] == [[0, 0.5], [1, 0.25], [2, 0.25]]


def test_single_split_family_adds_noise_only_after_split_k():
    module = make("bce", rtil={"lambda_": 0.5, "sigma": 0.3, "layers": [2], "cumulative": False})
    gen, z = module.generator, torch.randn(3, 4)
    g = torch.Generator().manual_seed(1)
    noisy = module.family_image(gen, gen.initial_representation(z), 2, lambda t: torch.randn(t.shape, generator=g))
    g.manual_seed(1)
    rep = gen.to_layer(z, 2)
    rep["state"] = rep["state"] + 0.3 * torch.randn(rep["state"].shape, generator=g)
    assert torch.equal(noisy, gen.from_layer(rep, 2) * 2 - 1)


def test_losses():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.0])
    d = Logistic().discriminator_loss(lambda x: x, real, [(1.0, fake)])["loss"]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))
    assert torch.allclose(d, expected) and torch.allclose(BCE().generator_loss(fake), bce(fake, torch.ones(2)))
    assert BCE().reg_every == 0 and Logistic(r1=10, reg_every=16).reg_every == 16
    # WGAN-GP with a linear critic D(x) = <a, x>: |grad| = |a| everywhere
    a = torch.tensor([3.0, 4.0])
    critic = lambda x: x.flatten(1) @ a  # noqa: E731
    x_real, x_fake = torch.randn(5, 2, 1, 1), torch.randn(5, 2, 1, 1)
    out = WGANGP(gp=10.0, drift=0.001).discriminator_loss(critic, x_real, [(1.0, x_fake)])
    r, f = critic(x_real), critic(x_fake)
    assert torch.allclose(out["gradient_penalty"], torch.tensor(16.0))
    assert torch.allclose(out["loss"], f.mean() - r.mean() + 0.001 * r.pow(2).mean() + 10 * 16.0)
    assert torch.allclose(WGANGP().generator_loss(f), -f.mean())


@pytest.mark.parametrize("rtil, needle", [({"lambda_": 1.5, "layers": [1]}, "lambda_"),
                                          ({"lambda_": 0.5, "layers": [3]}, "rtil.layers"),
                                          ({"sigma": -1.0}, "sigma")])
def test_bad_rtil_config_is_refused(rtil, needle):
    with pytest.raises(UserInputError, match=needle):
        make("bce", rtil=rtil)
