"""DCGAN and RTIL-DCGAN trained on the default data (5,000 MNIST digits, 28×28) with the configs users
train (``conf/model/dcgan.yaml``, ``rtil_dcgan.yaml``), scored during training by the sample-quality
FD / IS (evaluation/sample_quality.py: features of the project's classifier of the data, NOT comparable
with Inception-v3 FIDs).

The models train side by side, each in its own one-thread process (one core each on the 2-core
machine). For each model: ``trainer.fit`` for ``--iterations`` iterations (batch 64), FD / IS of the exported
(EMA) generator every ``--eval-every`` iterations on ``--samples`` seeded samples against the 4,000
train digits; training time (wall and the process's CPU seconds) excludes the evaluations. Reported: the FD curve over iterations and
training seconds, the first time FD ≤ each of ``--targets``, and for scale the FD / IS of the 500
held-out real test digits and of uniform noise against the same train digits.

    python benchmarks/dcgan_training.py                  # both models, 2000 iterations each
    python benchmarks/dcgan_training.py --quick          # 20 iterations (smoke test)

Writes benchmarks/results/dcgan_training.json (--quick: to the system temp folder), a PNG grid of
samples of both generators next to it, and the two priors under outputs/benchmarks/dcgan_training/.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save_grid  # noqa: E402
from common.atomic import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("dcgan", "rtil_dcgan")


class TrainingClock(Callback):
    """Wall and CPU seconds spent inside training batches (evaluations in later callbacks are not counted)."""

    def __init__(self):
        self.seconds = self.cpu_seconds = 0.0
        self.at_step: dict[int, tuple[float, float]] = {}

    def on_train_batch_start(self, *args):
        self._start = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer, *args):
        self.seconds += time.perf_counter() - self._start[0]
        self.cpu_seconds += time.process_time() - self._start[1]
        self.at_step[trainer.global_step] = (self.seconds, self.cpu_seconds)


def compose(model: str, batch: int):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=[f"model={model}", f"data.batch_size={batch}"])


def data_and_quality(batch: int):
    from common.instantiate import instantiate
    from evaluation.sample_quality import sample_quality_for

    datamodule = instantiate(compose(MODELS[0], batch).data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    quality, classifier = sample_quality_for(datamodule, max_real=None, verbose=False)
    return datamodule, quality, classifier


def train(model: str, args: argparse.Namespace, prior_path: Path) -> dict:
    """One model in its own process (one thread): train, score along the way, export the prior."""
    from common.instantiate import instantiate
    from lightning_modules.callbacks import SampleQualityMonitor
    from priors.io import save_prior

    torch.set_num_threads(args.threads)
    datamodule, quality, _ = data_and_quality(args.batch)
    cfg = compose(model, args.batch)
    pl.seed_everything(0, verbose=False)
    module = instantiate(cfg.model.module)
    steps_per_iteration = 2  # BCE: a D step and a G step, no lazy regularizer
    clock = TrainingClock()
    monitor = SampleQualityMonitor(every_n_steps=args.eval_every * steps_per_iteration, num_samples=args.samples,
                                   max_real=None)
    monitor.metric = quality  # the classifier and real statistics are shared by both runs
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         max_steps=args.iterations * steps_per_iteration, max_epochs=-1, callbacks=[clock, monitor])
    trainer.fit(module, datamodule=datamodule)
    curve = [{"iteration": r["step"] // steps_per_iteration, "train_seconds": clock.at_step[r["step"]][0],
              "train_cpu_seconds": clock.at_step[r["step"]][1], "fd": r["fd"], "is": r["is"]} for r in monitor.history]
    reached = {str(t): next(({k: r[k] for k in ("iteration", "train_seconds", "train_cpu_seconds")}
                             for r in curve if r["fd"] <= t), None) for t in args.targets}
    row = {"model": model, "members": [list(m) for m in module.members], "loss": repr(module.loss),
           "generator_parameters": sum(p.numel() for p in module.generator.parameters()),
           "discriminator_parameters": sum(p.numel() for p in module.discriminator.parameters()),
           "iterations": int(module.iteration), "train_seconds": clock.seconds, "train_cpu_seconds": clock.cpu_seconds,
           "iterations_per_second": int(module.iteration) / clock.seconds,
           "iterations_per_cpu_second": int(module.iteration) / clock.cpu_seconds, "curve": curve,
           "final": curve[-1], "first_reached": reached}
    save_prior(module.export_prior(), prior_path)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--targets", type=float, nargs="+", default=[100.0, 50.0, 25.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 iterations, results in the temp folder")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.eval_every, args.samples = 20, 10, 200
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "offline")

    from evaluation.sample_quality import split_images
    from priors.io import load_prior

    started = time.time()
    datamodule, quality, classifier = data_and_quality(args.batch)  # trains the classifier once if not cached
    test = split_images(datamodule, "test")
    reference = {"real_test_digits": quality(test), "uniform_noise": quality(torch.rand(test.shape, generator=torch.Generator().manual_seed(0)))}
    print(f"reference: real test digits FD {reference['real_test_digits']['fd']:.2f} IS {reference['real_test_digits']['is']:.2f}; "
          f"noise FD {reference['uniform_noise']['fd']:.1f}", flush=True)

    out_dir = Path(tempfile.gettempdir()) / "dcgan_training_quick" if args.quick else RESULTS
    prior_dir = out_dir if args.quick else ROOT / "outputs" / "benchmarks" / "dcgan_training"
    out_dir.mkdir(parents=True, exist_ok=True)
    prior_dir.mkdir(parents=True, exist_ok=True)
    # the models train side by side, one process (one thread) each: on the 2-core machine, one core each
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    paths = {model: prior_dir / f"{model}.pt" for model in args.models}
    with ProcessPoolExecutor(len(args.models), mp_context=get_context("spawn")) as pool:
        futures = {model: pool.submit(train, model, args, paths[model]) for model in args.models}
        rows = [futures[model].result() for model in args.models]
    priors = {}
    for model, row in zip(args.models, rows):
        path = paths[model]
        row["prior"] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        priors[model] = (load_prior(path), row["final"]["fd"])
        reached = ", ".join(f"FD<={t}: " + (f"{r['train_seconds']:.0f}s wall, {r['train_cpu_seconds']:.0f}s CPU "
                                            f"(it {r['iteration']})" if r else "not reached")
                            for t, r in row["first_reached"].items())
        print(f"{model:11s} {row['iterations']} it in {row['train_seconds']:.0f}s wall / {row['train_cpu_seconds']:.0f}s CPU  "
              f"final FD {row['final']['fd']:.2f} IS {row['final']['is']:.2f}  {reached}", flush=True)
    save_grid(priors, out_dir / "dcgan_training.png")
    result = {
        "command": "python benchmarks/dcgan_training.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": args.threads},
        "note": ("2-core CPU shared with other jobs (load average ~10-18 during the run): wall times are inflated "
                 "by contention, CPU seconds (process time of each model's one-thread process) much less; "
                 "FD/IS are in the feature space of the project's MNIST classifier, not Inception-v3"),
        "data": "mnist_embedded (4000 train digits; FD against all of them)",
        "settings": {"iterations": args.iterations, "eval_every": args.eval_every, "samples": args.samples,
                     "batch": args.batch, "targets": args.targets},
        "classifier": {k: v for k, v in classifier.items() if k != "path"},
        "reference": reference, "rows": rows, "wall_seconds": time.time() - started,
    }
    write_json(out_dir / "dcgan_training.json", result)
    print(f"written to {out_dir / 'dcgan_training.json'} and {out_dir / 'dcgan_training.png'}")


if __name__ == "__main__":
    main()
