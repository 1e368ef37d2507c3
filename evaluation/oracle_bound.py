"""Oracle bound of a prior + solver: the best PSNR/SSIM its output space can reach for each test image.

    python -m evaluation.oracle_bound prior.checkpoint=P data=D solver=S num_images=N restarts=R hydra.run.dir=OUT

fits the prior to the ground truth itself, with the solver engine and the identity operator
(noiseless denoising: min ||G(.) - x||^2 is an inversion with A = I), in each output space the
solver ``S`` uses:

* ``range``: z_0 only, no ball: the generator's range, where PRILO's rule x* = G(z_0*) and DPR/CSGM
  return their images;
* ``layer<i>``: for every range-extended (forward) stage of S, the stage's variable at layer i inside
  its configured l1 ball (and ``latent_radius``), centred on G_1^i of the range fit: what one such
  stage can add to the best range image.

Per image, ``psnr``/``ssim`` are the best over these spaces (the bound for a solver that keeps any
iterate, ``select: best``), ``psnr_<space>``/``ssim_<space>`` each space's. The range fit starts from
``restarts`` latents of ``init`` (with A = I, MII is the best of its candidates by image MSE) and
keeps the lowest image error: selection by ground truth, an oracle by design, never a method. The
fits are local optimisations, so the bound is the best found, a lower estimate of the supremum.
Writes OUT/metrics.csv, OUT/summary.json, OUT/summary.md (evaluation.report), like invert.py, and, like
invert.py, one part file per batch under OUT/parts: a rerun into OUT with the same settings skips the
images already fitted (``num_images`` may grow), one with other settings is refused before anything is
written (lightning_modules.inversion.start_or_resume).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from common.cli import check_overrides
from common.errors import UserInputError, exit_on_user_error

RANGE = "range"


def output_spaces(solver_cfg: DictConfig | dict, num_layers: int) -> dict[str, dict]:
    """Space name -> the oracle's fitting stage, from a generative solver's config: ``range`` and one
    ``layer<i>`` per distinct forward stage (its layer, radius and latent radius) of its schedule."""
    from solvers.schedule import parse_schedule

    cfg = OmegaConf.to_container(solver_cfg, resolve=True) if isinstance(solver_cfg, DictConfig) else dict(solver_cfg)
    stages = parse_schedule(cfg.get("schedule") or [], cfg.get("stage_defaults"), cfg.get("skip") or (),
                            cfg.get("ball", True), num_layers)
    spaces = {RANGE: {"kind": "init", "radius": None}}
    for s in stages:
        if s.kind != "forward":
            continue
        name = f"layer{s.layer}"
        stage = {"kind": "forward", "layer": s.layer, "radius": s.radius, "latent_radius": s.latent_radius,
                 "optimize_noise": s.optimize_noise}
        if name in spaces and spaces[name] != stage:
            name = f"layer{s.layer}_r{s.radius:g}"
        spaces.setdefault(name, stage)
    return spaces


def fit(prior, x: torch.Tensor, indices: Sequence[int], spaces: dict[str, dict], init, restarts: int,
        steps: int, lr: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per space, the best fit of the prior to ``x`` (images (N, C, H, W)) found by the engine."""
    from operators.denoising import Denoising
    from solvers.generative import GenerativeSolver
    from solvers.initialization import GivenLatents

    identity = Denoising(tuple(x.shape[1:]))
    ranged = GenerativeSolver(prior, [{**spaces[RANGE], "steps": steps, "lr": lr}], init=init, restarts=restarts,
                              select="final", name="oracle-range").solve(identity, x, indices, seed)
    fits = {RANGE: ranged.x}
    for name, stage in spaces.items():
        if name != RANGE:
            solver = GenerativeSolver(prior, [{**stage, "steps": steps, "lr": lr}], init=GivenLatents(ranged.latent),
                                      select="best", name=f"oracle-{name}")
            fits[name] = solver.solve(identity, x, indices, seed).x
    return fits


def bound_rows(fits: dict[str, torch.Tensor], x: torch.Tensor, indices: Sequence[int], seconds: float) -> list[dict]:
    """Report rows: per space psnr_/ssim_<space>, and psnr/ssim of the best space per image."""
    from evaluation.metrics import psnr, ssim

    scores = {name: (psnr(fx, x), ssim(fx, x)) for name, fx in fits.items()}
    p_all = torch.stack([p for p, _ in scores.values()])
    s_all = torch.stack([s for _, s in scores.values()])
    best = p_all.argmax(0)
    rows = []
    for j, i in enumerate(indices):
        row = {"index": int(i), "psnr": float(p_all[best[j], j]), "ssim": float(s_all[best[j], j]),
               "seconds": seconds, "best_space": list(fits)[int(best[j])]}
        for name, (p, s) in scores.items():
            row[f"psnr_{name}"], row[f"ssim_{name}"] = float(p[j]), float(s[j])
        rows.append(row)
    return rows


@exit_on_user_error
def oracle_bound(cfg: DictConfig) -> dict:
    import time

    from hydra.core.hydra_config import HydraConfig

    from common.atomic import torch_save
    from common.instantiate import instantiate, instantiate_named
    from common.prior_choice import choose_prior
    from evaluation.report import write_report
    from lightning_modules.inversion import part_path, read_parts, start_or_resume
    from priors.io import load_prior
    from solvers.base import solver_class

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if not solver_class(cfg.solver._target_).requires_prior:
        raise UserInputError(f"solver={HydraConfig.get().runtime.choices.solver} uses no generative prior; "
                             f"the oracle bound is for generative solvers (csgm, dpr, ilo, prilo*)")
    for key in ("num_images", "batch_size", "restarts", "oracle.steps"):
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"{key} must be a positive integer, got {value!r}")
    if not cfg.oracle.lr > 0:
        raise UserInputError(f"oracle.lr must be positive, got {cfg.oracle.lr!r}")
    prior_path = choose_prior(cfg)  # says which file and why
    prior = load_prior(prior_path).eval().requires_grad_(False)
    spaces = output_spaces(cfg.solver, prior.num_layers)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    if cfg.num_images > len(datamodule.test_set):
        raise UserInputError(f"num_images={cfg.num_images} but the test split has {len(datamodule.test_set)} images; "
                             f"lower num_images")
    if tuple(prior.image_shape) != tuple(datamodule.test_set[0]["image"].shape):
        raise UserInputError(f"prior {cfg.prior.checkpoint} generates images of shape {tuple(prior.image_shape)}, the "
                             f"data are {tuple(datamodule.test_set[0]['image'].shape)}; pick the prior of these data")
    init = instantiate_named(cfg.init)
    config = OmegaConf.to_container(cfg, resolve=True)
    wanted = list(range(cfg.num_images))  # a test-split subset's sample indices are its positions, as in invert.py
    _, todo = start_or_resume(out_dir, config, {"prior": prior_path}, wanted, what="oracle bound",
                              extra={"oracle": config["oracle"]})
    for start in range(0, len(todo), cfg.batch_size):
        items = [datamodule.test_set[i] for i in todo[start:start + cfg.batch_size]]
        x = torch.stack([d["image"] for d in items]).to(prior.device)
        indices = [int(d["index"]) for d in items]
        tic = time.perf_counter()
        with torch.enable_grad():
            fits = fit(prior, x, indices, spaces, init, cfg.restarts, cfg.oracle.steps, cfg.oracle.lr, cfg.seed)
        torch_save({"rows": bound_rows(fits, x, indices, (time.perf_counter() - tic) / len(items))},
                   part_path(out_dir, indices[0]))
        print(f"oracle bound: {cfg.num_images - len(todo) + start + len(items)}/{cfg.num_images} images", flush=True)
    done = read_parts(out_dir)
    rows = [done[i]["row"] for i in wanted]
    metrics = [f"{m}_{name}" for name in spaces for m in ("psnr", "ssim")]
    summary = write_report(out_dir, rows, "oracle-bound", config,
                           extra_columns=["best_space", *metrics], extra_metrics=metrics)
    print((out_dir / "summary.md").read_text())
    print(" ".join(f"{name}: {summary[f'psnr_{name}_mean']:.2f} ± {summary[f'psnr_{name}_ci95']:.2f} dB"
                   for name in spaces))
    print(f"results in {out_dir}")
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="oracle_bound")
def main(cfg: DictConfig) -> None:
    oracle_bound(cfg)


if __name__ == "__main__":
    check_overrides("oracle_bound")
    main()
