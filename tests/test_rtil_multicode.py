"""RTIL for mGANprior (RTIL section 3.2): the flat-Dirichlet multi-code family trained with G."""
from __future__ import annotations

from functools import partial

import pytest
import torch

from common.errors import UserInputError
from lightning_modules.adversarial import AdversarialModule
from priors.multicode import combine_codes, flat_dirichlet
from tests import test_adversarial

torch.set_num_threads(1)

PRIOR = dict(_target_="priors.dcgan.DCGANPrior", size=28, channels=1, latent_dim=6, width=4)
DISC = dict(_target_="priors.dcgan.DCGANDiscriminator", size=28, channels=1, width=4)
BCE = dict(_target_="lightning_modules.losses.BCE")
DATA = [{"image": torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(i)), "index": i} for i in range(12)]
fit = partial(test_adversarial.fit, data=DATA)


def make(**rtil) -> AdversarialModule:
    torch.manual_seed(0)
    return AdversarialModule(PRIOR, DISC, BCE, sample_every_n_steps=10_000, num_samples=4, rtil=rtil or None)


@pytest.mark.parametrize("num_codes", [2, 5, 20])
def test_flat_dirichlet_weights_on_the_simplex_with_its_mean_and_variance(num_codes):
    g = torch.Generator().manual_seed(0)
    m = 200_000
    w = flat_dirichlet(m, num_codes, lambda t: torch.randn(t.shape, generator=g, dtype=torch.float64))
    assert w.shape == (m, num_codes) and (w >= 0).all()
    assert torch.allclose(w.sum(1), torch.ones(m, dtype=torch.float64))
    n = num_codes
    mean, var = 1 / n, (n - 1) / (n ** 2 * (n + 1))
    # standard errors of the sample mean / variance are < var**0.5 / 447 and < 3 var / 447: the bounds
    # below are > 10 of them, with a fixed seed
    assert (w.mean(0) - mean).abs().max() < 10 * var ** 0.5 / 447
    assert (w.var(0) - var).abs().max() < 30 * var / 447
    # exchangeable, not independent: Cov(a_i, a_j) = -1 / (n^2 (n + 1))
    cov = ((w[:, 0] - mean) * (w[:, 1] - mean)).mean()
    assert abs(cov + 1 / (n ** 2 * (n + 1))) < 30 * var / 447


def test_family_output_at_one_hot_weights_is_g_of_that_code():
    module = make(family="multicode", num_codes=3, lambda_=0.5, layers=[2])
    gen = module.generator.eval()
    z = torch.randn(4 * 3, 6, generator=torch.Generator().manual_seed(1))  # sample-major: row = sample * 3 + code
    rep = gen.to_layer(z, 2)
    for code in range(3):
        one_hot = torch.zeros(4, 3)
        one_hot[:, code] = 1
        mixed = gen.from_layer(combine_codes(rep, one_hot), 2)
        assert torch.equal(mixed, gen(z[code::3]))
    # through the module's family member: draws that put all mass on one code reproduce G exactly
    fam = module.family_image(gen, gen.initial_representation(z), 2,
                              lambda t: torch.zeros(t.shape).index_fill_(-1, torch.tensor([1]), 1.0))
    assert torch.equal(fam, gen(z[1::3]) * 2 - 1)


def test_multicode_rtil_trains_without_nans_and_lambda_one_is_vanilla():
    vanilla, one = make(), make(family="multicode", num_codes=3, lambda_=1.0, layers=[2])
    fit(vanilla, 3), fit(one, 3)
    for (name, p), q in zip(vanilla.state_dict().items(), one.state_dict().values()):
        assert torch.equal(p, q), name
    rtil = make(family="multicode", num_codes=3, lambda_=0.5, layers=[2])
    trainer = fit(rtil, 3)
    assert rtil.members == [(0, 0.5), (2, 0.5)] and int(rtil.iteration) == 3
    assert all(torch.isfinite(p).all() for p in rtil.parameters())
    assert torch.isfinite(trainer.callback_metrics["train/g_loss/k2"])
    assert not torch.equal(rtil.generator.blocks[0][0].weight, vanilla.generator.blocks[0][0].weight)
    samples = rtil.member_samples(2)
    assert samples.shape == (4, 1, 28, 28) and torch.isfinite(samples).all()


@pytest.mark.parametrize("rtil, needle", [
    (dict(family="multicode", num_codes=0, lambda_=0.5, layers=[1]), "number of codes"),
    (dict(family="multicode", num_codes=3, lambda_=0.5, layers=[1, 2]), "one split point"),
    (dict(family="multicode", num_codes=3, lambda_=0.5, layers=[3]), "split point"),
    (dict(family="dirichlet", lambda_=0.5, layers=[1]), "rtil.family"),
])
def test_bad_multicode_config_is_refused(rtil, needle):
    with pytest.raises(UserInputError, match=needle):
        make(**rtil)


def test_rtil_mgan_dcgan_config_trains_the_family_on_the_default_data():
    from hydra import compose, initialize_config_dir

    from common.cli import CONF_DIR
    from common.instantiate import instantiate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["model=rtil_mgan_dcgan"])
    module = instantiate(cfg.model.module)
    assert module.family == "multicode" and module.num_codes == 5 and module.members == [(0, 0.5), (2, 0.5)]  # N chosen on val
    assert module.prior.image_shape == (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
