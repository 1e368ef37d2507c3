"""data=prior_samples: seeded samples of a prior as train/val/test splits."""
import pytest
import torch

from common.errors import UserInputError
from common.randomness import sample_generators
from datamodules import PriorSamplesDataModule
from priors.dcgan import DCGANPrior
from priors.io import load_prior, save_prior


@pytest.fixture(scope="module")
def dcgan_file(tmp_path_factory):
    torch.manual_seed(0)
    prior = DCGANPrior(size=28, channels=1, width=4)
    path = tmp_path_factory.mktemp("prior") / "dcgan.pt"
    return save_prior({"prior_config": prior.config(), "state_dict": prior.state_dict(), "extra": {}}, path)


def test_samples_are_the_priors_own_seeded_samples(dcgan_file):
    dm = PriorSamplesDataModule(dcgan_file, channels=1, image_size=28, test_size=5, val_size=3, train_size=7)
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (7, 3, 5)
    later_first = [dm.test_set[i]["image"] for i in (4, 2)]
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (5, 1, 28, 28) and batch["index"].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(batch["image"][4], later_first[0]) and torch.equal(batch["image"][2], later_first[1])
    prior = load_prior(dcgan_file)
    z = prior.sample_latent(1, generator=sample_generators(0, "prior_samples.test", [3])[0])
    assert torch.equal(batch["image"][3], prior(z)[0])  # exactly in the prior's range
    other = PriorSamplesDataModule(dcgan_file, channels=1, image_size=28, seed=1, test_size=5)
    other.setup()
    assert not torch.equal(other.test_set[0]["image"], batch["image"][0])
    assert not torch.equal(dm.val_set[0]["image"], batch["image"][0])  # splits draw from separate streams


def test_bad_input(dcgan_file):
    with pytest.raises(UserInputError, match="data.checkpoint"):
        PriorSamplesDataModule(None)
    dm = PriorSamplesDataModule(dcgan_file, channels=3, image_size=64)
    with pytest.raises(UserInputError, match="set data.channels=1 data.image_size=28"):
        dm.setup()
