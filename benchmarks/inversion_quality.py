"""Fourier phase retrieval (not oversampled) on MNIST test digits: DPR, PRILO, PRILO-MII next to
PRILO's table 1 (1024 images, 4 restarts: DPR 23.99 dB / 0.9005, PRILO 42.76 dB / 0.9843,
PRILO-MII 43.95 dB / 0.9949). Solvers come from the project's configs (conf/solver, conf/init),
so this measures exactly what ``python invert.py solver=... init=...`` runs.

    python benchmarks/inversion_quality.py --prior outputs/priors/vae_mnist_embedded.pt --images 64
    python benchmarks/inversion_quality.py --prior outputs/priors/vae_mnist.pt --data mnist --data-root $MDS

Per image the kept restart is the one with the lowest measurement error; PSNR/SSIM are computed
on the reconstructions as returned, and again after the oracle alignment to the ground truth over
the trivial ambiguities of Fourier magnitudes (circular shift, conjugate flip, sign; labelled
oracle: it uses the ground truth, the kept restart does not). Results: benchmarks/results/inversion_quality.json
(inversion_quality_<data>.json for other datasets).
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
from evaluation.alignment import aligned_metrics  # noqa: E402
from evaluation.metrics import psnr, ssim  # noqa: E402
from evaluation.report import mean_ci95  # noqa: E402
from priors.io import load_prior  # noqa: E402

PAPER = {"dpr-random": (23.9871, 0.9005), "prilo-random": (42.7584, 0.9843), "prilo-mii": (43.9541, 0.9949)}


def evaluate(method: str, prior, x: torch.Tensor, indices, data: str, restarts: int, overrides=()) -> dict:
    """Solve ``x``'s Fourier magnitudes with ``method`` (solver-init, plus Hydra ``overrides``); metrics raw and
    after the oracle alignment."""
    solver_name, init_name = method.split("-")
    cfg = compose_invert(f"solver={solver_name}", f"init={init_name}", f"data={data}", *overrides)
    operator = instantiate(cfg.operator)
    solver = instantiate_named(cfg.solver, prior=prior, init=instantiate_named(cfg.init), restarts=restarts)
    start = time.perf_counter()
    result = solver.solve(operator, operator(x), indices, seed=0)
    seconds = (time.perf_counter() - start) / len(x)
    p = psnr(result.x, x)
    (pm, pc), (sm, sc) = mean_ci95(p.tolist()), mean_ci95(ssim(result.x, x).tolist())
    aligned = aligned_metrics(operator, result.x, x)  # uses the ground truth: an oracle evaluation
    pa = aligned["psnr_aligned"]
    (apm, apc), (asm, asc) = mean_ci95(pa.tolist()), mean_ci95(aligned["ssim_aligned"].tolist())
    return {"psnr_mean": pm, "psnr_ci95": pc, "ssim_mean": sm, "ssim_ci95": sc, "seconds_per_image": seconds,
            "aligned_oracle_psnr_mean": apm, "aligned_oracle_psnr_ci95": apc,
            "aligned_oracle_ssim_mean": asm, "aligned_oracle_ssim_ci95": asc,
            "measurement_error_mean": float(result.measurement_error.mean()), "psnr_per_image": p.tolist(), "aligned_oracle_psnr_per_image": pa.tolist()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--data", default="mnist_embedded")
    parser.add_argument("--data-root", default=None, help="data.root for datasets read from disk (e.g. mnist)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--methods", nargs="+", default=list(PAPER))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior)
    x, indices = test_images(args.data, args.images, **({"root": args.data_root} if args.data_root else {}))
    rows = {}
    print(f"{'method':14s} {'PSNR (dB)':>16s} {'SSIM':>16s} {'aligned PSNR/SSIM (oracle)':>28s} "
          f"{'paper PSNR/SSIM':>18s} {'s/image':>8s}")
    for method in args.methods:
        row = evaluate(method, prior, x, indices, args.data, args.restarts)
        paper = PAPER.get(method, (float("nan"), float("nan")))
        rows[method] = {**row, "paper_psnr": paper[0], "paper_ssim": paper[1]}
        print(f"{method:14s} {row['psnr_mean']:8.2f} ± {row['psnr_ci95']:5.2f} {row['ssim_mean']:8.4f} ± "
              f"{row['ssim_ci95']:5.4f} {row['aligned_oracle_psnr_mean']:12.2f} ± {row['aligned_oracle_psnr_ci95']:4.2f}"
              f" / {row['aligned_oracle_ssim_mean']:.4f} {paper[0]:9.2f}/{paper[1]:.4f} {row['seconds_per_image']:8.2f}",
              flush=True)
    name = "inversion_quality" if args.data == "mnist_embedded" else f"inversion_quality_{args.data}"
    save_results(name, {"prior": args.prior, "data": args.data, "images": args.images,
                        "restarts": args.restarts, "operator": "fourier_pr (not oversampled, ortho)",
                        "selection": "lowest measurement error per image", "results": rows})
    return rows


if __name__ == "__main__":
    main()
