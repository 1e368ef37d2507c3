"""Fourier phase retrieval (not oversampled) on MNIST test digits: DPR, PRILO, PRILO-MII next to
PRILO's table 1 (1024 images, 4 restarts: DPR 23.99 dB / 0.9005, PRILO 42.76 dB / 0.9843,
PRILO-MII 43.95 dB / 0.9949). Solvers come from the project's configs (conf/solver, conf/init),
so this measures exactly what ``python invert.py solver=... init=...`` runs.

    python benchmarks/inversion_quality.py --prior outputs/priors/vae_mnist_embedded.pt --images 64

Per image the kept restart is the one with the lowest measurement error; PSNR/SSIM are computed
on the reconstructions as returned (no alignment). Results: benchmarks/results/inversion_quality.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import compose_invert, save_results, test_images  # noqa: E402
from common.instantiate import instantiate, instantiate_named  # noqa: E402
from evaluation.metrics import psnr, ssim  # noqa: E402
from evaluation.report import mean_ci95  # noqa: E402
from priors.io import load_prior  # noqa: E402

PAPER = {"dpr-random": (23.9871, 0.9005), "prilo-random": (42.7584, 0.9843), "prilo-mii": (43.9541, 0.9949)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--data", default="mnist_embedded")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--methods", nargs="+", default=list(PAPER))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior)
    x, indices = test_images(args.data, args.images)
    rows = {}
    print(f"{'method':14s} {'PSNR (dB)':>16s} {'SSIM':>16s} {'paper PSNR/SSIM':>18s} {'s/image':>8s}")
    for method in args.methods:
        solver_name, init_name = method.split("-")
        cfg = compose_invert(f"solver={solver_name}", f"init={init_name}", f"data={args.data}")
        operator = instantiate(cfg.operator)
        solver = instantiate_named(cfg.solver, prior=prior, init=instantiate_named(cfg.init), restarts=args.restarts)
        start = time.perf_counter()
        result = solver.solve(operator, operator(x), indices, seed=0)
        seconds = (time.perf_counter() - start) / len(x)
        p, s = psnr(result.x, x).tolist(), ssim(result.x, x).tolist()
        (pm, pc), (sm, sc) = mean_ci95(p), mean_ci95(s)
        paper = PAPER.get(method, (float("nan"), float("nan")))
        rows[method] = {"psnr_mean": pm, "psnr_ci95": pc, "ssim_mean": sm, "ssim_ci95": sc, "seconds_per_image": seconds,
                        "measurement_error_mean": float(result.measurement_error.mean()),
                        "paper_psnr": paper[0], "paper_ssim": paper[1]}
        print(f"{method:14s} {pm:8.2f} ± {pc:5.2f} {sm:8.4f} ± {sc:5.4f} {paper[0]:9.2f}/{paper[1]:.4f} {seconds:8.2f}",
              flush=True)
    save_results("inversion_quality", {"prior": args.prior, "data": args.data, "images": args.images,
                                       "restarts": args.restarts, "operator": "fourier_pr (not oversampled, ortho)",
                                       "selection": "lowest measurement error per image", "results": rows})
    return rows


if __name__ == "__main__":
    main()
