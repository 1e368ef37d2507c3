"""mGANprior vs CSGM vs ILO on compressed sensing and inpainting with a DCGAN prior, several under-sampling ratios.

Solvers come from the project's configs (conf/solver/{csgm,ilo_dcgan,mganprior}.yaml) with one step
budget for all (``--steps``: CSGM and mGANprior run that many steps, ILO a third of it on z and on
each of its two layers). ILO's l1 radii are 20% / 30% of the mean l1 norm of the prior's maps at
splits 1 / 2, measured on 256 samples of the prior (not on any test image), as conf/solver/ilo_dcgan.yaml
did for the face DCGAN. Nothing is tuned on the test images. Noiseless Gaussian compressed sensing
(m = ratio · n) and random-pixel inpainting (``ratio`` = observed fraction); one random start per image,
per-image randomness from (seed, index). Ground truth: the first ``--images`` test images of ``--data``
(``prior_samples``: the prior's own seeded samples, exactly in its range). Beside the methods, the
range oracle (CSGM on the full image, A = I; it uses the ground truth) bounds what the unextended
prior can reach.

    python benchmarks/mganprior.py --prior outputs/priors/dcgan_mnist_embedded.pt
    python benchmarks/mganprior.py --prior P --quick            # 2 images, one ratio each, 10 steps

Prints a table of PSNR / SSIM (mean ± 95% CI half-width over images); writes
benchmarks/results/mganprior.json and mganprior.png (--quick: the system temp folder).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import compose_invert, save_results, test_images  # noqa: E402
from common.atomic import atomic_open, write_json  # noqa: E402
from common.instantiate import instantiate_named  # noqa: E402
from evaluation.metrics import psnr, ssim  # noqa: E402
from evaluation.report import mean_ci95  # noqa: E402
from operators import Denoising, GaussianCompressedSensing, Inpainting  # noqa: E402
from priors.io import load_prior  # noqa: E402

OPERATORS = {"cs_gaussian": lambda shape, r: GaussianCompressedSensing(shape, ratio=r, seed=0),
             "inpainting": lambda shape, r: Inpainting(shape, observed_ratio=r, seed=0)}


@torch.no_grad()
def ilo_radii(prior, samples: int = 256) -> tuple[float, float]:
    """20% / 30% of the mean l1 norm of the prior's maps at splits 1 and 2 (from its own samples)."""
    z = prior.sample_latent(samples, generator=torch.Generator().manual_seed(0))
    norms = [float(prior.to_layer(z, i)["state"].flatten(1).abs().sum(1).mean()) for i in (1, 2)]
    return 0.2 * norms[0], 0.3 * norms[1]


def method_overrides(steps: int, num_codes: int, layer: int, radii: tuple[float, float]) -> dict[str, list[str]]:
    third = max(1, steps // 3)
    return {
        "csgm": ["solver=csgm", f"solver.schedule=[{{kind:init,steps:{steps},lr:0.1}}]"],
        "ilo": ["solver=ilo_dcgan", f"solver.stage_defaults.steps={third}",
                f"solver.schedule=[{{kind:init,lr:0.1,radius:null}},{{kind:forward,layer:1,radius:{radii[0]:.1f}}},"
                f"{{kind:forward,layer:2,radius:{radii[1]:.1f}}}]"],
        "mganprior": ["solver=mganprior", f"solver.steps={steps}", f"solver.num_codes={num_codes}",
                      f"solver.layer={layer}"],
    }


def run(prior, overrides: list[str], operator, x, indices) -> dict:
    cfg = compose_invert("init=random", *overrides)
    solver = instantiate_named(cfg.solver, prior=prior, init=instantiate_named(cfg.init), restarts=1)
    start = time.perf_counter()
    result = solver.solve(operator, operator(x), indices, seed=0)
    seconds = (time.perf_counter() - start) / len(x)
    p, s = psnr(result.x, x), ssim(result.x, x)
    (pm, pc), (sm, sc) = mean_ci95(p.tolist()), mean_ci95(s.tolist())
    return {"psnr_mean": pm, "psnr_ci95": pc, "ssim_mean": sm, "ssim_ci95": sc, "seconds_per_image": seconds,
            "measurement_error_mean": float(result.measurement_error.mean()), "failed": int(result.failed.sum()),
            "psnr_per_image": p.tolist(), "ssim_per_image": s.tolist()}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = sorted({r["operator"] for r in results})
    fig, axes = plt.subplots(1, len(ops), figsize=(5 * len(ops), 3.6), squeeze=False)
    for ax, op in zip(axes[0], ops):
        for method in dict.fromkeys(r["method"] for r in results):
            rows = sorted((r for r in results if r["operator"] == op and r["method"] == method), key=lambda r: r["ratio"])
            ax.errorbar([r["ratio"] for r in rows], [r["psnr_mean"] for r in rows],
                        yerr=[r["psnr_ci95"] for r in rows], marker="o", capsize=3, label=method)
        ax.set_xlabel("observed fraction" if op == "inpainting" else "m / n")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(op)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def save(payload: dict, quick: bool, complete: bool) -> Path:
    payload["complete"] = complete
    if not quick:
        return save_results("mganprior", payload)
    path = Path(tempfile.gettempdir()) / "mganprior_quick.json"
    write_json(path, payload)
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/dcgan_mnist_embedded.pt")
    parser.add_argument("--data", default="mnist_embedded", help="mnist_embedded, or prior_samples (the prior's own)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cs-ratios", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    parser.add_argument("--inpainting-ratios", type=float, nargs="+", default=[0.1, 0.2, 0.4])
    parser.add_argument("--num-codes", type=int, default=20)
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 images, one ratio per operator, 10 steps (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.cs_ratios, args.inpainting_ratios = 2, 10, args.cs_ratios[-1:], args.inpainting_ratios[-1:]
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior).eval().requires_grad_(False)
    c, h, w = prior.image_shape
    data = {"checkpoint": args.prior} if args.data == "prior_samples" else {}
    if args.data == "prior_samples":
        data.update(channels=c, image_size=h)
    x, indices = test_images(args.data, args.images, **data)
    radii = ilo_radii(prior)
    methods = method_overrides(args.steps, args.num_codes, args.layer, radii)
    oracle = run(prior, methods["csgm"], Denoising((c, h, w)), x, indices)
    print(f"range oracle (CSGM on the full image, uses the ground truth): PSNR {oracle['psnr_mean']:.2f} ± "
          f"{oracle['psnr_ci95']:.2f}, SSIM {oracle['ssim_mean']:.4f} ± {oracle['ssim_ci95']:.4f}")
    print(f"{'operator':12s} {'ratio':>6s} {'method':10s} {'PSNR (dB)':>15s} {'SSIM':>17s} {'s/image':>8s}")
    results, started = [], time.perf_counter()
    payload = {"argv": sys.argv[1:], "prior": args.prior, "data": args.data, "images": args.images, "steps": args.steps,
               "num_codes": args.num_codes, "layer": args.layer, "ilo_radii": list(radii), "restarts": 1,
               "selection": "one random start per image; no selection", "range_oracle": oracle,
               "quick": args.quick, "results": results}
    for op_name, ratios in (("cs_gaussian", args.cs_ratios), ("inpainting", args.inpainting_ratios)):
        for ratio in ratios:
            operator = OPERATORS[op_name]((c, h, w), ratio)
            for method, overrides in methods.items():
                row = {"operator": op_name, "ratio": ratio, "method": method,
                       **run(prior, overrides, operator, x, indices)}
                results.append(row)
                print(f"{op_name:12s} {ratio:6.2f} {method:10s} {row['psnr_mean']:7.2f} ± {row['psnr_ci95']:5.2f} "
                      f"{row['ssim_mean']:8.4f} ± {row['ssim_ci95']:6.4f} {row['seconds_per_image']:8.2f}", flush=True)
                save(payload, args.quick, complete=False)  # rows so far, in case the run is stopped
    payload["wall_seconds"] = time.perf_counter() - started
    path = save(payload, args.quick, complete=True)
    plot(results, path.with_suffix(".png"))
    return payload


if __name__ == "__main__":
    main()
