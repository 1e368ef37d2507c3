"""Everything a first GPU run should measure, in one go (run through benchmarks/gpu_check.sh).

* StyleGAN2 256x256 training iterations/s at batch 16, vanilla and RTIL (lambda 0.5, splits 1-4),
  float32 and bf16 autocast (``trainer.precision=bf16-mixed``), default and channels-last layout:
  the GANModule's own D, R1, G and path-length steps amortised as in benchmarks/stylegan2_speed.py;
* ILO steps/s at batch 64 (StyleGAN2 256x256, forward stage at split 2 with noise maps, as
  conf/solver/ilo_stylegan.yaml) and PRILO images/s (the engine's whole schedule, few steps per
  stage, 4 restarts), each eager vs compiled solver kernels (``fused_kernels``; compiled only for
  variables of at least ``common.fused.MIN_NUMEL`` elements, so the smoke sizes run eager either way)
  and float32 vs bf16.

Random-weight networks: speed does not depend on the weights. ``--cpu-smoke`` shrinks every size
so the script runs in seconds on a CPU (its figures mean nothing; it keeps the script working).
Prints one line per figure and writes benchmarks/results/gpu_check_<device name>.json (after every
figure, so a run cut short by the 8-minute limit of gpu_check.sh keeps what it measured).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import gan_training_phases, save_results, seconds_per_iteration  # noqa: E402
from common import fused  # noqa: E402
from common.precision import channels_last  # noqa: E402
from lightning_modules.gan import GANModule  # noqa: E402
from operators.fourier import FourierPhaseRetrieval  # noqa: E402
from priors.stylegan2 import StyleGAN2Prior  # noqa: E402
from solvers.generative import GenerativeSolver  # noqa: E402
from solvers.initialization import RandomInit  # noqa: E402

ARCH = dict(style_dim=512, n_mlp=8, channel_multiplier=1, channel_base=16384, max_channels=256)
FULL = dict(size=256, train_batch=16, ilo_batch=64, prilo_images=16, restarts=4, steps=20, arch=ARCH)
SMOKE = dict(size=16, train_batch=4, ilo_batch=4, prilo_images=2, restarts=2, steps=2,
             arch=dict(style_dim=16, n_mlp=2, channel_multiplier=1, channel_base=64, max_channels=8))
RTIL = {"lambda_": 0.5, "sigma": 1.0, "layers": None}  # splits 1-4 (RTIL app. A.1), fewer on small generators


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, reps: int, warmup: int = 2) -> float:
    """Mean seconds per call after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / reps


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


def training(cfg: dict, device: torch.device, rtil: dict | None, precision: str, nhwc: bool, reps: int) -> float:
    """StyleGAN2 training iterations/s (D + G steps, R1 / 16 and path length / 4 amortised, EMA)."""
    torch.manual_seed(0)
    size, batch = cfg["size"], cfg["train_batch"]
    prior = dict(_target_="priors.stylegan2.StyleGAN2Prior", size=size, channels=3, **cfg["arch"])
    disc = dict(_target_="priors.stylegan2.StyleGAN2Discriminator", size=size, channels=3,
                **{k: cfg["arch"][k] for k in ("channel_multiplier", "channel_base", "max_channels")})
    module = GANModule(prior, disc, rtil=rtil, channels_last=nhwc).to(device)
    real = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    if nhwc:
        real = real.contiguous(memory_format=torch.channels_last)
    phases = gan_training_phases(module, real, batch, context=lambda: autocast(device, precision))
    return 1.0 / seconds_per_iteration({k: timed(fn, device, reps) for k, fn in phases.items()}, module.hparams)


def inversion(cfg: dict, device: torch.device, precision: str, compiled: bool, nhwc: bool) -> dict:
    """ILO steps/s (a forward stage at split 2, batch ``ilo_batch``) and PRILO images/s (whole schedule)."""
    torch.manual_seed(0)
    prior = StyleGAN2Prior(size=cfg["size"], channels=3, **cfg["arch"]).to(device).eval().requires_grad_(False)
    if nhwc:
        channels_last(prior)
    prior.fit_latent_statistics()
    fused.set_enabled(compiled)
    operator = FourierPhaseRetrieval(prior.image_shape).to(device)
    steps = cfg["steps"]

    def solve(schedule, images, restarts):
        with torch.no_grad():
            x = prior(prior.sample_latent(images, torch.Generator().manual_seed(1))).clamp(0, 1)
        solver = GenerativeSolver(prior, schedule, init=RandomInit(), restarts=restarts, select="best",
                                  stage_defaults={"lr": 0.01, "optimize_noise": True})
        y = operator(x)
        with autocast(device, precision):
            solver.solve(operator, y, list(range(images)), seed=0)  # warm-up (compiles)
            synchronize(device)
            start = time.perf_counter()
            solver.solve(operator, y, list(range(images)), seed=0)
            synchronize(device)
        return time.perf_counter() - start

    init = {"kind": "init", "steps": 1, "lr": 0.1, "radius": None}
    ilo = {"kind": "forward", "layer": 2, "radius": 2000, "latent_radius": 300}
    base = solve([init, {**ilo, "steps": 1}], cfg["ilo_batch"], 1)
    more = solve([init, {**ilo, "steps": steps + 1}], cfg["ilo_batch"], 1)
    prilo = [{"kind": "init", "steps": steps, "lr": 0.1, "radius": None}]
    for layer in (1, 2):
        prilo += [{"kind": "forward", "layer": layer, "steps": steps, "radius": 1000 * layer, "latent_radius": 300},
                  {"kind": "backproject", "layer": layer, "steps": steps, "center": "zero"},
                  {"kind": "refine", "steps": steps, "radius": None}]
    prilo_seconds = solve(prilo, cfg["prilo_images"], cfg["restarts"])
    fused.set_enabled(None)
    return {"ilo_steps_per_second": steps / max(more - base, 1e-9),
            "prilo_images_per_second": cfg["prilo_images"] / prilo_seconds}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (seconds): checks the script")
    parser.add_argument("--reps", type=int, default=5, help="timed training repetitions per part")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        device, cfg, reps, name = torch.device("cpu"), SMOKE, 1, "cpu-smoke"
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            print("error: no CUDA GPU visible (torch.cuda.is_available() is False); "
                  "run on a GPU node or pass --cpu-smoke", file=sys.stderr)
            raise SystemExit(2)
        device, cfg, reps = torch.device("cuda"), FULL, args.reps
        name = torch.cuda.get_device_name(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32
    print(f"device: {name}; torch {torch.__version__}; config {json.dumps({k: v for k, v in cfg.items()})}")
    rows = {"training": [], "inversion": []}
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")

    def save():  # after every figure: a run stopped by the time limit keeps what it measured
        return save_results(f"gpu_check_{slug}", {"device": name, "torch": torch.__version__, "config": cfg, **rows})

    for mode, rtil in (("vanilla", None), ("rtil", RTIL)):
        for precision in ("fp32", "bf16"):
            for nhwc in (False, True):
                its = training(cfg, device, rtil, precision, nhwc, reps)
                rows["training"].append({"mode": mode, "precision": precision, "channels_last": nhwc,
                                         "iterations_per_second": its})
                print(f"stylegan2 {cfg['size']}x{cfg['size']} train batch {cfg['train_batch']} {mode:7s} {precision} "
                      f"{'channels_last' if nhwc else 'nchw         '}: {its:8.3f} it/s")
                save()
    for precision in ("fp32", "bf16"):
        for compiled in (False, True):
            row = inversion(cfg, device, precision, compiled, nhwc=False)
            rows["inversion"].append({"precision": precision, "kernels": "compiled" if compiled else "eager", **row})
            print(f"inversion {precision} {'compiled' if compiled else 'eager   '}: ILO batch {cfg['ilo_batch']} "
                  f"{row['ilo_steps_per_second']:8.2f} steps/s  PRILO {row['prilo_images_per_second']:8.3f} images/s")
            path = save()
    return path


if __name__ == "__main__":
    main()
