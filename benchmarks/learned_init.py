"""Learned initialization (LI) vs magnitude-informed initialization (MII) on MNIST, non-oversampled
Fourier phase retrieval: PRILO table 3's structure (only initialization, DPR, PRILO with each init).

1. Trains the LI encoder for the VAE prior exactly as ``python train.py model=encoder_li`` does
   (the project's configs, ``--epochs`` epochs on the training split), unless ``--skip-training``.
2. Solves the first ``--images`` test digits with ``--restarts`` restarts per method; solvers come
   from conf/solver and conf/init as ``python invert.py`` builds them. "only initialization" is
   PRILO's table-3 "only initialisation" (README): its init stage alone (z_0 fitted to the
   measurements from the initialisation), no negated second start.

    python benchmarks/learned_init.py --prior outputs/priors/vae_mnist_embedded.pt --epochs 30

Results: benchmarks/results/learned_init.json (PSNR/SSIM mean ± 95% CI; no alignment).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import compose_invert, save_results, test_images  # noqa: E402
from common.cli import CONF_DIR  # noqa: E402
from common.instantiate import instantiate, instantiate_named  # noqa: E402
from evaluation.metrics import psnr, ssim  # noqa: E402
from evaluation.report import mean_ci95  # noqa: E402
from priors.io import load_prior  # noqa: E402

ONLY_INIT = ("solver.skip=[forward,backproject,refine]", "solver.two_start=false")
#: label → (solver, init, extra overrides)
METHODS = {
    "only-init-li": ("prilo", "li", ONLY_INIT), "dpr-li": ("dpr", "li", ()), "prilo-li": ("prilo", "li", ()),
    "only-init-mii": ("prilo", "mii", ONLY_INIT), "dpr-mii": ("dpr", "mii", ()), "prilo-mii": ("prilo", "mii", ()),
}
#: PRILO table 3 (StyleGAN on CelebA, 1024 images), for the structure; our numbers are MNIST/VAE
PAPER_CELEBA = {"prilo-li": (23.3378, 0.7247), "only-init-li": (16.9070, 0.4777),
                "prilo-mii": (21.4223, 0.6358), "only-init-mii": (15.0566, 0.3565)}


def train_encoder(prior: str, data: str, epochs: int, batch_size: int, out: Path, run_dir: Path) -> dict:
    import lightning.pytorch as pl
    from hydra import compose, initialize_config_dir

    overrides = ["model=encoder_li", f"data={data}", f"data.batch_size={batch_size}",
                 f"model.module.prior_checkpoint={prior}", f"model.module.export_path={out}", f"model.module.init_default={out}",
                 f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={max(1, epochs // 5)}",
                 f"trainer.default_root_dir={run_dir}", "trainer.enable_progress_bar=false"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    pl.seed_everything(cfg.seed, workers=True)
    module = instantiate(cfg.model.module)
    datamodule = instantiate(cfg.data)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print(f"encoder: {epochs} epochs, {int(module.iteration)} iterations of batch {batch_size} in {seconds:.0f} s; "
          + ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if "epoch" in k or k.startswith("val/")),
          flush=True)
    return {"overrides": overrides, "seconds": seconds, "iterations": int(module.iteration),
            "encoder": module.encoder_config, "critic": dict(module.hparams.critic), "final_metrics": metrics}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    parser.add_argument("--data", default="mnist_embedded")
    parser.add_argument("--encoder", default="outputs/encoders/encoder_li_mnist_embedded.pt")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-training", action="store_true", help="use the existing --encoder file")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    training = None
    if not args.skip_training:
        training = train_encoder(args.prior, args.data, args.epochs, args.batch_size, Path(args.encoder),
                                 Path("outputs/train/encoder_li_benchmark"))
    prior = load_prior(args.prior)
    x, indices = test_images(args.data, args.images)
    rows = {}
    print(f"{'method':14s} {'PSNR (dB)':>16s} {'SSIM':>17s} {'meas. error':>11s} {'s/image':>8s}")
    for label in args.methods:
        solver_name, init_name, extra = METHODS[label]
        init_args = [f"init.checkpoint={args.encoder}"] if init_name == "li" else []
        cfg = compose_invert(f"solver={solver_name}", f"init={init_name}", f"data={args.data}", *init_args, *extra)
        operator = instantiate(cfg.operator)
        solver = instantiate_named(cfg.solver, prior=prior, init=instantiate_named(cfg.init), restarts=args.restarts)
        start = time.perf_counter()
        result = solver.solve(operator, operator(x), indices, seed=0)
        seconds = (time.perf_counter() - start) / len(x)
        (pm, pc), (sm, sc) = mean_ci95(psnr(result.x, x).tolist()), mean_ci95(ssim(result.x, x).tolist())
        error = float(result.measurement_error.mean())
        rows[label] = {"psnr_mean": pm, "psnr_ci95": pc, "ssim_mean": sm, "ssim_ci95": sc,
                       "measurement_error_mean": error, "seconds_per_image": seconds,
                       "overrides": [f"solver={solver_name}", f"init={init_name}", *extra]}
        print(f"{label:14s} {pm:8.2f} ± {pc:5.2f} {sm:8.4f} ± {sc:6.4f} {error:11.3e} {seconds:8.2f}", flush=True)
    return {"rows": rows, "training": training, "paper_table3_celeba_stylegan": PAPER_CELEBA,
            "setup": {"prior": args.prior, "data": args.data, "images": args.images, "restarts": args.restarts,
                      "operator": "fourier_pr, oversampling 1", "encoder_file": args.encoder}}


if __name__ == "__main__":
    save_results("learned_init", main())
