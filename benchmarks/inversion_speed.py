"""Speed of the generative solver engine on the VAE prior (Fourier phase retrieval, not oversampled).

1. Batched solving: PRILO with all images x restarts in one batch vs a loop solving one image
   at a time (same schedule, same per-image results). Images/s of both and their ratio.
2. Overhead: seconds per PRILO step (forward stage at layer 2, with gradient noise, l1 projection
   and best-iterate tracking) vs a bare loop doing only prior forward+backward, operator and
   Adam step on the same batch. Ratio.

    python benchmarks/inversion_speed.py --images 256 --restarts 4

The schedule is PRILO's structure with fewer steps (--steps per stage) so the single-image loop
finishes; the loop runs on --loop-images images and its rate is per image. Results:
benchmarks/results/inversion_speed.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save_results, test_images  # noqa: E402
from operators import FourierPhaseRetrieval  # noqa: E402
from priors.io import load_prior  # noqa: E402
from solvers.generative import GenerativeSolver  # noqa: E402
from solvers.initialization import RandomInit  # noqa: E402


def prilo_schedule(steps: int) -> list:
    return [{"kind": "init", "steps": steps, "lr": 0.1, "radius": 100},
            {"repeat": 2, "stages": [{"kind": "forward", "layer": 2, "steps": steps, "lr": 0.05, "radius": 100},
                                     {"kind": "backproject", "layer": 2, "steps": steps, "lr": 0.05, "center": "zero"},
                                     {"kind": "refine", "steps": steps, "lr": 0.05, "radius": 100}]}]


def solver(prior, steps: int, restarts: int) -> GenerativeSolver:
    return GenerativeSolver(prior, prilo_schedule(steps), init=RandomInit(), restarts=restarts, select="best",
                            gradient_noise={"eta": 0.02, "gamma": 0.55})


def bare_step_seconds(prior, operator, y, z2, steps: int) -> float:
    """Prior forward+backward, operator, Adam step: nothing else."""
    var = z2.clone().requires_grad_(True)
    opt = torch.optim.Adam([var], lr=0.05)
    for k in range(steps + 5):
        if k == 5:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = (operator(prior.from_layer({"state": var}, 2)) - y).pow(2).flatten(1).sum(1).sum()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def engine_step_seconds(prior, operator, y, indices, restarts: int, steps: int) -> float:
    warmup = [{"kind": "init", "steps": 1, "lr": 0.1},
              {"kind": "forward", "layer": 2, "steps": 5, "lr": 0.05, "radius": 100}]
    s = GenerativeSolver(prior, [*warmup, {"kind": "forward", "layer": 2, "steps": steps + 5, "lr": 0.05, "radius": 100}],
                         restarts=restarts, select="best", gradient_noise={"eta": 0.02, "gamma": 0.55})
    s.solve(operator, y, indices, seed=0)  # warm-up
    start = time.perf_counter()
    s.solve(operator, y, indices, seed=0)
    total = time.perf_counter() - start
    # subtract the two short stages, timed on their own
    short = GenerativeSolver(prior, warmup, restarts=restarts, select="best",
                             gradient_noise={"eta": 0.02, "gamma": 0.55})
    start = time.perf_counter()
    short.solve(operator, y, indices, seed=0)
    return (total - (time.perf_counter() - start)) / (steps + 5)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="steps per stage")
    parser.add_argument("--loop-images", type=int, default=16)
    parser.add_argument("--overhead-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior)
    x, indices = test_images("mnist_embedded", args.images)
    operator = FourierPhaseRetrieval(x.shape[1:])
    y = operator(x)

    s = solver(prior, args.steps, args.restarts)
    s.solve(operator, y[:8], indices[:8], seed=0)  # warm-up
    start = time.perf_counter()
    s.solve(operator, y, indices, seed=0)
    batched = args.images / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(args.loop_images):
        s.solve(operator, y[i:i + 1], indices[i:i + 1], seed=0)
    looped = args.loop_images / (time.perf_counter() - start)
    print(f"batched PRILO ({args.images} images x {args.restarts} restarts in one batch): {batched:8.2f} images/s")
    print(f"one image at a time ({args.loop_images} images, {args.restarts} restarts each):   {looped:8.2f} images/s")
    print(f"speed-up: {batched / looped:.1f}x")

    yr = y.repeat_interleave(args.restarts, 0)
    with torch.no_grad():
        z2 = prior.to_layer(prior.sample_latent(len(yr)), 2)["state"]
    bare = bare_step_seconds(prior, operator, yr, z2, args.overhead_steps)
    engine = engine_step_seconds(prior, operator, y, indices, args.restarts, args.overhead_steps)
    print(f"seconds per step on a batch of {len(yr)}: engine {engine * 1e3:.2f} ms, bare loop {bare * 1e3:.2f} ms, "
          f"ratio {engine / bare:.3f}")
    return save_results("inversion_speed", {
        "prior": args.prior, "images": args.images, "restarts": args.restarts, "steps_per_stage": args.steps,
        "batched_images_per_s": batched, "looped_images_per_s": looped, "speedup": batched / looped,
        "engine_step_ms": engine * 1e3, "bare_step_ms": bare * 1e3, "overhead_ratio": engine / bare})


if __name__ == "__main__":
    main()
