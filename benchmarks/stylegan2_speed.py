"""StyleGAN2 on this CPU: training iterations/s (vanilla and RTIL), inversion steps/s, and the
pure-PyTorch ops against straightforward reference implementations.

* training: the GANModule's own loss methods with its Adam optimizers, timed per part
  (D step, G step, R1 step, path-length step, EMA); iterations/s is amortised over the lazy
  regularization schedule: 1 / (D + G + R1 / d_reg_every + PL / g_reg_every + EMA);
* inversion: Adam on ``"state"`` and ``"latent"`` at the middle split, forward + backward
  through ``from_layer`` + optimizer step, MSE to a target image;
* ops (forward + backward): ``upfirdn2d`` vs rosinality's ``upfirdn2d_native``, ``fused_leaky_relu``
  vs ``leaky_relu(x + b) * sqrt(2)``, ``ModulatedConv2d`` vs one convolution per sample and vs
  rosinality's grouped convolution. ratio = reference time / our time (> 1: ours is faster).

    python benchmarks/stylegan2_speed.py                    # default: paper architecture
    python benchmarks/stylegan2_speed.py --sizes 32 --reps 3 --threads 2

Figures are printed and saved to benchmarks/results/stylegan2_speed.json (with the run's duration, ``run_seconds``).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.common import gan_training_phases, run_seconds, seconds_per_iteration  # noqa: E402
from common.atomic import write_json  # noqa: E402
from lightning_modules.gan import GANModule  # noqa: E402
from priors.stylegan2_ops import ModulatedConv2d, fused_leaky_relu, make_kernel, upfirdn2d  # noqa: E402
from test_stylegan2 import lrelu_ref, modconv_ref, upfirdn2d_native  # noqa: E402  (rosinality's reference ops)

RESULTS = ROOT / "benchmarks" / "results" / "stylegan2_speed.json"
# RTIL appendix A.1 table 1 architecture (conf/model/stylegan2.yaml)
ARCH = dict(style_dim=512, n_mlp=8, channel_multiplier=1, channel_base=16384, max_channels=256)


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Mean seconds per call after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def training_speed(size: int, channels: int, batch: int, rtil: dict | None, reps: int) -> dict:
    torch.manual_seed(0)
    prior = dict(_target_="priors.stylegan2.StyleGAN2Prior", size=size, channels=channels, **ARCH)
    disc = dict(_target_="priors.stylegan2.StyleGAN2Discriminator", size=size, channels=channels,
                **{k: ARCH[k] for k in ("channel_multiplier", "channel_base", "max_channels")})
    module = GANModule(prior, disc, rtil=rtil)
    real = torch.rand(batch, channels, size, size) * 2 - 1
    parts = {k: timed(fn, reps) for k, fn in gan_training_phases(module, real, batch).items()}
    per_iteration = seconds_per_iteration(parts, module.hparams)
    return {"size": size, "channels": channels, "batch": batch, "members": [list(m) for m in module.members],
            "seconds": parts, "iterations_per_second": 1.0 / per_iteration,
            "images_per_second": batch / per_iteration}


def inversion_speed(size: int, channels: int, batch: int, reps: int) -> dict:
    torch.manual_seed(0)
    from priors.stylegan2 import StyleGAN2Prior

    prior = StyleGAN2Prior(size=size, channels=channels, **ARCH).requires_grad_(False)
    split = prior.num_layers // 2
    target = torch.rand(batch, *prior.image_shape)
    rep = {k: v.detach().clone() for k, v in prior.to_layer(prior.sample_latent(batch), split).items()}
    variables = {k: rep[k].requires_grad_(True) for k in ("state", "latent")}
    opt = torch.optim.Adam(list(variables.values()), lr=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        (prior.from_layer(rep, split) - target).pow(2).mean().backward()
        opt.step()

    seconds = timed(step, reps)
    return {"size": size, "batch": batch, "split": split, "seconds_per_step": seconds, "steps_per_second": 1 / seconds}


def modconv_per_sample(x, style, conv: ModulatedConv2d):
    """The obvious implementation: build each sample's modulated weight, one conv per sample."""
    outs = []
    for xb, sb in zip(x, style):
        s = conv.modulation(sb[None])[0]
        w = conv.weight[0] * conv.scale * s[None, :, None, None]
        if conv.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum([1, 2, 3]) + 1e-8)[:, None, None, None]
        if conv.upsample:
            out = conv.blur(F.conv_transpose2d(xb[None], w.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(xb[None], w, padding=conv.padding)
        outs.append(out)
    return torch.cat(outs)


def op_speed(reps: int) -> list[dict]:
    torch.manual_seed(0)
    k = make_kernel([1, 3, 3, 1])
    rows = []

    def compare(name, shape_note, ours, ref, inputs):
        def run(fn):
            def call():
                out = fn(*inputs)
                out.backward(torch.ones_like(out))
            return call

        with torch.no_grad():
            a, b = ours(*inputs), ref(*inputs)
            err = float((a - b).abs().max())
        t_ours, t_ref = timed(run(ours), reps), timed(run(ref), reps)
        rows.append({"op": name, "shape": shape_note, "ours_ms": 1e3 * t_ours, "reference_ms": 1e3 * t_ref,
                     "ratio": t_ref / t_ours, "max_abs_diff": err})

    x = torch.randn(8, 256, 34, 34, requires_grad=True)
    compare("blur (pad 1, after upsampling conv)", "8x256x34x34", lambda x: upfirdn2d(x, k * 4, pad=(1, 1)),
            lambda x: upfirdn2d_native(x, k * 4, pad=(1, 1)), (x,))
    x = torch.randn(8, 3, 32, 32, requires_grad=True)
    compare("upsample x2 (ToRGB skip)", "8x3x32x32", lambda x: upfirdn2d(x, k * 4, up=2, pad=(2, 1)),
            lambda x: upfirdn2d_native(x, k * 4, up=2, pad=(2, 1)), (x,))
    x = torch.randn(8, 256, 32, 32, requires_grad=True)
    compare("blur before stride-2 conv (D)", "8x256x32x32", lambda x: upfirdn2d(x, k, pad=(2, 2)),
            lambda x: upfirdn2d_native(x, k, pad=(2, 2)), (x,))
    b = torch.randn(256, requires_grad=True)
    compare("fused leaky relu", "8x256x32x32", fused_leaky_relu, lrelu_ref, (x, b))
    style = torch.randn(8, 512, requires_grad=True)
    for up, shape in ((False, (8, 256, 32, 32)), (True, (8, 256, 16, 16))):
        conv = ModulatedConv2d(256, 256, 3, 512, upsample=up)
        xin = torch.randn(*shape, requires_grad=True)
        label = "modulated conv 3x3" + (" + upsample" if up else "")
        compare(label + " vs per-sample conv", "x".join(map(str, shape)), conv,
                lambda x, s, c=conv: modconv_per_sample(x, s, c), (xin, style))
        compare(label + " vs grouped conv (rosinality)", "x".join(map(str, shape)), conv,
                lambda x, s, c=conv: modconv_ref(x, s, c.weight, c.modulation.weight, c.modulation.bias,
                                                 upsample=c.upsample), (xin, style))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 4], help="training batch per size")
    parser.add_argument("--reps", type=int, default=1, help="timed repetitions after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = dict(zip(args.sizes, args.batch + [args.batch[-1]] * len(args.sizes)))
    rtil = {"lambda_": 0.5, "sigma": 1.0, "layers": None}
    config = {"architecture": ARCH, "sizes": args.sizes, "batches": batches, "reps": args.reps,
              "threads": args.threads, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "rtil": rtil}
    print(f"config: {json.dumps(config)}")
    results = {"config": config, "training": [], "inversion": [], "ops": []}
    for size in args.sizes:
        channels = 1 if size == 32 else 3  # MNIST at 32, RGB at 64
        for name, cfg in (("vanilla", None), ("rtil", rtil)):
            row = {"mode": name, **training_speed(size, channels, batches[size], cfg, args.reps)}
            results["training"].append(row)
            parts = ", ".join(f"{k} {v:.2f}s" for k, v in row["seconds"].items())
            print(f"train {size}x{size}x{channels} {name:7s} batch {row['batch']}: {row['iterations_per_second']:.3f} "
                  f"it/s ({row['images_per_second']:.2f} img/s; {parts})")
        for batch in (1, 8):
            row = inversion_speed(size, channels, batch, max(3, 3 * args.reps))
            results["inversion"].append(row)
            print(f"invert {size}x{size} batch {batch} from split {row['split']}: "
                  f"{row['steps_per_second']:.2f} steps/s")
    for row in op_speed(max(3, 3 * args.reps)):
        results["ops"].append(row)
        print(f"op {row['op']:48s} {row['shape']:12s} ours {row['ours_ms']:8.2f} ms  reference "
              f"{row['reference_ms']:8.2f} ms  ratio {row['ratio']:.2f}  max|diff| {row['max_abs_diff']:.1e}")
    write_json(RESULTS, {**results, "run_seconds": run_seconds()})
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
