"""How much per-image results move with batch size and process count (same seed, same images).

Every random draw of an inversion is keyed by (seed, image index, restart), so batching changes
only floating-point rounding: matrix products over a batch may take other kernels and summation
orders, and the solvers' non-convex descents amplify such differences. This runs the same
``invert.py`` command with several batch sizes and with 2 DDP processes and reports, per image,
the PSNR and measurement-error differences to the first setting.

    python benchmarks/batch_invariance.py --prior outputs/priors/vae_mnist_embedded.pt --images 16

Results: benchmarks/results/batch_invariance.json (the bound stated in README and docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save_results  # noqa: E402


def run(prior: str, images: int, out: Path, extra: list[str]) -> list[dict]:
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, str(ROOT / "invert.py"), f"prior.checkpoint={prior}", f"num_images={images}",
           "logger=csv", f"hydra.run.dir={out}", *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    with open(out / "metrics.csv") as f:
        return [{k: (float(v) if k in ("psnr", "measurement_error") else v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 4, 1])
    parser.add_argument("--ddp-batch-size", type=int, default=8, help="batch size of the 2-process run (0: skip)")
    parser.add_argument("--overrides", nargs="*", default=[], help="more invert.py overrides (solver=..., init=...)")
    args = parser.parse_args()
    settings = {f"batch {b}": [f"batch_size={b}"] for b in args.batch_sizes}
    if args.ddp_batch_size:
        settings[f"2 processes, batch {args.ddp_batch_size}"] = [
            f"batch_size={args.ddp_batch_size}", "trainer.devices=2", "trainer.strategy=ddp_spawn",
            "trainer.accelerator=cpu"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, extra) in enumerate(settings.items()):
            rows[name] = run(args.prior, args.images, Path(tmp) / f"run{i}", [*args.overrides, *extra])
            print(f"{name}: mean PSNR {sum(r['psnr'] for r in rows[name]) / args.images:.3f} dB", flush=True)
    reference_name = next(iter(rows))
    reference = rows[reference_name]
    comparisons = {}
    for name, other in list(rows.items())[1:]:
        dpsnr = [abs(a["psnr"] - b["psnr"]) for a, b in zip(reference, other, strict=True)]
        rel_err = [abs(a["measurement_error"] - b["measurement_error"]) / max(a["measurement_error"], 1e-12)
                   for a, b in zip(reference, other, strict=True)]
        comparisons[name] = {"max_abs_dpsnr_db": max(dpsnr), "mean_abs_dpsnr_db": sum(dpsnr) / len(dpsnr),
                             "identical_images": sum(d == 0 for d in dpsnr), "max_rel_measurement_error": max(rel_err),
                             "abs_dpsnr_per_image": dpsnr}
        print(f"{name} vs {reference_name}: max |dPSNR| {max(dpsnr):.4f} dB, mean {sum(dpsnr) / len(dpsnr):.4f} dB, "
              f"{sum(d == 0 for d in dpsnr)}/{len(dpsnr)} identical, max rel. measurement-error change "
              f"{max(rel_err):.2e}")
    save_results("batch_invariance", {"prior": args.prior, "images": args.images, "overrides": args.overrides,
                                      "reference": reference_name, "comparisons": comparisons,
                                      "psnr_per_image": {k: [r["psnr"] for r in v] for k, v in rows.items()}})


if __name__ == "__main__":
    main()
