"""PRILO variations on a few MNIST validation digits (Fourier phase retrieval, not oversampled): which
hyperparameters the paper leaves open move the result, and how good the prior's own range is.

Each trial is PRILO (or DPR) with Hydra overrides on top of conf/solver; per trial: PSNR raw and
after the oracle alignment (ground truth used, labelled), the measurement error, and the number
of images whose aligned PSNR is >= 25 dB. For a prior with an encoder (the VAE) also the PSNR of
its own reconstructions G(E(x)) of the same digits, the quality its range offers through the encoder.

    python benchmarks/prilo_trials.py --images 16

Trials tune settings, so they run on the validation split and refuse the test split (``--split test``
exits with an error): reported numbers come from the test split (benchmarks/inversion_quality.py).
Results: benchmarks/results/prilo_trials.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save_results, tuning_images  # noqa: E402
from common.atomic import write_json  # noqa: E402
from benchmarks.inversion_quality import evaluate  # noqa: E402
from evaluation.metrics import psnr  # noqa: E402
from common.errors import exit_on_user_error  # noqa: E402
from priors.io import load_prior  # noqa: E402

TRIALS = {
    "prilo-mii (conf/solver/prilo.yaml)": ("prilo-mii", []),
    "stage lr 0.02": ("prilo-mii", ["solver.stage_defaults.lr=0.02"]),
    "stage lr 0.1": ("prilo-mii", ["solver.stage_defaults.lr=0.1"]),
    "projected SGD (eq. 10), lr 0.1": ("prilo-mii", ["solver.optimizer=sgd", "solver.stage_defaults.lr=0.1",
                                                     "solver.schedule.0.lr=0.1"]),
    "projected SGD (eq. 10), lr 1": ("prilo-mii", ["solver.optimizer=sgd", "solver.stage_defaults.lr=1.0",
                                                   "solver.schedule.0.lr=1.0"]),
    "gradient noise eta 0": ("prilo-mii", ["solver.gradient_noise.eta=0"]),
    "gradient noise eta 0.002": ("prilo-mii", ["solver.gradient_noise.eta=0.002"]),
    "prilo-random (conf/solver/prilo.yaml)": ("prilo-random", []),
    "prilo-random without negation check and two starts": (
        "prilo-random", ["solver.negation_check=false", "solver.two_start=false"]),
    "dpr-random": ("dpr-random", []),
}
DEFAULT_TRIALS = list(TRIALS)  # the run of docs/RESULTS' first trials table; the ones below run when named
TRIALS |= {
    # DPR's step size and length (conf/solver/dpr.yaml: Adam lr 0.1, 1000 steps; the papers do not state them)
    "dpr-random lr 0.03": ("dpr-random", ["solver.schedule.0.lr=0.03"]),
    "dpr-random lr 0.3": ("dpr-random", ["solver.schedule.0.lr=0.3"]),
    "dpr-random 3000 steps": ("dpr-random", ["solver.schedule.0.steps=3000"]),
}


@exit_on_user_error
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--data", default="mnist_embedded")
    parser.add_argument("--data-root", default=None, help="data.root for datasets read from disk (e.g. mnist)")
    parser.add_argument("--split", default="val", help="val (the only split tuning may use)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trials", nargs="+", choices=list(TRIALS), default=DEFAULT_TRIALS, metavar="LABEL",
                        help="trials to run, by label (default: all but the DPR step trials, which run when named)")
    parser.add_argument("--name", default="prilo_trials", help="results file benchmarks/results/<name>.json")
    parser.add_argument("--recompute", default=None, metavar="FILE",
                        help="only add the paired differences to a saved results file (no trial is run)")
    args = parser.parse_args(argv)
    if args.recompute:
        saved = json.loads(Path(args.recompute).read_text())
        saved["trials"] = with_paired_differences(saved["trials"])
        return write_json(args.recompute, saved)
    x, indices = tuning_images(args.split, args.data, args.images, **({"root": args.data_root} if args.data_root else {}))
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior)
    payload = {"prior": args.prior, "data": args.data, "split": args.split, "images": args.images,
               "restarts": args.restarts}
    if hasattr(prior, "encode"):
        with torch.no_grad():
            own = float(psnr(prior(prior.encode(x)[0]), x).mean())
        payload["prior_reconstruction_psnr"] = own
        print(f"the prior's own reconstructions G(E(x)): {own:.2f} dB")
    rows = {}
    for label in args.trials:
        method, overrides = TRIALS[label]
        row = evaluate(method, prior, x, indices, args.data, args.restarts, overrides)
        recovered = sum(p >= 25 for p in row["aligned_oracle_psnr_per_image"])
        rows[label] = {"method": method, "overrides": overrides, "recovered_aligned_25db": recovered, **row}
        print(f"{label:52s} PSNR {row['psnr_mean']:6.2f}  aligned (oracle) {row['aligned_oracle_psnr_mean']:6.2f}  "
              f"recovered {recovered}/{len(x)}  measurement error {row['measurement_error_mean']:.2e}", flush=True)
    return save_results(args.name, {**payload, "trials": with_paired_differences(rows)})


def with_paired_differences(rows: dict) -> dict:
    """Each trial's aligned PSNR minus the first trial's (the configured solver), paired over the same
    images: mean ± 95% CI and how many images gained. ``--recompute FILE`` adds it to saved results."""
    from evaluation.report import mean_ci95

    reference = next(iter(rows.values()))["aligned_oracle_psnr_per_image"]
    for row in rows.values():
        diff = [a - b for a, b in zip(row["aligned_oracle_psnr_per_image"], reference)]
        mean, ci = mean_ci95(diff)
        row["aligned_vs_first_trial"] = {"mean": mean, "ci95": ci, "images_better": sum(d > 0 for d in diff)}
    return rows


if __name__ == "__main__":
    main()
