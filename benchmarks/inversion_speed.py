"""Speed of the generative solver engine on the VAE prior (Fourier phase retrieval, not oversampled).

1. Batched solving: PRILO with all images x restarts in one batch vs a loop solving one image
   at a time (same schedule, same per-image results). Images/s of both and their ratio.
2. Overhead: seconds per PRILO step (with gradient noise, l1 projection, best-iterate tracking and
   error curves) vs a bare loop doing only prior forward+backward, operator and Adam step on the
   same batch and the same variables, for each kind of measurement step of the VAE schedule:
   latent steps (init and refine: z_0 through the whole decoder) and forward steps at layers 1
   and 2 (layer 2 is the worst case: one linear layer left, so the fixed per-variable work weighs
   most). Engine and bare timed back to back, repeated; the figure is the median of the paired ratios.
   For reference also a hand-written PRILO step (bare + torch.randn gradient noise + the sort-based
   projection), i.e. what the engine's extra work would cost written the obvious way. Measured with
   the fused (torch.compile) projection kernels, the default, and with their eager twins
   (``fused_kernels=false``, or a machine where compilation fails).
3. Components: milliseconds of PRILO's per-element work on the layer-2 variable (gradient noise,
   projection) in each implementation.

    python benchmarks/inversion_speed.py --images 256 --restarts 4

The schedule is PRILO's structure with fewer steps (--steps per stage) so the single-image loop
finishes; the loop runs on --loop-images images and its rate is per image. Results:
benchmarks/results/inversion_speed.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save_results, test_images  # noqa: E402
from common import fused  # noqa: E402
from common.randomness import TableNormal, counter_normal, sample_keys  # noqa: E402
from operators import FourierPhaseRetrieval  # noqa: E402
from priors.io import load_prior  # noqa: E402
from solvers.generative import GenerativeSolver  # noqa: E402
from solvers.initialization import RandomInit  # noqa: E402
from solvers.projection import L1Ball  # noqa: E402


def prilo_schedule(steps: int) -> list:
    return [{"kind": "init", "steps": steps, "lr": 0.1, "radius": 100},
            {"repeat": 2, "stages": [{"kind": "forward", "layer": 2, "steps": steps, "lr": 0.05, "radius": 100},
                                     {"kind": "backproject", "layer": 2, "steps": steps, "lr": 0.05, "center": "zero"},
                                     {"kind": "refine", "steps": steps, "lr": 0.05, "radius": 100}]}]


def solver(prior, steps: int, restarts: int) -> GenerativeSolver:
    return GenerativeSolver(prior, prilo_schedule(steps), init=RandomInit(), restarts=restarts, select="best",
                            gradient_noise=NOISE)


# (label, engine stage, representation the bare loop optimises, layer it renders from)
STEP_KINDS = [("latent (init / refine)", {"kind": "init", "radius": 100}, 0),
              ("forward, layer 1", {"kind": "forward", "layer": 1, "radius": 100}, 1),
              ("forward, layer 2", {"kind": "forward", "layer": 2, "radius": 100}, 2)]
NOISE = {"eta": 0.02, "gamma": 0.55}


def sort_projection(v: torch.Tensor, center: torch.Tensor, radius: float) -> torch.Tensor:
    """The textbook l1-ball projection (Duchi et al.: sort every row), as one would write it by hand."""
    d = v - center
    u = d.abs()
    mu = u.sort(dim=1, descending=True).values
    cssv = mu.cumsum(1) - radius
    j = torch.arange(1, mu.shape[1] + 1, dtype=v.dtype)
    rho = (mu * j > cssv).sum(1, keepdim=True).clamp_min(1)
    theta = (cssv.gather(1, rho - 1) / rho).clamp_min(0)
    return center + d.sign() * (u - theta).clamp_min(0)


def bare_step_seconds(prior, operator, y, start, layer: int, steps: int, prilo_math: bool = False,
                      fused_adam: bool = False) -> float:
    """Prior forward+backward from ``layer``, operator, Adam step: nothing else. ``prilo_math`` adds
    PRILO's own work written by hand: torch.randn gradient noise (not batch-invariant) and the sort
    projection onto the l1 ball of radius 100 around the start. ``fused_adam``: torch's one-kernel
    Adam (the engine's) instead of its default."""
    var = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([var], lr=0.05, fused=fused_adam or None)
    for k in range(steps + 2):
        if k == 2:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        rep = prior.initial_representation(var) if layer == 0 else {"state": var}
        loss = (operator(prior.from_layer(rep, layer)) - y).pow(2).flatten(1).sum(1).sum()
        loss.backward()
        if prilo_math:
            var.grad.add_(torch.randn_like(var), alpha=(NOISE["eta"] / (1 + k) ** NOISE["gamma"]) ** 0.5)
        opt.step()
        if prilo_math:
            with torch.no_grad():
                var.copy_(sort_projection(var, start, 100.0))
    return (time.perf_counter() - t0) / steps


def engine_step_seconds(prior, operator, y, indices, restarts: int, stage: dict, steps: int) -> float:
    """One PRILO stage of ``steps`` steps minus the same stage of 1 step, per step (gradient noise,
    l1 projection, best-iterate tracking and error curves included)."""
    def run(n):
        schedule = [{**stage, "steps": n, "lr": 0.05}] if stage["kind"] == "init" else \
            [{"kind": "init", "steps": 1, "lr": 0.1}, {**stage, "steps": n, "lr": 0.05}]
        solver = GenerativeSolver(prior, schedule, restarts=restarts, select="best", gradient_noise=NOISE)
        t0 = time.perf_counter()
        solver.solve(operator, y, indices, seed=0)
        return time.perf_counter() - t0
    return (run(steps + 1) - run(1)) / steps


def component_ms(rows: int, width: int, repeats: int = 50) -> dict:
    """Milliseconds of PRILO's per-element work on a (rows, width) variable: batch-invariant gradient
    noise (the engine's table windows, the per-element hash generator, plain torch.randn) and the
    warm-started projection (fused and eager kernels) vs the sort projection."""
    keys = sample_keys(0, "gradient_noise", range(rows))
    noise, grad = TableNormal(keys, (width,)), torch.zeros(rows, width)
    center = torch.randn(rows, width)
    v = center + torch.randn(rows, width)
    step = 0.05 * torch.randn(rows, width)  # one Adam-sized move, then back onto the ball

    def median_ms(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    out = {"table_normal_add": median_ms(lambda: noise.add_(grad, 7, 0.1)),
           "counter_normal": median_ms(lambda: counter_normal(keys, 7, (width,))),
           "torch_randn": median_ms(lambda: torch.randn(rows, width))}
    for name, enabled in (("fused", True), ("eager", False)):
        fused.set_enabled(enabled)
        ball = L1Ball(center, 100.0)
        ball.project_(v)
        out[f"l1ball_warm_projection_{name}"] = median_ms(lambda: ball.project_(v.add_(step)))
    fused.set_enabled(None)
    out["sort_projection"] = median_ms(lambda: sort_projection(v, center, 100.0))
    return out


def overhead(prior, operator, y, indices, restarts: int, steps: int, repeats: int) -> dict:
    """Per step kind: engine and bare step times measured back to back ``repeats`` times; the ratio
    is the median of the paired ratios (robust to the slow drift of a shared machine's speed). Also
    against a bare loop with the engine's fused Adam, so that Adam's implementation does not hide
    engine overhead."""
    yr = y.repeat_interleave(restarts, 0)
    out = {}
    for label, stage, layer in STEP_KINDS:
        with torch.no_grad():
            start = prior.to_layer(prior.sample_latent(len(yr)), layer)["state"]
        bare, bare_fused, handwritten, engine = [], [], [], []
        for _ in range(repeats):
            bare.append(bare_step_seconds(prior, operator, yr, start, layer, steps))
            bare_fused.append(bare_step_seconds(prior, operator, yr, start, layer, steps, fused_adam=True))
            handwritten.append(bare_step_seconds(prior, operator, yr, start, layer, steps, prilo_math=True))
            engine.append(engine_step_seconds(prior, operator, y, indices, restarts, stage, steps))
        ratios = [e / b for e, b in zip(engine, bare)]
        ratio = statistics.median(ratios)
        vs_fused = statistics.median(e / b for e, b in zip(engine, bare_fused))
        vs_hand = statistics.median(e / h for e, h in zip(engine, handwritten))
        b, bf, h, e = (statistics.median(t) for t in (bare, bare_fused, handwritten, engine))
        out[label] = {"engine_ms": e * 1e3, "bare_ms": b * 1e3, "ratio": ratio, "ratios": ratios,
                      "bare_fused_adam_ms": bf * 1e3, "ratio_vs_bare_fused_adam": vs_fused,
                      "handwritten_prilo_ms": h * 1e3, "ratio_vs_handwritten": vs_hand}
        print(f"{label:24s} engine {e * 1e3:7.2f} ms  bare {b * 1e3:7.2f} ms  paired ratio {ratio:.3f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}; vs bare with fused Adam {vs_fused:.3f})  "
              f"hand-written PRILO step {h * 1e3:7.2f} ms (engine / hand-written {vs_hand:.3f})")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="steps per stage")
    parser.add_argument("--loop-images", type=int, default=16)
    parser.add_argument("--overhead-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=9, help="alternating repeats of the overhead timing")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior)
    x, indices = test_images("mnist_embedded", args.images)
    operator = FourierPhaseRetrieval(x.shape[1:])
    y = operator(x)

    s = solver(prior, args.steps, args.restarts)
    s.solve(operator, y[:8], indices[:8], seed=0)  # warm-up, small batches
    s.solve(operator, y, indices, seed=0)  # and the full one (compiles its kernels)
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

    steps = {}
    for name, enabled in (("fused", True), ("eager", False)):
        fused.set_enabled(enabled)
        print(f"seconds per step on a batch of {args.images * args.restarts} (medians of {args.repeats} paired runs), "
              f"{name} kernels:")
        steps[name] = overhead(prior, operator, y, indices, args.restarts, args.overhead_steps, args.repeats)
    fused.set_enabled(None)
    parts = component_ms(args.images * args.restarts, prior.hidden_dim)
    print("per-element PRILO work on the layer-2 variable (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    return save_results("inversion_speed", {
        "prior": args.prior, "images": args.images, "restarts": args.restarts, "steps_per_stage": args.steps,
        "batched_images_per_s": batched, "looped_images_per_s": looped, "speedup": batched / looped,
        "overhead_steps": args.overhead_steps, "overhead_repeats": args.repeats,
        "step_overhead": steps["fused"], "step_overhead_eager_kernels": steps["eager"], "components_ms": parts,
        "worst_overhead_ratio": max(v["ratio"] for v in steps["fused"].values()),
        "worst_overhead_ratio_eager_kernels": max(v["ratio"] for v in steps["eager"].values())})


if __name__ == "__main__":
    main()
