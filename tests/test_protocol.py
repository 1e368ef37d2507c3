"""The layered-prior identity: resuming at any split point with nothing perturbed reproduces G(z)."""
import pytest
import torch

from priors.pggan import PGGANPrior
from priors.stylegan2 import StyleGAN2Prior
from priors.vae import VAE


def small_priors():
    torch.manual_seed(0)
    return {
        "vae": VAE(image_shape=(1, 28, 28), latent_dim=100, hidden_dim=500),
        "vae_dpr": VAE(image_shape=(1, 28, 28), latent_dim=20, hidden_dim=500),
        "vae_rgb": VAE(image_shape=(3, 8, 8), latent_dim=6, hidden_dim=16),
        "stylegan2_32": StyleGAN2Prior(size=32, channels=3, style_dim=16, n_mlp=2, max_channels=8),
        "stylegan2_64_gray": StyleGAN2Prior(size=64, channels=1, style_dim=8, n_mlp=1, max_channels=4),
        "pggan_32_gray": PGGANPrior(size=32, channels=1, latent_dim=16, max_channels=8, channel_base=128),
        "pggan_16_rgb_label": PGGANPrior(size=16, channels=3, latent_dim=8, widths=[8, 6, 4], n_label=2, label=1,
                                         equalized_rgb=False),
    }


PRIORS = small_priors()


@pytest.mark.parametrize("name", list(PRIORS))
def test_identity_at_every_split_point(name):
    prior = PRIORS[name].eval()
    z = prior.sample_latent(5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        image = prior(z)
        assert image.shape == (5, *prior.image_shape) and torch.isfinite(image).all()
        for i in range(prior.num_layers + 1):
            rep = prior.to_layer(z, i)
            assert torch.equal(prior.from_layer(rep, i), image), f"split {i}"


@pytest.mark.parametrize("name", list(PRIORS))
def test_perturbing_a_representation_changes_the_image_and_gradients_flow(name):
    prior = PRIORS[name]
    z = prior.sample_latent(2, generator=torch.Generator().manual_seed(2))
    rep = prior.to_layer(z, 1)
    h = rep["state"].detach().requires_grad_(True)
    out = prior.from_layer({**rep, "state": h + 0.5}, 1)
    assert not torch.allclose(out, prior(z))
    out.sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()


def test_sample_latent_follows_generator():
    prior = PRIORS["vae"]
    a = prior.sample_latent(3, generator=torch.Generator().manual_seed(7))
    b = prior.sample_latent(3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (3, 100)


@pytest.mark.parametrize("bad", [-1, 4, 1.5])
def test_bad_split_points_are_refused(bad):
    prior = PRIORS["vae"]
    with pytest.raises(ValueError, match="split point"):
        prior.to_layer(prior.sample_latent(1), bad)
