"""Shared pieces of the benchmark scripts: composing the project's configs, test images, saving figures."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from common.cli import CONF_DIR

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def compose_invert(*overrides: str):
    """The resolved ``invert`` config for these overrides (hydra's runtime choices are not needed)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="invert", overrides=["prior.checkpoint=unused", *overrides])


def test_images(datamodule_config: str = "mnist_embedded", num_images: int = 64, **data_overrides) -> tuple:
    """(images, indices) of the first ``num_images`` of a datamodule's test split."""
    from common.instantiate import instantiate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="invert", overrides=[f"data={datamodule_config}",
                                                      *[f"data.{k}={v}" for k, v in data_overrides.items()]])
    dm = instantiate(cfg.data)
    dm.setup("test")
    items = [dm.test_set[i] for i in range(num_images)]
    return torch.stack([d["image"] for d in items]), [d["index"] for d in items]


def save_results(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or
               platform.machine(), "torch_threads": torch.get_num_threads(), **payload}
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"saved {path}")
    return path
