"""Shared pieces of the benchmark scripts: composing the project's configs, test images, saving figures."""
from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from common.atomic import write_json
from common.cli import CONF_DIR
from common.errors import UserInputError

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: when the benchmark started (benchmarks import this module first): the saved ``run_seconds`` count from here
STARTED = time.perf_counter()


def run_seconds() -> float:
    """Wall seconds since the benchmark started (its running time, recorded in its results file)."""
    return round(time.perf_counter() - STARTED, 1)


def compose_invert(*overrides: str):
    """The resolved ``invert`` config for these overrides (hydra's runtime choices are not needed)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="invert", overrides=["prior.checkpoint=unused", *overrides])


def split_images(split: str, datamodule_config: str = "mnist_embedded", num_images: int = 64,
                 **data_overrides) -> tuple:
    """(images, indices) of the first ``num_images`` of a datamodule's ``split`` ("val" or "test")."""
    from common.instantiate import instantiate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="invert", overrides=[f"data={datamodule_config}",
                                                      *[f"data.{k}={v}" for k, v in data_overrides.items()]])
    dm = instantiate(cfg.data)
    dataset = dm.split(split)
    if num_images > len(dataset):
        raise UserInputError(f"{num_images} images asked, the {split} split has {len(dataset)}")
    items = [dataset[i] for i in range(num_images)]
    return torch.stack([d["image"] for d in items]), [d["index"] for d in items]


def test_images(datamodule_config: str = "mnist_embedded", num_images: int = 64, **data_overrides) -> tuple:
    """(images, indices) of the first ``num_images`` of a datamodule's test split: for reported numbers."""
    return split_images("test", datamodule_config, num_images, **data_overrides)


def tuning_images(split: str, datamodule_config: str = "mnist_embedded", num_images: int = 16,
                  **data_overrides) -> tuple:
    """Images for hyperparameter trials and any other tuning: the validation split only. The test split
    holds the reported images, so choosing settings on it would bias the reported numbers."""
    if split != "val":
        raise UserInputError(f"tuning runs on the validation split only, got split={split!r}; the test split is "
                             f"for reported numbers (benchmarks/inversion_quality.py, invert.py)")
    return split_images("val", datamodule_config, num_images, **data_overrides)


def save_results(name: str, payload: dict) -> Path:
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or
               platform.machine(), "torch_threads": torch.get_num_threads(), "run_seconds": run_seconds(), **payload}
    path = RESULTS_DIR / f"{name}.json"
    write_json(path, payload)
    print(f"saved {path}")
    return path
