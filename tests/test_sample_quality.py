"""Sample quality: FD / IS in the feature space of the project's classifier of the data."""
import pytest
import torch

from common.errors import UserInputError
from datamodules import EmbeddedMNISTDataModule
from evaluation.sample_quality import (ClassifierRecipe, SampleQuality, data_classifier, inception_score,
                                       split_images, train_classifier)
from priors.dcgan import DCGANPrior

RECIPE = ClassifierRecipe(steps=600, lr=3e-3)  # the default trains longer (2000 steps); this suffices here


@pytest.fixture(scope="module")
def mnist():
    dm = EmbeddedMNISTDataModule()
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def quality(mnist, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENPRIOR_CACHE", str(cache))
        classifier, record = data_classifier(mnist, RECIPE, verbose=False)
        again, record_again = data_classifier(mnist, RECIPE, verbose=False)  # from the cache
    assert record["path"].startswith(str(cache)) and record_again["path"] == record["path"]
    assert all(torch.equal(a, b) for a, b in zip(classifier.state_dict().values(), again.state_dict().values()))
    assert record["num_classes"] == 10 and record["test_accuracy"] > 0.9
    return SampleQuality(classifier, split_images(mnist, "train"))


def test_real_data_scores_far_better_than_noise(mnist, quality):
    test = split_images(mnist, "test")
    real = quality(test)
    noise = quality(torch.rand_like(test))
    assert real["num_samples"] == 500 and real["num_real"] == 4000
    assert real["fd"] < noise["fd"] / 50
    assert real["is"] > 8.0 and noise["is"] < 2.0  # 10 balanced classes, classified confidently
    assert quality(test) == real  # deterministic


def test_prior_samples_are_seeded_and_shapes_checked(quality):
    torch.manual_seed(0)
    prior = DCGANPrior(size=28, channels=1, width=4).eval()
    a, b = quality.of_prior(prior, 64, seed=3), quality.of_prior(prior, 64, seed=3)
    assert a == b and a["num_samples"] == 64
    with pytest.raises(UserInputError, match="data's"):
        quality.of_prior(DCGANPrior(size=32, channels=1, width=4), 8)


def test_classifier_training_is_reproducible_from_its_seed(mnist):
    images, labels = split_images(mnist, "train")[:256], torch.as_tensor(mnist.labels("train")[:256])
    nets = [train_classifier(images, labels, ClassifierRecipe(steps=20, seed=s)) for s in (1, 1, 2)]
    weights = [torch.cat([p.flatten() for p in n.parameters()]) for n in nets]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_inception_score_bounds():
    confident = torch.eye(10).repeat(3, 1) * 50
    assert inception_score(confident) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.zeros(30, 10)) == pytest.approx(1.0)


def test_unlabelled_data_is_refused(tmp_path):
    import numpy as np
    from PIL import Image

    from datamodules import ImageFolderDataModule

    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    dm = ImageFolderDataModule(root=tmp_path, channels=1, image_size=8, val_size=1, test_size=1)
    with pytest.raises(UserInputError, match="no class labels"):
        data_classifier(dm, RECIPE)


def test_command_prints_scores_for_a_prior_file(tmp_path, monkeypatch):
    from priors.io import save_prior
    from tests.cli import run_inprocess

    prior = DCGANPrior(size=28, channels=1, width=4)
    path = save_prior({"prior_config": prior.config(), "state_dict": prior.state_dict(), "extra": {}}, tmp_path / "g.pt")
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # the command's run directory is the working directory
    proc = run_inprocess("evaluation/sample_quality.py", f"prior.checkpoint={path}", "num_samples=100",
                         "classifier.steps=30")
    assert proc.returncode == 0, proc.stderr[-2000:]
    fd, score = (float(line.split()[1]) for line in proc.stdout.splitlines()[-3:-1])
    assert fd > 0 and 1 <= score <= 10 and "100 samples vs 4000 train images" in proc.stdout
    bad = run_inprocess("evaluation/sample_quality.py", f"prior.checkpoint={path}", "num_samples=1")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["error: num_samples must be an integer >= 2 "
                                                                       "(a covariance needs two samples), got 1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "g.pt"]  # nothing else written
