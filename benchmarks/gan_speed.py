"""Training iterations/s of every GAN on the adversarial core, side by side: DCGAN, PGGAN at each
level of its growing schedule, StyleGAN2; vanilla and RTIL; the model configs users train
(``conf/model/<name>.yaml`` on the default data, ``data.image_size`` as each model sets it or 32).

One iteration = what ``trainer.fit`` does per batch (D step, lazy regularizers as scheduled,
G step, EMA) through Lightning, on random images of the data's shape (the data source does not
enter the timing). Seconds per iteration are averaged over iterations 1..N after iteration 0
(N = 16 covers StyleGAN2's R1 every 16 and path length every 4 exactly once per period).
PGGAN at level L: the growing schedule starts at resolution 4·2^L (a stable phase; a fade adds one
toRGB/fromRGB pass).

    python benchmarks/gan_speed.py                      # all models
    python benchmarks/gan_speed.py --models pggan --iterations 4 --batch 16

Prints a table and writes benchmarks/results/gan_speed.json (with the run's duration, ``run_seconds``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import run_seconds  # noqa: E402
from common.atomic import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gan_speed.json"
MODELS = ("dcgan", "rtil_dcgan", "pggan", "rtil_pggan", "stylegan2", "rtil_stylegan2")


class IterationTimer(Callback):
    """Lightning callback: wall time of every training batch."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_batch_start(self, *args):
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args):
        self.seconds.append(time.perf_counter() - self._start)


def compose_model(model: str, batch: int, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={model}", f"data.batch_size={batch}", *overrides])
    return cfg


def measure(model: str, batch: int, iterations: int, overrides: list[str]) -> dict:
    from common.instantiate import instantiate

    cfg = compose_model(model, batch, overrides)
    torch.manual_seed(0)
    module = instantiate(cfg.model.module)
    shape = module.prior.image_shape
    data = [{"image": torch.rand(shape, generator=torch.Generator().manual_seed(i)), "index": i}
            for i in range(batch * (iterations + 1))]
    timer = IterationTimer()
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                         callbacks=[timer])
    trainer.fit(module, DataLoader(data, batch_size=batch))
    per_iteration = sum(timer.seconds[1:]) / len(timer.seconds[1:])
    row = {"model": model, "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "overrides": overrides,
           "image_shape": list(shape), "batch": batch,
           "loss": repr(module.loss), "members": [list(m) for m in module.members],
           "generator_parameters": sum(p.numel() for p in module.generator.parameters()),
           "discriminator_parameters": sum(p.numel() for p in module.discriminator.parameters()),
           "threads": torch.get_num_threads(), "iterations_timed": len(timer.seconds) - 1,
           "seconds_per_iteration": per_iteration,
           "iterations_per_second": 1.0 / per_iteration, "images_per_second": batch / per_iteration}
    if hasattr(module, "level"):
        row["resolution"] = module.resolution
    return row


def runs(models: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for model in models:
        if "dcgan" in model and not (ROOT / "conf" / "model" / f"{model}.yaml").exists():
            print(f"skipped {model}: conf/model/{model}.yaml is not in this checkout")
            continue
        if "pggan" in model:
            resolutions = compose_model(model, 1, []).model.module.growing.resolutions
            for i in range(len(resolutions)):  # start the schedule at each level (its stable phase)
                out.append((model, [f"model.module.growing.resolutions=[{','.join(map(str, resolutions[i:]))}]"]))
        elif "stylegan2" in model:
            out.append((model, ["data.image_size=32"]))
        else:
            out.append((model, []))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--update", action="store_true",
                        help="keep the rows of other models already in the results file (measured at another time)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "offline")
    rows = []
    if args.update and RESULTS.exists():
        rows = [r for r in json.loads(RESULTS.read_text())["rows"] if r["model"] not in args.models]
    for model, overrides in runs(args.models):
        row = measure(model, args.batch, args.iterations, overrides)
        rows.append(row)
        size = row.get("resolution", row["image_shape"][-1])
        print(f"{model:15s} {f'{size}x{size}':>7s}  batch {row['batch']}  {row['iterations_per_second']:7.3f} it/s  "
              f"{row['images_per_second']:7.1f} img/s  members {[k for k, _ in row['members']]}  "
              f"G {row['generator_parameters']:,} D {row['discriminator_parameters']:,}  {row['loss']}", flush=True)
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": args.threads},
              "note": "measured on a 2-core CPU shared with other jobs (contention): relative figures only",
              "rows": rows, "run_seconds": run_seconds()}
    write_json(RESULTS, result)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
