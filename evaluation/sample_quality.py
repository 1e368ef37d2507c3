"""Sample quality of a generator in the feature space of a small classifier of the data.

``python -m evaluation.sample_quality prior.checkpoint=P data=D [num_samples=N seed=K]`` prints

* **FD** (Fréchet distance): torchmetrics' ``FrechetInceptionDistance`` with the classifier's
  penultimate layer (128 features) as feature extractor, between ``num_samples`` seeded samples
  of the prior and the real images of the data's train split;
* **IS** (Inception-style score): exp(E_x KL(p(y|x) ‖ p(y))) with the classifier's class
  probabilities, over all samples in one split (at most the number of classes; real data of
  balanced classes, classified confidently, scores close to it).

The classifier (two strided conv layers, 128 features, linear head) is trained by the project on the
data's train split with its class labels (MNIST-like data: ``mnist_embedded``, ``mnist``,
``fashion_mnist``, ``emnist``), from a seed, and cached under :func:`cache_dir` keyed by a hash
of the training images, labels and recipe: the first call trains it, later ones load it. Both
numbers depend on this classifier and on the sample sizes: they compare runs on the same data,
and are not comparable with Inception-v3 FIDs/ISs of the literature (docs/METRICS.md).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from common.atomic import torch_save
from common.checkpoint import load_tensors
from common.errors import UserInputError, exit_on_user_error

#: bump when the classifier's architecture or training loop changes (invalidates cached classifiers)
RECIPE_VERSION = 1


@dataclass(frozen=True)
class ClassifierRecipe:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    feature_dim: int = 128


class DataClassifier(nn.Module):
    """Two stride-2 3×3 conv layers (16, 32 channels), pooled to 4×4, 128 ReLU features, linear head
    (small enough to train in a minute on two CPU cores)."""

    def __init__(self, channels: int, num_classes: int, feature_dim: int = 128):
        super().__init__()
        self.num_classes, self.feature_dim = int(num_classes), int(feature_dim)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ClassifierFeatures(nn.Module):
    """The classifier's penultimate layer, as torchmetrics' FID wants a feature extractor."""

    def __init__(self, classifier: DataClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x)


def cache_dir() -> Path:
    """``$GENPRIOR_CACHE``, else ``$XDG_CACHE_HOME/genprior-inverse``, else ``~/.cache/genprior-inverse``."""
    if os.environ.get("GENPRIOR_CACHE"):
        return Path(os.environ["GENPRIOR_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "genprior-inverse"


def split_images(datamodule, split: str) -> torch.Tensor:
    dataset = datamodule.split(split)
    return torch.stack([dataset[i]["image"] for i in range(len(dataset))])


def train_classifier(images: torch.Tensor, labels: torch.Tensor, recipe: ClassifierRecipe) -> DataClassifier:
    """Adam on cross-entropy, ``recipe.steps`` minibatches drawn with replacement; deterministic given the seed."""
    num_classes = int(labels.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = DataClassifier(images.shape[1], num_classes, recipe.feature_dim)
    draw = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    model.train()
    for _ in range(recipe.steps):
        idx = torch.randint(len(images), (recipe.batch_size,), generator=draw)
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def accuracy(model: DataClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    hits = sum((model(x).argmax(1) == y).sum().item() for x, y in zip(images.split(batch_size), labels.split(batch_size)))
    return hits / len(labels)


def data_classifier(datamodule, recipe: ClassifierRecipe = ClassifierRecipe(), cache: bool = True,
                    verbose: bool = True) -> tuple[DataClassifier, dict]:
    """The classifier of the datamodule's train split (trained once, then loaded from :func:`cache_dir`).

    Returns it with its record: recipe, number of classes, test-split accuracy, cache file.
    """
    datamodule.setup()
    images = split_images(datamodule, "train")
    labels = torch.as_tensor(datamodule.labels("train"), dtype=torch.int64)
    key = hashlib.sha256()
    for part in (images.numpy().tobytes(), labels.numpy().tobytes(),
                 json.dumps({**asdict(recipe), "version": RECIPE_VERSION}, sort_keys=True).encode()):
        key.update(part)
    path = cache_dir() / "classifiers" / f"{key.hexdigest()[:24]}.pt"
    if cache and path.is_file():
        record = load_tensors(path)
        model = DataClassifier(images.shape[1], record["num_classes"], recipe.feature_dim)
        model.load_state_dict(record["state_dict"])
        return model.eval().requires_grad_(False), {k: v for k, v in record.items() if k != "state_dict"} | {"path": str(path)}
    if verbose:
        print(f"training the sample-quality classifier on {len(images)} images ({recipe.steps} steps), "
              f"cached in {path}", flush=True)
    model = train_classifier(images, labels, recipe)
    test_accuracy = accuracy(model, split_images(datamodule, "test"), torch.as_tensor(datamodule.labels("test")))
    record = {"recipe": asdict(recipe), "version": RECIPE_VERSION, "num_classes": model.num_classes,
              "test_accuracy": test_accuracy, "num_train": len(images)}
    if cache:
        torch_save({**record, "state_dict": model.state_dict()}, path)
    return model, record | {"path": str(path) if cache else None}


def inception_score(logits: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) over all rows (one split)."""
    log_p = logits.double().log_softmax(1)
    log_marginal = log_p.exp().mean(0).log()
    return float((log_p.exp() * (log_p - log_marginal)).sum(1).mean().exp())


class SampleQuality:
    """FD and IS of image sets against fixed real images, in the feature space of a :class:`DataClassifier`."""

    def __init__(self, classifier: DataClassifier, real: torch.Tensor, batch_size: int = 500):
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.classifier, self.batch_size = classifier, int(batch_size)
        self.image_shape = tuple(real.shape[1:])
        self.fid = FrechetInceptionDistance(feature=ClassifierFeatures(classifier), reset_real_features=False)
        with torch.no_grad():
            for chunk in real.split(self.batch_size):
                self.fid.update(chunk, real=True)
        self.num_real = len(real)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict:
        if tuple(images.shape[1:]) != self.image_shape:
            raise UserInputError(f"images of shape {tuple(images.shape[1:])} cannot be compared with the data's "
                                 f"{self.image_shape}; evaluate a prior trained on this data")
        self.fid.reset()
        logits = []
        for chunk in images.split(self.batch_size):
            chunk = chunk.to(self.fid.device)
            self.fid.update(chunk, real=False)
            logits.append(self.classifier(chunk))
        return {"fd": float(self.fid.compute()), "is": inception_score(torch.cat(logits)),
                "num_samples": len(images), "num_real": self.num_real}

    def to(self, device) -> SampleQuality:
        self.fid = self.fid.to(device)
        return self

    @torch.no_grad()
    def of_prior(self, prior, num_samples: int, seed: int = 0) -> dict:
        """Scores of ``num_samples`` samples of ``prior`` (latents from a generator seeded with ``seed``)."""
        if tuple(prior.image_shape) != self.image_shape:
            raise UserInputError(f"the prior generates {tuple(prior.image_shape)} images but the data's are "
                                 f"{self.image_shape}; pick the data the prior was trained on")
        gen = torch.Generator().manual_seed(int(seed))
        samples = [prior(prior.sample_latent(min(self.batch_size, num_samples - start), generator=gen)).float()
                   for start in range(0, num_samples, self.batch_size)]
        return self(torch.cat(samples))


def sample_quality_for(datamodule, recipe: ClassifierRecipe = ClassifierRecipe(), max_real: int | None = None,
                       verbose: bool = True) -> tuple[SampleQuality, dict]:
    """:class:`SampleQuality` against the datamodule's train split (its first ``max_real`` images)."""
    classifier, record = data_classifier(datamodule, recipe, verbose=verbose)
    real = split_images(datamodule, "train")
    return SampleQuality(classifier, real[:max_real] if max_real else real), record


@exit_on_user_error
def evaluate(cfg: DictConfig) -> dict:
    from common.instantiate import instantiate
    from priors.io import load_prior

    num_samples = cfg.num_samples
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise UserInputError(f"num_samples must be an integer >= 2 (a covariance needs two samples), got {num_samples!r}")
    prior = load_prior(cfg.prior.checkpoint)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    try:
        recipe = ClassifierRecipe(**cfg.classifier)
    except TypeError as err:
        raise UserInputError(f"classifier: {err}; allowed keys: {', '.join(ClassifierRecipe.__dataclass_fields__)}") from None
    metric, record = sample_quality_for(datamodule, recipe, cfg.max_real)
    scores = metric.of_prior(prior, num_samples, cfg.seed)
    print(f"FD  {scores['fd']:.4f}  (classifier features, {scores['num_samples']} samples vs {scores['num_real']} "
          f"train images; not comparable with Inception-v3 FIDs)")
    print(f"IS  {scores['is']:.4f}  (of at most {record['num_classes']} classes)")
    print(f"classifier: test accuracy {record['test_accuracy']:.4f}, {record['path']}")
    return scores | {"classifier": record}


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample_quality")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    from common.cli import check_overrides

    check_overrides("sample_quality")
    main()
