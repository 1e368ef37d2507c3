"""The method papers' experiments as runs of the presets in conf/experiment, one subcommand each:

    python benchmarks/experiments.py dpr_fig2                # DPR fig. 2: success rate vs m/n, random ReLU generator
    python benchmarks/experiments.py prilo_fig3              # PRILO fig. 3: real/complex Gaussian PR vs m (MNIST VAE)
    python benchmarks/experiments.py dpr_fig3                # DPR fig. 3: Gaussian PR vs m, DPR's latent-20 VAE
    python benchmarks/experiments.py prilo_table3            # PRILO table 3 rows (ablations x MII / LI), Fourier PR
    python benchmarks/experiments.py prilo_table1 --dataset fmnist   # PRILO table 1 column (invert.py rows + oracle bound)
    python benchmarks/experiments.py ilo_small               # ILO section 4: CSGM vs ILO, four tasks, ratio sweeps
    python benchmarks/experiments.py rtil_figs               # RTIL figs. 4-5: vanilla vs RTIL DCGANs (ILO, mGANprior),
                                                             # 32x32 StyleGAN2s (ILO) and 32x32 PGGANs (mGANprior)

Every subcommand composes its preset exactly as ``python invert.py +experiment=NAME`` does, with the
sweep of the preset's ``hydra.sweeper.params`` (or the per-task ratio axes below), solves the first
``--images`` test images (dpr_fig2: random instances) and writes benchmarks/results/<name>.json, a
PNG plot with 95% confidence intervals beside it, and prints a markdown table with the paper's
numbers where the paper prints them. One subcommand tunes, on the validation split only:

    python benchmarks/experiments.py rtil_mgan_recipe --train-epochs 8   # which RTIL multi-code DCGAN recipe trains
    python benchmarks/experiments.py mgan_lr --step-fraction 0.16          # mGANprior's learning rate on that DCGAN
    python benchmarks/experiments.py mgan_lr --figures 5-pggan             # ... and on figure 5's PGGAN
    python benchmarks/experiments.py ilo_l1_radius                         # ILO's l1-ball radii on the small StyleGAN2

``--step-fraction`` scales every configured step count (1 = the preset's schedules, the papers' scale);
a GPU rerun at the paper's scale changes only ``--images``.
``--quick`` (2 images or instances, 1% of the steps, one point per curve) only checks that the
pipeline runs; its outputs go to the system temp folder. Apart from rtil_mgan_recipe and mgan_lr nothing here tunes
anything: reported numbers are on the test split (dpr_fig2: instance seeds 0..N-1); settings are the presets'.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (RESULTS_DIR, compose_experiment, experiment_sweep, plot_categories, plot_curves,  # noqa: E402
                               mcnemar_exact, plot_panels, save_grid, save_results, scale_steps, test_images,
                               tuning_images, wilson_ci95)
from common.atomic import write_json  # noqa: E402
from common.errors import UserInputError, exit_on_user_error  # noqa: E402
from evaluation.report import mean_ci95  # noqa: E402

#: PRILO table 1 (1024 test images, 4 restarts): PSNR, SSIM per dataset and row
#: PRILO table 3 (StyleGAN on CelebA, 1024 images): the structure; ours is the MNIST VAE
PAPER_TABLE3 = {"li/full": (23.3378, 0.7247), "li/only_init": (16.9070, 0.4777), "li/only_a": (23.0097, 0.7108),
                "li/a_and_b": (22.9109, 0.7063), "li/no_ball": (22.8192, 0.6974),
                "mii/full": (21.4223, 0.6358), "mii/only_init": (15.0566, 0.3565), "mii/only_a": (20.1736, 0.5861),
                "mii/a_and_b": (19.9409, 0.5719), "mii/no_ball": (19.8461, 0.5540)}
#: ILO / RTIL task axes: operator → (its ratio key, values, axis label)
TASK_AXES = {
    "cs_circulant": ("operator.ratio", [0.02, 0.05, 0.1, 0.25], "m / n"),
    "cs_gaussian": ("operator.ratio", [0.02, 0.05, 0.1, 0.25], "m / n"),
    "inpainting": ("operator.observed_ratio", [0.05, 0.1, 0.2, 0.4], "observed fraction"),
    "super_resolution": ("operator.factor", [4, 2], "downsampling factor"),
    "denoising": ("operator.noise_std", [0.2, 0.1, 0.05], "noise std"),
}


# -- shared machinery -----------------------------------------------------------------------------------------

class Experiment:
    """One subcommand's run: composes points of a preset, caches priors, solves, collects rows, saves."""

    def __init__(self, name: str, args, preset: str | None = None):
        self.name, self.args, self.rows, self.started = name + args.tag, args, [], time.perf_counter()
        self.preset = preset or name  # the conf/experiment preset its points compose (name: its results files)
        self.priors: dict[str, torch.nn.Module] = {}
        self.data_overrides: list[str] = []  # e.g. data=prior_samples: the shape of the prior sampled

    def refuse_clashes(self, overrides) -> None:
        """Refuse an --override of a key that the run sets itself for a point or method (it would be replaced)."""
        def key(override: str) -> str:
            return override.split("=", 1)[0].lstrip("+~")

        clash = sorted({key(o) for o in self.args.override} & {key(o) for o in overrides})
        if clash:
            raise UserInputError(f"--override {', '.join(clash)}: {self.name} sets this itself for its points or "
                                 f"methods, so the override would be ignored; drop it (or pick another method)")

    def config(self, *overrides: str):
        self.refuse_clashes(overrides)
        cfg = compose_experiment(self.preset, *self.data_overrides, *self.args.override, *overrides)
        scale_steps(cfg.solver, self.args.step_fraction)
        return cfg

    def prior(self, path: str):
        from priors.io import load_prior

        if path not in self.priors:
            self.priors[path] = load_prior(path).eval().requires_grad_(False)
        return self.priors[path]

    def test_images(self, choice: str, cfg, **data_overrides) -> tuple:
        """(images, indices) this run solves: ``--images`` (else the preset's count) of the test split from
        ``--first-image`` on. Measurements and starts are seeded by an image's index, so a run from image k solves
        its images as a run from image 0 does (up to batched float32 rounding), and ``concat_results.py`` joins such
        runs into one."""
        return test_images(choice, self.args.images or cfg.num_images, self.args.first_image, **data_overrides)

    def solve(self, cfg, x: torch.Tensor, indices, prior=None, seed: int = 0):
        """(reconstructions, measurement errors, seconds per image) of the configured solver on x."""
        from common.instantiate import instantiate
        from invert import build_solver
        from lightning_modules.inversion import measure_images

        operator = instantiate(cfg.operator)
        solver = build_solver(cfg, prior, operator)
        start = time.perf_counter()
        result = solver.solve(operator, measure_images(operator, x, indices, seed), list(indices), seed=seed)
        return result.x, result.measurement_error, (time.perf_counter() - start) / len(x)

    def image_row(self, label: str, point: dict, x_hat, x, error, seconds, aligned: bool = False) -> dict:
        """Mean ± 95% CI of PSNR / SSIM (and LPIPS from 31 px, MSE, oracle-aligned PSNR/SSIM for Fourier)."""
        from evaluation.alignment import align_to_reference
        from evaluation.metrics import image_metrics

        metrics = image_metrics(x_hat, x, lpips_net="alex" if min(x.shape[-2:]) >= 31 else None)
        metrics["mse"] = (x_hat.clamp(0, 1) - x).pow(2).flatten(1).mean(1)
        if aligned:
            moved = align_to_reference(x_hat, x)
            metrics.update({f"{k}_aligned": v for k, v in image_metrics(moved, x, lpips_net=None).items()
                            if k in ("psnr", "ssim")})
        row = {"label": label, **point, "images": len(x), "truths": truth_digest(x),
               "truths_per_image": [truth_digest(image)[:TRUTH_DIGITS] for image in x], "seconds_per_image": seconds,
               "measurement_error_mean": float(error.mean())}
        for key, values in metrics.items():
            row[f"{key}_mean"], row[f"{key}_ci95"] = mean_ci95(values.tolist())
        row["psnr_values"] = metrics["psnr"].tolist()  # per image, for paired comparisons
        return self.add(row)

    def add(self, row: dict) -> dict:
        self.rows.append(row)
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()
                 if k.endswith("_mean") or k in ("label", "success_rate") or k in row.get("axis", ())}
        print(" ".join(f"{k}={v}" for k, v in shown.items()), flush=True)
        self.save(complete=False)  # rows so far, in case the run is stopped
        return row

    def out_path(self) -> Path:
        return Path(tempfile.gettempdir()) / f"{self.name}_quick.json" if self.args.quick else RESULTS_DIR / f"{self.name}.json"

    def save(self, complete: bool, **extra) -> Path:
        payload = {"experiment": self.name, "argv": sys.argv[1:], "images": self.args.images,
                   "first_image": self.args.first_image, "step_fraction": self.args.step_fraction,
                   "overrides": self.args.override, "quick": self.args.quick,
                   "complete": complete, "wall_seconds": time.perf_counter() - self.started, "rows": self.rows, **extra}
        if self.args.quick:  # not a published result
            self.out_path().parent.mkdir(parents=True, exist_ok=True)
            return write_json(self.out_path(), payload)
        partial = self.out_path().with_suffix(".partial.json")  # a stopped run never replaces the last complete one
        if not complete:
            return write_json(partial, payload)
        path = save_results(self.name, payload)
        partial.unlink(missing_ok=True)
        return path

    @staticmethod
    def curves(rows, x_key: str, y_key: str) -> dict:
        """Per row label, the error-bar curve ``{x, y, yerr}`` of ``y_key``'s mean ± 95% CI against ``x_key``."""
        out: dict[str, dict] = {}
        for r in rows:
            c = out.setdefault(r["label"], {"x": [], "y": [], "yerr": []})
            c["x"].append(float(r[x_key]))
            c["y"].append(r[f"{y_key}_mean"])
            c["yerr"].append(r[f"{y_key}_ci95"])
        return out


#: hex digits of each image's fingerprint in a row's ``truths_per_image``
TRUTH_DIGITS = 10


def truth_digest(x: torch.Tensor) -> str:
    """A fingerprint of a row's ground-truth images (SHA-256 of their float32 values, in order): rows of different
    runs are compared image by image (paired_psnr, merge_results) only where their fingerprints agree."""
    return hashlib.sha256(x.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()[:16]


def same_truths(a: dict, b: dict) -> bool | None:
    """Whether two rows solved the same ground truths: by their per-image fingerprints where both have them (so a
    run joined from parts matches one run on the same images), else by the whole-row ``truths``; None where a row
    has neither (files written before fingerprints: unchecked)."""
    for key in ("truths_per_image", "truths"):
        if key in a and key in b:
            return a[key] == b[key]
    return None


def _pm(row: dict, key: str, fmt: str) -> str:
    m, c = row.get(f"{key}_mean"), row.get(f"{key}_ci95")
    if m is None or m != m:
        return "–"
    return f"{m:{fmt}}" if c is None or c != c else f"{m:{fmt}} ± {c:{fmt}}"


def _axis(values: list, quick: bool, chosen: list[str] | None = None) -> list:
    """The swept values: ``--axis`` (a subset chosen to fit a budget), else the preset's; --quick: the last."""
    if chosen:
        unknown = [v for v in chosen if v not in values]
        if unknown:
            raise UserInputError(f"--axis {' '.join(unknown)}: not among the preset's values {', '.join(values)}")
        values = chosen
    return values[-1:] if quick else values


# -- DPR figure 2 ---------------------------------------------------------------------------------------------

def dpr_fig2_instances(cfg, instances: int):
    """(generator bank, operator bank, ground truths G_i(z0_i)) of instances 0..instances-1 of one point, one batch
    row each: A of seed i, generator of seed i, z0 of instance index i; every draw is per instance, so the first k
    instances of any run are those of a k-instance run."""
    from common.instantiate import instantiate
    from common.randomness import per_sample_normal
    from operators.gaussian import GaussianPhaseRetrievalBank

    prior = instantiate(cfg.generator, seed=0, instances=instances).requires_grad_(False)
    operator = GaussianPhaseRetrievalBank(tuple(cfg.operator.input_shape), instances, cfg.operator.m,
                                          cfg.operator.ratio, cfg.operator.noise_std, seed=0)
    return prior, operator, prior(per_sample_normal(prior.latent_shape, 0, "dpr_fig2.z0", range(instances)))


def dpr_fig2(args) -> Experiment:
    """All instances of a point in one batch (dpr_fig2_instances); DPR's starts are drawn per instance too."""
    from evaluation.metrics import relative_error
    from invert import build_solver

    exp = Experiment("dpr_fig2", args)
    if args.collect_only:  # the table of a finished run's results file, nothing run or written
        path = exp.out_path()
        if not path.exists():
            raise UserInputError(f"--collect-only: no results file {path}; run dpr_fig2{' --tag ' + args.tag if args.tag else ''} first")
        table = dpr_fig2_table(json.loads(path.read_text())["rows"], exp.config().success_threshold)
        print(table)
        return exp
    sweep = experiment_sweep(exp.preset)
    ratios, checks = _axis(sweep["operator.ratio"], args.quick, args.axis), sweep["solver.negation_check"]
    instances = args.images or exp.config().num_images
    for ratio in ratios:
        for check in checks:
            cfg = exp.config(f"operator.ratio={ratio}", f"solver.negation_check={check}")
            prior, operator, x = dpr_fig2_instances(cfg, instances)
            start = time.perf_counter()
            result = build_solver(cfg, prior, operator).solve(operator, operator(x), list(range(instances)), seed=0)
            errors = relative_error(result.x, x).tolist()
            wins = sum(e <= cfg.success_threshold for e in errors)
            rate, low, high = wilson_ci95(wins, instances)
            exp.add({"label": f"DPR, negation check {'on' if check == 'True' else 'off'}", "ratio": float(ratio),
                     "m": operator.m, "negation_check": check == "True", "instances": instances, "successes": wins,
                     "success_rate": rate, "success_ci95": [low, high], "relative_errors": errors,
                     "seconds_per_instance": (time.perf_counter() - start) / instances, "axis": ["ratio"]})
    curves = {}
    for r in exp.rows:
        c = curves.setdefault(r["label"], {"x": [], "y": [], "yerr": [[], []]})
        c["x"].append(r["ratio"])
        c["y"].append(r["success_rate"])
        c["yerr"][0].append(max(0.0, r["success_rate"] - r["success_ci95"][0]))  # rounding at rates 0 and 1
        c["yerr"][1].append(max(0.0, r["success_ci95"][1] - r["success_rate"]))
    plot_curves(curves, exp.out_path().with_suffix(".png"), "m / n (n = 1000)",
                "success rate (rel. error ≤ 1e-3)", f"DPR fig. 2: k=10 ReLU generator, {instances} instances, 95% Wilson CI")
    return _finish(exp, dpr_fig2_table(exp.rows, exp.config().success_threshold))


def dpr_fig2_table(rows: list[dict], threshold: float) -> str:
    """Success counts with and without the negation check per m/n, and the paired comparison on the same
    instances (both runs solve instance i from the same A, generator, z0 and start): instances solved by one
    only, and the exact McNemar p-value; the last line pools every m/n."""
    lines = ["| m/n | m | DPR with negation check | DPR without | solved with only / without only (paired) | "
             "McNemar p | paper |", "|---|---|---|---|---|---|---|"]
    pooled = [0, 0, 0, 0, 0]  # with, without, with only, without only, instances

    def cell(wins, n):
        rate, low, high = wilson_ci95(wins, n)
        return f"{wins}/{n} ({rate:.0%}, CI {low:.0%}–{high:.0%})"

    for ratio in dict.fromkeys(r["ratio"] for r in rows):
        pair = {r["negation_check"]: r for r in rows if r["ratio"] == ratio}
        on, off = ([e <= threshold for e in pair[check]["relative_errors"]] for check in (True, False))
        counts = [sum(on), sum(off), sum(a and not b for a, b in zip(on, off)),
                  sum(b and not a for a, b in zip(on, off)), len(on)]
        pooled = [p + c for p, c in zip(pooled, counts)]
        lines.append(f"| {ratio:.2f} | {pair[True]['m']} | {cell(counts[0], counts[4])} | {cell(counts[1], counts[4])} | "
                     f"{counts[2]} / {counts[3]} | {mcnemar_exact(counts[2], counts[3]):.2g} | figure only |")
    lines.append(f"| all | – | {cell(pooled[0], pooled[4])} | {cell(pooled[1], pooled[4])} | {pooled[2]} / {pooled[3]} | "
                 f"{mcnemar_exact(pooled[2], pooled[3]):.2g} | – |")
    return "\n".join(lines)


# -- Gaussian phase retrieval sweeps: PRILO figure 3, DPR figure 3 ---------------------------------------------

def _measurement_sweep(exp: Experiment, methods: dict[str, list[str]], operators: list[str], ms: list[str],
                       prior_path: str, title: str) -> None:
    args = exp.args
    cfg0 = exp.config(f"prior.checkpoint={prior_path}")
    x, indices = exp.test_images(_data_choice(exp), cfg0, **_data_overrides(cfg0))
    prior = exp.prior(prior_path)
    operators = operators[:1] if args.quick else operators
    for op in operators:
        for m in _axis(ms, args.quick, args.axis):
            for label, overrides in methods.items():
                cfg = exp.config(f"prior.checkpoint={prior_path}", f"operator={op}", f"operator.m={m}", *overrides,
                                 *(["init.num_candidates=16"] if args.quick and "init=mii" in overrides else []))
                x_hat, error, seconds = exp.solve(cfg, x, indices, prior=prior)
                exp.image_row(label, {"operator": op, "m": int(m), "axis": ["operator", "m"]}, x_hat, x, error, seconds)
    sweep_plots(exp.rows, exp.out_path().with_name(exp.name), f"{title}, {{operator}}, {len(x)} test images, 95% CI")


def sweep_plots(rows: list[dict], prefix: Path, title: str) -> list[Path]:
    """Per operator of a measurement sweep, ``PREFIX_<operator>_<psnr|ssim>.png``: every method against m;
    ``title`` may name ``{operator}``."""
    paths = []
    for op in dict.fromkeys(r["operator"] for r in rows):
        for metric in ("psnr", "ssim"):
            paths.append(plot_curves(Experiment.curves([r for r in rows if r["operator"] == op], "m", metric),
                                     prefix.with_name(f"{prefix.name}_{op}_{metric}.png"), "measurements m",
                                     metric.upper(), title.format(operator=op)))
    return paths


def _chosen_methods(args, methods: dict[str, tuple[str, list[str]]], opt_in=frozenset()) -> dict[str, list[str]]:
    """Label -> overrides of the methods ``--methods`` names (default: every method not in ``opt_in``)."""
    unknown = sorted(set(args.methods or []) - set(methods))
    if unknown:
        raise UserInputError(f"--methods {' '.join(unknown)}: not a method of this run; choose from {', '.join(methods)}")
    return {label: overrides for key, (label, overrides) in methods.items()
            if (key in args.methods if args.methods else key not in opt_in)}


def _data_choice(exp: Experiment, cfg=None) -> str:
    """The data config the run's points use: the preset's, or the one chosen by ``--override data=…``
    (the test images must come from the data the points' configs, and so their priors, were composed for).
    ``cfg``: the preset composed with the overrides and its hydra node, when the caller has it."""
    cfg = cfg or compose_experiment(exp.preset, *exp.args.override, with_hydra=True)
    return cfg.hydra.runtime.choices.data


def _default_prior(exp: Experiment) -> str:
    """The prior file the run's points name (``prior.checkpoint``, the data choice filled in as invert.py does)."""
    from omegaconf import OmegaConf

    from common.prior_choice import DATA_CHOICE

    cfg = compose_experiment(exp.preset, *exp.args.override, with_hydra=True)
    checkpoint = str(OmegaConf.to_container(cfg.prior, resolve=False)["checkpoint"])
    return checkpoint.replace(DATA_CHOICE, _data_choice(exp, cfg))


def _data_overrides(cfg) -> dict:
    """The preset's data settings that the test images depend on (a folder, an image size)."""
    return {k: cfg.data[k] for k in ("root", "image_size") if k in cfg.data}


def sweep_table(rows: list[dict], paper: str) -> str:
    lines = ["| operator | m | method | PSNR (dB) | SSIM | MSE | meas. error | paper |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['operator']} | {r['m']} | {r['label']} | {_pm(r, 'psnr', '.2f')} | {_pm(r, 'ssim', '.3f')} | "
                     f"{r['mse_mean']:.4f} | {r['measurement_error_mean']:.2e} | {paper} |")
    return "\n".join(lines)


def prilo_fig3(args) -> Experiment:
    exp = Experiment("prilo_fig3_gaussian", args)
    sweep = experiment_sweep(exp.preset)
    methods = {"dpr": ("DPR", ["solver=dpr", "init=random"]), "dpr_mii": ("DPR-MII", ["solver=dpr", "init=mii"]),
               "prilo_mii": ("PRILO-MII", ["solver=prilo", "init=mii"]),
               "prilo_mii_paper": ("PRILO-MII (paper rule)", ["solver=prilo_paper", "init=mii"]),
               "wf": ("WF", ["solver=wf", "init=random"]),
               # ours, judging iterates and starts by 10% held-out measurements instead of the fitted ones
               "prilo_mii_holdout": ("PRILO-MII (10% held out)", ["solver=prilo", "init=mii", "solver.holdout=0.1"])}
    _measurement_sweep(exp, _chosen_methods(args, methods, opt_in={"prilo_mii_holdout"}), sweep["operator"],
                       sweep["operator.m"], args.prior or _default_prior(exp), "PRILO fig. 3 (MNIST)")
    return _finish(exp, sweep_table(exp.rows, "figure only"))


def dpr_fig3(args) -> Experiment:
    exp = Experiment("dpr_fig3", args)
    sweep = experiment_sweep(exp.preset)
    methods = {"DPR": [], "WF": ["solver=wf", "init=random"]}
    _measurement_sweep(exp, methods, ["gaussian_pr"], sweep["operator.m"], args.prior or
                       _default_prior(exp), "DPR fig. 3 (MNIST, latent-20 VAE)")
    return _finish(exp, sweep_table(exp.rows, "figure only"))


# -- PRILO table 3 --------------------------------------------------------------------------------------------

def plot_table3(rows: list[dict], path: Path, title: str) -> Path:
    """One initialisation's ablation rows of PRILO table 3: raw and aligned PSNR with 95% CIs."""
    return plot_categories({key: {"y": [r[f"{metric}_mean"] for r in rows], "yerr": [r[f"{metric}_ci95"] for r in rows]}
                            for key, metric in (("PSNR", "psnr"), ("PSNR aligned (oracle)", "psnr_aligned"))},
                           [r["ablation"] for r in rows], path, "PSNR (dB)", title)


def prilo_table3(args) -> Experiment:
    exp = Experiment("prilo_table3", args)
    sweep = experiment_sweep(exp.preset)
    prior_path = args.prior or _default_prior(exp)
    cfg0 = exp.config(f"prior.checkpoint={prior_path}")
    data = _data_choice(exp)
    x, indices = exp.test_images(data, cfg0, **_data_overrides(cfg0))
    prior = exp.prior(prior_path)
    encoder = args.encoder or f"outputs/encoders/encoder_li_{data}.pt"
    for init in args.inits or sweep["init"]:
        for ablation in (sweep["+ablation"][:1] + sweep["+ablation"][-1:] if args.quick else sweep["+ablation"]):
            cfg = exp.config(f"prior.checkpoint={prior_path}", f"+ablation={ablation}", f"init={init}",
                             *([f"init.checkpoint={encoder}"] if init == "li" else []),
                             *(["init.num_candidates=16"] if args.quick and init == "mii" else []))
            x_hat, error, seconds = exp.solve(cfg, x, indices, prior=prior)
            row = exp.image_row(f"{init}/{ablation}", {"init": init, "ablation": ablation}, x_hat, x, error, seconds,
                                aligned=True)
            row["paper_celeba_stylegan"] = PAPER_TABLE3.get(row["label"])
    table3_plots(exp.rows, exp.out_path().with_name(exp.name))
    return _finish(exp, table3_table(exp.rows))


def table3_table(rows: list[dict]) -> str:
    lines = ["| init | row | PSNR (dB) | SSIM | PSNR aligned (oracle) | SSIM aligned (oracle) | paper (StyleGAN, CelebA) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = r["paper_celeba_stylegan"]
        lines.append(f"| {r['init'].upper()} | {r['ablation']} | {_pm(r, 'psnr', '.2f')} | {_pm(r, 'ssim', '.3f')} | "
                     f"{_pm(r, 'psnr_aligned', '.2f')} | {_pm(r, 'ssim_aligned', '.3f')} | "
                     f"{f'{paper[0]:.2f} / {paper[1]:.4f}' if paper else '–'} |")
    return "\n".join(lines)


def table3_plots(rows: list[dict], prefix: Path) -> list[Path]:
    """``PREFIX_<init>.png`` per initialisation of PRILO table 3 rows."""
    return [plot_table3([r for r in rows if r["init"] == init], prefix.with_name(f"{prefix.name}_{init}.png"),
                        f"PRILO table 3 rows, {init.upper()}, {rows[0]['images']} test images, 95% CIs")
            for init in dict.fromkeys(r["init"] for r in rows)]


# -- PRILO table 1 (invert.py rows, resumable) -----------------------------------------------------------------

def plot_table1(rows: list[dict], path: Path, title: str) -> Path:
    """PRILO table 1 as a figure: per method raw and aligned PSNR (95% CIs) and the paper's number, beside the
    prior's oracle bounds (range, layer balls) as horizontal lines with their CIs."""
    bound = next((r for r in rows if r["label"] == "oracle bound"), None)
    methods = [r for r in rows if r is not bound]
    spaces = [k[len("psnr_"):-len("_mean")] for k in (bound or {}) if k.startswith("psnr_") and k.endswith("_mean")
              and k not in ("psnr_mean", "psnr_aligned_mean")]
    references = {f"oracle bound: {space}": (bound[f"psnr_{space}_mean"], bound[f"psnr_{space}_ci95"] or 0)
                  for space in spaces}

    def series(key):
        return {"y": [r.get(f"{key}_mean") for r in methods], "yerr": [r.get(f"{key}_ci95") for r in methods]}

    return plot_categories({"PSNR": series("psnr"), "PSNR aligned (oracle)": series("psnr_aligned"),
                            "paper": {"y": [r.get("paper_psnr") for r in methods], "yerr": [0] * len(methods),
                                      "fmt": "x"}},
                           [r["label"] for r in methods], path, "PSNR (dB)", title, references)


def prilo_table1(args) -> Experiment:
    from benchmarks.table1_mnist import PAPER_TABLE1, collect_rows, folder, markdown, table1_rows

    name = f"prilo_table1_{args.dataset}"
    exp = Experiment(name, args)
    rows = table1_rows("prilo_fmnist" if args.dataset == "fmnist" else "prilo")
    out = Path(args.out or f"outputs/experiments/{name}")
    cfg0 = exp.config()
    images = args.images or cfg0.num_images
    if args.step_fraction != 1 and not args.quick:
        raise UserInputError("prilo_table1 runs invert.py rows: shorten them with --override (e.g. "
                             "solver.schedule.0.steps=N), not --step-fraction")
    quick_rows = {"oracle bound": ["oracle.steps=2", "init.num_candidates=16"], "ER": ["solver.iterations=2"],
                  "DPR": ["solver.schedule=[{kind:init,steps:2,lr:0.1,radius:null}]"]}
    for row, (entry, overrides) in rows.items():
        if args.collect_only or (args.quick and row not in quick_rows):
            continue
        command = [sys.executable, *(["-m", entry] if not entry.endswith(".py") else [str(ROOT / entry)]),
                   f"+experiment={name}", *overrides, f"num_images={images}", f"hydra.run.dir={out / folder(row)}",
                   "logger=csv", "trainer.enable_progress_bar=false", *args.override,
                   *([f"prior.checkpoint={args.prior}"] if args.prior else []), *(quick_rows[row] if args.quick else [])]
        print(f"== {row}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "WANDB_MODE": "offline"})
    collected = collect_rows(out, rows, PAPER_TABLE1[args.dataset])
    if not collected:
        raise UserInputError(f"no finished row in {out}")
    exp.rows.extend({"label": row, **r} for row, r in collected.items())
    plot_table1(exp.rows, exp.out_path().with_suffix(".png"),
                f"PRILO table 1, {args.dataset}, {images} test images, 95% CIs")
    return _finish(exp, markdown(collected))


# -- ILO section 4 and RTIL figures 4-5: task x ratio sweeps -----------------------------------------------------

def _task_sweep(exp: Experiment, methods: dict[str, list[str]], operators: list[str], prior_path: str,
                x: torch.Tensor, indices, prior_label: str = "") -> None:
    for op in operators:  # every point's own keys, before any point is solved
        for overrides in methods.values():
            exp.refuse_clashes(["prior.checkpoint=", "operator=", f"{TASK_AXES[op][0]}=", *overrides])
    prior = exp.prior(prior_path)
    for op in operators:
        key, values, _ = TASK_AXES[op]
        for value in _axis(values, exp.args.quick):
            for label, overrides in methods.items():
                cfg = exp.config(f"prior.checkpoint={prior_path}", f"operator={op}", f"{key}={value}", *overrides)
                x_hat, error, seconds = exp.solve(cfg, x, indices, prior=prior)
                exp.image_row(f"{prior_label}{label}", {"operator": op, "ratio": value, "prior": prior_path,
                                                        "axis": ["operator", "ratio"]}, x_hat, x, error, seconds)


def _task_plots_and_table(exp: Experiment, operators: list[str], paper: str) -> str:
    task_plots([r for r in exp.rows if r["operator"] in (*operators, "oracle")], exp.out_path().with_name(exp.name))
    return task_table(exp.rows, paper)


#: the quality measures a task sweep plots, one panel each: (row key, axis label)
TASK_METRICS = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("lpips", "LPIPS (lower is better)"))


def task_panels(op_rows: list[dict], bounds: list[dict]) -> dict[str, dict]:
    """One task's panels: per measure of ``TASK_METRICS`` that any row has (LPIPS is NaN for images it cannot
    score), every method's curve against the task's axis, and each oracle-bound row as a flat line where it bounds
    that measure over G's range (``<measure>_range``); rows without a range bound draw their PSNR bound."""
    xs = sorted({float(r["ratio"]) for r in op_rows})
    panels = {}
    for metric, ylabel in TASK_METRICS:
        if not any(math.isfinite(r.get(f"{metric}_mean", math.nan)) for r in op_rows):
            continue
        curves = Experiment.curves(op_rows, "ratio", metric)
        for b in bounds:
            if f"{metric}_range_mean" in b:  # G's range: the output-space bound can sit far off the scale
                key, name = f"{metric}_range", f"{b['label']} (G's range)"
            elif metric == "psnr" and "psnr_range_mean" not in b:
                key, name = "psnr", b["label"]
            else:
                continue
            curves[name] = {"x": xs, "y": [b[f"{key}_mean"]] * len(xs), "yerr": [b[f"{key}_ci95"]] * len(xs)}
        panels[ylabel] = curves
    return panels


def task_plots(rows: list[dict], prefix: Path) -> list[Path]:
    """Per task of a task sweep, ``PREFIX_<task>.png``: PSNR, SSIM and LPIPS panels (``task_panels``)."""
    bounds = [r for r in rows if r["operator"] == "oracle"]  # one per prior, the same at every ratio
    paths = []
    for op in dict.fromkeys(r["operator"] for r in rows if r["operator"] != "oracle"):
        panels = task_panels([r for r in rows if r["operator"] == op], bounds)
        paths.append(plot_panels(panels, prefix.with_name(f"{prefix.name}_{op}.png"), TASK_AXES[op][2],
                                 f"{prefix.name}: {op}, 95% CI"))
    return paths


def task_table(rows: list[dict], paper: str) -> str:
    lines = ["| task | ratio | method | PSNR (dB) | SSIM | LPIPS | paper |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['operator']} | {'–' if r['ratio'] is None else r['ratio']} | {r['label']} | "
                     f"{_pm(r, 'psnr', '.2f')} | {_pm(r, 'ssim', '.3f')} | {_pm(r, 'lpips', '.3f')} | "
                     f"{'–' if r['operator'] == 'oracle' else paper} |")
    return "\n".join(lines)


def _own_or_prior_samples(exp: Experiment, cfg, prior_path: str):
    choice = _data_choice(exp)
    extra = {"checkpoint": prior_path} if choice == "prior_samples" else _data_overrides(cfg)
    if choice == "prior_samples":
        c, h, _ = exp.prior(prior_path).image_shape
        extra.update(channels=c, image_size=h)
        exp.data_overrides = [f"data.channels={c}", f"data.image_size={h}"]
    return exp.test_images(choice, cfg, **extra)


def _stage_steps(exp: Experiment, *overrides: str) -> list[int]:
    """Optimizer steps of each item of a solver's schedule as the preset composes it (before --step-fraction;
    ``stage_defaults`` filled in, a repeated block counted whole)."""
    from solvers.schedule import parse_schedule

    solver = compose_experiment(exp.preset, *exp.data_overrides, *overrides).solver
    return [sum(stage.steps for stage in parse_schedule([item], solver.get("stage_defaults"))) for item in solver.schedule]


def _stretched_schedule(exp: Experiment, total: int, *overrides: str) -> list[str]:
    """Overrides giving each stage of a flat schedule its share of ``total`` steps (equal-compute rows)."""
    steps = _stage_steps(exp, *overrides)
    return [f"++solver.schedule.{i}.steps={max(1, round(n * total / sum(steps)))}" for i, n in enumerate(steps)]


#: ILO with l1 balls on the small StyleGAN2 (solver=ilo_stylegan_l1): each ball's radius as a fraction of the mean
#: l1 norm of what it bounds (the maps at its split, the W+ code), over the prior's own samples; the config's
#: radii (1000-3000) are for 256 maps and exceed this prior's map norms (160-640), i.e. no ball at all.
#: Candidates of ilo_l1_radius (None: no balls); the chosen one: ilo_l1_radius on 16 validation digits
#: (benchmarks/results/ilo_l1_radius.json; every candidate within 0.2 dB of it, far inside the CIs).
ILO_L1_FRACTIONS = [0.05, 0.1, 0.2, 0.4, None]
ILO_L1_FRACTION = 0.1

#: ilo_small methods run only when --methods names them; csgm_starts: CSGM at equal compute as CSGM_STARTS starts
OPT_IN_METHODS = {"csgm_starts"}
CSGM_STARTS = 4


def _ilo_l1_balls(prior, fraction: float | None, samples: int = 256) -> list[str]:
    """solver=ilo_stylegan_l1 overrides: each forward round's map and W+ radii at ``fraction`` of their mean l1 norms."""
    from priors.base import LATENT, STATE

    cfg = compose_experiment("ilo_small", "solver=ilo_stylegan_l1").solver
    z = prior.sample_latent(samples, generator=torch.Generator().manual_seed(0))
    out = []
    for i, stage in enumerate(cfg.schedule):
        if stage.kind != "forward":
            continue
        layer = prior.to_layer(z, stage.layer)
        radius, latent = (float(layer[key].flatten(1).abs().sum(1).mean()) * fraction if fraction else None
                          for key in (STATE, LATENT))
        out += [f"solver.schedule.{i}.radius={radius if radius is None else f'{radius:.2f}'}",
                f"solver.schedule.{i}.latent_radius={latent if latent is None else f'{latent:.2f}'}"]
    return [o.replace("=None", "=null") for o in out]


def ilo_l1_radius(args) -> Experiment:
    """The l1-ball radii of ILO on the small StyleGAN2, chosen on the validation split only: ILO-l1 with each of
    ILO_L1_FRACTIONS on ``--images`` validation digits, partial-circulant CS at m/n 0.05 and 0.25 (RTIL A.3 and ILO:
    tuned on compressed sensing, reused for the other tasks); rule: the highest validation PSNR averaged over both."""
    exp = Experiment("ilo_l1_radius", args, preset="ilo_small")
    cfg0 = exp.config(*([f"prior.checkpoint={args.prior}"] if args.prior else []))
    path = args.prior or cfg0.prior.checkpoint
    prior = exp.prior(path)
    x, indices = tuning_images("val", num_images=2 if args.quick else args.images or 16, **_data_overrides(cfg0))
    fractions = ILO_L1_FRACTIONS[:2] if args.quick else ILO_L1_FRACTIONS
    ratios = [0.25] if args.quick else [0.05, 0.25]
    for fraction in fractions:
        for ratio in ratios:
            cfg = exp.config(f"prior.checkpoint={path}", "solver=ilo_stylegan_l1", "init=gaussian", "operator=cs_circulant",
                             f"operator.ratio={ratio}", *_ilo_l1_balls(prior, fraction))
            x_hat, error, seconds = exp.solve(cfg, x, indices, prior=prior)
            exp.image_row(f"fraction {fraction}", {"operator": "cs_circulant", "ratio": ratio, "fraction": fraction,
                                                   "prior": path, "split": "val"}, x_hat, x, error, seconds)
    score = {f: sum(r["psnr_mean"] for r in exp.rows if r["fraction"] == f) / len(ratios) for f in fractions}
    chosen = max(fractions, key=lambda f: score[f])
    curves = {f"m/n {ratio}": {"x": list(range(len(fractions))),
                               "y": [r["psnr_mean"] for r in exp.rows if r["ratio"] == ratio],
                               "yerr": [r["psnr_ci95"] for r in exp.rows if r["ratio"] == ratio]} for ratio in ratios}
    plot_curves(curves, exp.out_path().with_name(f"{exp.name}.png"),
                f"radius fraction ({', '.join(map(str, fractions))}; None: no balls)", "PSNR (dB)",
                "ilo_l1_radius: validation, 95% CI")
    lines = [f"ILO-l1 on {len(x)} validation digits, partial-circulant CS, prior {path}; rule: highest mean PSNR", "",
             "| radius fraction | " + " | ".join(f"PSNR m/n {r} (dB)" for r in ratios) + " | mean |",
             "|---|" + "---|" * (len(ratios) + 1)]
    for f in fractions:
        cells = [_pm(r, "psnr", ".2f") for r in exp.rows if r["fraction"] == f]
        lines.append(f"| {f}{' **(chosen)**' if f == chosen else ''} | {' | '.join(cells)} | {score[f]:.2f} |")
    return _finish(exp, "\n".join(lines), chosen=chosen, split="val")


def ilo_small(args) -> Experiment:
    exp = Experiment(f"ilo_small{'_dcgan' if args.dcgan else ''}", args)
    cfg0 = exp.config(*([f"prior.checkpoint={args.prior}"] if args.prior else []))
    prior_path = args.prior or cfg0.prior.checkpoint
    x, indices = _own_or_prior_samples(exp, cfg0, prior_path)
    ilo = "solver=ilo_dcgan" if args.dcgan else "solver=ilo_stylegan_mse"
    init = "init=random" if args.dcgan else "init=gaussian"
    methods = {"csgm": ("CSGM", ["solver=csgm", init]), "ilo": ("ILO", [ilo, init])}
    budget = {key: sum(_stage_steps(exp, *overrides)) for key, (_, overrides) in methods.items()}
    if budget["ilo"] < 0.8 * budget["csgm"]:  # the paper's ILO schedule, and ILO with CSGM's step count
        methods["ilo_equal_compute"] = (f"ILO, {budget['csgm']} steps",
                                        [ilo, init, *_stretched_schedule(exp, budget["csgm"], ilo, init)])
    if not args.dcgan:  # ILO with its l1 balls (the paper's text), radii chosen on validation by ilo_l1_radius
        methods["ilo_l1"] = (f"ILO-l1, radii {ILO_L1_FRACTION} of the norms",
                             ["solver=ilo_stylegan_l1", init, *_ilo_l1_balls(exp.prior(prior_path), ILO_L1_FRACTION)])
    # opt-in: CSGM's step budget split over CSGM_STARTS starts, the kept start = lowest measurement error
    steps = budget["csgm"] // CSGM_STARTS
    methods["csgm_starts"] = (f"CSGM, best of {CSGM_STARTS} starts x {steps} steps",
                              ["solver=csgm", init, f"restarts={CSGM_STARTS}",
                               *_stretched_schedule(exp, steps, "solver=csgm", init)])
    chosen = _chosen_methods(args, methods, opt_in=OPT_IN_METHODS)
    operators = ["cs_circulant", "inpainting", "super_resolution", "denoising"]
    _task_sweep(exp, chosen, operators[:1] if args.quick else operators, prior_path, x, indices)
    if _data_choice(exp) != "prior_samples":  # on its own samples the bound is exact reconstruction
        _oracle_bound_row(exp, exp.config(f"prior.checkpoint={prior_path}", ilo, init), exp.prior(prior_path), "ILO",
                          x, indices, "oracle bound")
    return _finish(exp, _task_plots_and_table(exp, operators[:1] if args.quick else operators, "figure only"))


def _train_prior(model: str, path: Path, epochs: int, *overrides: str) -> None:
    """``python train.py model=M [overrides]`` into ``path`` unless it exists (an existing prior is never replaced)."""
    if path.exists():
        print(f"using the existing prior {path}")
        return
    command = [sys.executable, str(ROOT / "train.py"), f"model={model}", f"trainer.max_epochs={epochs}",
               f"export_path={path}", "logger=csv", "trainer.enable_progress_bar=false", *overrides]
    print(f"== {' '.join(command[1:])}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "WANDB_MODE": "offline"})


class RtilFigure(NamedTuple):
    """One RTIL figure: its preset, the inversion method, the vanilla model and the RTIL model trained for that
    method (conf/model names), the epochs of each when trained here, and train.py overrides by model."""
    preset: str
    method: str
    vanilla: str
    rtil: str
    epochs: int
    train_overrides: dict[str, tuple[str, ...]] = {}

    @property
    def models(self) -> tuple[str, str]:
        return self.vanilla, self.rtil


#: RTIL figures 4 and 5; 4-stylegan2: figure 4 on the narrow 32x32 StyleGAN2, ILO's own architecture;
#: 5-pggan: figure 5 on the paper's architecture, a 32x32 PGGAN whose codes mix after block 2 (8x8), before
#: two more blocks (the paper's 256 px PGGAN mixes after block 4 of 7); 72 epochs of the ~4k embedded train
#: digits cover the model config's growing schedule (7 phases of 40k images; the paper's are 800k each)
RTIL_FIGURES = {"4": RtilFigure("rtil_figs", "ILO", "dcgan", "rtil_dcgan", 30),
                "5": RtilFigure("rtil_figs_mgan", "mGANprior", "dcgan", "rtil_mgan_dcgan", 30),
                "4-stylegan2": RtilFigure("rtil_figs_stylegan2", "ILO", "stylegan2_small", "rtil_stylegan2_small", 35),
                "5-pggan": RtilFigure("rtil_figs_mgan_pggan", "mGANprior", "pggan", "rtil_mgan_pggan", 72,
                                      {"rtil_mgan_pggan": ("model.module.rtil.layers=[2]",)})}


def _oracle_bound_row(exp: Experiment, cfg, prior, method: str, x: torch.Tensor, indices, label: str) -> dict:
    """The method's output space fitted to the ground truth (an oracle), per image the best of: G's range
    (z only) and ILO's layer spaces (evaluation.oracle_bound), or mGANprior run with A = I on the clean image."""
    from evaluation.metrics import psnr
    from evaluation.oracle_bound import RANGE, fit, output_spaces
    from solvers.initialization import RandomInit

    start = time.perf_counter()
    spaces = output_spaces(cfg.solver, prior.num_layers) if method == "ILO" else {RANGE: {"kind": "init", "radius": None}}
    with torch.enable_grad():
        fits = fit(prior, x, indices, spaces, RandomInit(), 1, max(1, round(1000 * exp.args.step_fraction)), 0.05)
    if method != "ILO":
        identity = exp.config(f"prior.checkpoint={cfg.prior.checkpoint}", "operator=denoising", "operator.noise_std=0")
        fits[method] = exp.solve(identity, x, indices, prior=prior)[0]
    mse = torch.stack([(f.clamp(0, 1) - x).pow(2).flatten(1).mean(1) for f in fits.values()])
    x_hat = torch.stack(list(fits.values()))[mse.argmin(0), torch.arange(len(x))]
    per_space = {name: mean_ci95(psnr(f, x).tolist()) for name, f in fits.items()}
    point = {"operator": "oracle", "ratio": None, "prior": cfg.prior.checkpoint, "axis": ["operator"],
             "oracle_spaces": f"best of {', '.join(fits)} ({RANGE}: z only)",
             **{f"psnr_{name}_{stat}": v for name, pair in per_space.items() for stat, v in zip(("mean", "ci95"), pair)}}
    error = (x_hat.clamp(0, 1) - x).pow(2).flatten(1).sum(1)
    return exp.image_row(label, point, x_hat, x, error, (time.perf_counter() - start) / len(x))


def _prior_quality(exp: Experiment, paths: dict[str, str]) -> dict[str, dict]:
    """FD / IS of each prior (features of the project's digit classifier, evaluation/sample_quality.py,
    not Inception-v3) on seeded samples against the default data's train digits; a grid of samples."""
    from common.instantiate import instantiate
    from evaluation.sample_quality import ClassifierRecipe, sample_quality_for
    from priors.io import load_prior

    datamodule = instantiate(compose_experiment(exp.preset).data)
    datamodule.prepare_data()
    quick = exp.args.quick
    recipe = ClassifierRecipe(steps=20) if quick else ClassifierRecipe()
    metric, record = sample_quality_for(datamodule, recipe, max_real=200 if quick else None, verbose=not quick)
    samples = 64 if quick else 2000
    scores, panels = {}, {}
    for model, path in paths.items():
        prior = load_prior(path).eval().requires_grad_(False)
        scores[model] = metric.of_prior(prior, samples, seed=0) | {"prior": path, "classifier_test_accuracy": record["test_accuracy"]}
        panels[model] = (prior, scores[model]["fd"])
    out = exp.out_path().with_name(f"{exp.name}_samples.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(panels, out)
    print(f"saved {out}")  # save_grid itself is silent
    return scores


def point_keys(row: dict) -> tuple[str, ...]:
    """The keys naming a row's sweep point: its ``axis`` (``operator`` and ``ratio`` or ``m``)."""
    return tuple(row.get("axis") or ("operator", "ratio"))


def point(row: dict) -> tuple:
    """A row's sweep point: the values of its :func:`point_keys` (None for a table's row, e.g. PRILO table 3's)."""
    return tuple(row.get(k) for k in point_keys(row))


def paired_psnr(base_rows: list[dict], rows: list[dict]) -> list[dict]:
    """Per sweep point of ``rows`` (task and ratio, or operator and m), its PSNR minus that of the ``base_rows``
    point on the same images (mean ± 95% CI of the per-image differences, and on how many images it is higher)."""
    base = {point(r): r for r in base_rows}
    out = []
    for r in rows:
        b = base.get(point(r))
        if b is None or len(b["psnr_values"]) != len(r["psnr_values"]):
            raise UserInputError(f"no point {' '.join(map(str, point(r)))} with {len(r['psnr_values'])} images to "
                                 "pair with; compare runs of the same preset, axes and --images")
        if same_truths(b, r) is False:
            raise UserInputError(f"point {' '.join(map(str, point(r)))}: the runs solved different test images (their "
                                 "ground-truth fingerprints differ); compare runs on the same data and --images")
        diff = [a - c for a, c in zip(r["psnr_values"], b["psnr_values"])]
        mean, ci = mean_ci95(diff)
        out.append({**dict(zip(point_keys(r), point(r))), "psnr_difference_mean": mean, "psnr_difference_ci95": ci,
                    "better": sum(d > 0 for d in diff), "images": len(diff)})
    return out


def _paired_differences(exp: Experiment, vanilla: str, rtil: str) -> list[dict]:
    """Per task point, RTIL minus vanilla PSNR on the same images (mean ± 95% CI of the paired differences)."""
    rows = {model: [r for r in exp.rows if r["label"].startswith(f"{model}:") and r["operator"] != "oracle"]
            for model in (vanilla, rtil)}
    return [{"operator": d["operator"], "ratio": d["ratio"], "psnr_rtil_minus_vanilla_mean": d["psnr_difference_mean"],
             "psnr_rtil_minus_vanilla_ci95": d["psnr_difference_ci95"], "rtil_better": d["better"], "images": d["images"]}
            for d in paired_psnr(rows[vanilla], rows[rtil])]


def _prior_files(pairs: list[str]) -> dict[str, str]:
    """``--priors MODEL=FILE ...`` as model -> file, models among RTIL_FIGURES'."""
    models = {m for figure in RTIL_FIGURES.values() for m in figure.models}
    files = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    wrong = [p for p in pairs if "=" not in p or p.split("=", 1)[0] not in models]
    if wrong:
        raise UserInputError(f"--priors {' '.join(wrong)}: give MODEL=FILE with MODEL one of {', '.join(sorted(models))}")
    return files


def rtil_figs(args) -> Experiment:
    """Figures 4 (ILO) and 5 (mGANprior): each method on its vanilla and its RTIL prior, same data and budget."""
    from benchmarks.mganprior import ilo_radii

    files = _prior_files(args.priors or [])
    exp = None
    for figure in args.figures or list(RTIL_FIGURES):
        name, method, *models, epochs, train_overrides = RTIL_FIGURES[figure]
        exp = Experiment(name, args)
        sweep = experiment_sweep(name)
        cfg0 = exp.config()
        x, indices = exp.test_images(_data_choice(exp), cfg0, **_data_overrides(cfg0))
        operators = sweep["operator"][:1] if args.quick else sweep["operator"]
        paths = {model: files.get(model, preset) for model, preset in zip(models, sweep["prior.checkpoint"])}
        balls = method == "ILO" and any(stage.get("radius") for stage in cfg0.solver.schedule[1:])
        for model, path in paths.items():
            if args.quick and not Path(path).exists():
                raise UserInputError(f"--quick uses existing priors; {path} is missing (train it: python train.py model={model})")
            _train_prior(model, Path(path), args.train_epochs or epochs, *train_overrides.get(model, ()))
            extra = []
            if balls:  # the preset's radii are another prior's: scaled to this one's map norms
                r1, r2 = ilo_radii(exp.prior(path))
                extra = [f"solver.schedule.1.radius={r1:.1f}", f"solver.schedule.2.radius={r2:.1f}"]
            _task_sweep(exp, {method: extra}, operators, path, x, indices, prior_label=f"{model}: ")
            _oracle_bound_row(exp, exp.config(f"prior.checkpoint={path}", *extra), exp.prior(path), method, x, indices,
                              f"{model}: oracle bound")
        differences = _paired_differences(exp, *models)
        quality = _prior_quality(exp, paths)
        lines = [f"{method}: RTIL ({models[1]}) vs vanilla ({models[0]}), {len(x)} test images", "",
                 "| prior | FD (classifier features) | IS | oracle bound PSNR (dB): G's range (z only) | oracle bound: "
                 f"{method}'s output space | file |", "|---|---|---|---|---|---|"]
        for model, q in quality.items():
            bound = next(r for r in exp.rows if r["label"] == f"{model}: oracle bound")
            lines.append(f"| {model} | {q['fd']:.1f} | {q['is']:.2f} | {_pm(bound, 'psnr_range', '.2f')} | "
                         f"{_pm(bound, 'psnr', '.2f')} | {q['prior']} |")
        lines += ["", "| task | ratio | PSNR RTIL − vanilla (dB, paired) | images where RTIL is better |", "|---|---|---|---|"]
        lines += [f"| {d['operator']} | {d['ratio']} | {d['psnr_rtil_minus_vanilla_mean']:+.2f} ± "
                  f"{d['psnr_rtil_minus_vanilla_ci95']:.2f} | {d['rtil_better']}/{d['images']} |" for d in differences]
        table = _task_plots_and_table(exp, operators, "direction only (RTIL ≥ vanilla)")
        _finish(exp, "\n".join(lines) + "\n\n" + table, paired_differences=differences, prior_quality=quality)
    return exp


#: rtil_mgan_recipe: label -> (file stem, model, train.py overrides); the first row is the vanilla reference
MGAN_RECIPES = {
    "vanilla DCGAN (reference)": ("dcgan", "dcgan", []),
    "N 20, split 2, lambda 0.5 (the paper's N)": ("n20_split2", "rtil_mgan_dcgan", ["model.module.rtil.num_codes=20"]),
    "N 10, split 2, lambda 0.5": ("n10_split2", "rtil_mgan_dcgan", ["model.module.rtil.num_codes=10"]),
    "N 5, split 2, lambda 0.5": ("n5_split2", "rtil_mgan_dcgan", ["model.module.rtil.num_codes=5"]),
    "N 20, split 1, lambda 0.5": ("n20_split1", "rtil_mgan_dcgan", ["model.module.rtil.num_codes=20",
                                                                     "model.module.rtil.layers=[1]"]),
    "N 20, split 2, lambda 0.8": ("n20_split2_lambda0.8", "rtil_mgan_dcgan", ["model.module.rtil.num_codes=20",
                                                                               "model.module.rtil.lambda_=0.8"]),
}


def rtil_mgan_recipe(args) -> Experiment:
    """Which RTIL multi-code DCGAN recipe trains (figure 5's RTIL prior), chosen on the validation split only:
    each recipe trained ``--train-epochs`` on the embedded MNIST train digits, then scored by FD / IS of its
    samples and by its range-only oracle bound on ``--images`` validation digits. Rule: the lowest FD among
    the RTIL recipes (the vanilla DCGAN trained alike is the reference, not a candidate)."""
    from evaluation.oracle_bound import RANGE, fit
    from solvers.initialization import RandomInit

    exp = Experiment("rtil_mgan_recipe", args, preset="rtil_figs_mgan")  # the figure whose prior it picks
    x, indices = tuning_images("val", num_images=2 if args.quick else args.images or 32)
    folder = Path(tempfile.gettempdir()) / "rtil_mgan_recipe" if args.quick else ROOT / "outputs/trials/rtil_mgan_recipe"
    recipes = dict(list(MGAN_RECIPES.items())[:2]) if args.quick else MGAN_RECIPES
    quick = ["trainer.limit_train_batches=2", "model.module.prior.width=4"] if args.quick else []
    epochs = 1 if args.quick else args.train_epochs or 30
    paths = {}
    for label, (stem, model, overrides) in recipes.items():
        path = folder / f"{stem}_e{epochs}.pt"
        _train_prior(model, path, epochs, *overrides, *quick, *([f"hydra.run.dir={folder / stem}"] if args.quick else []))
        paths[label] = str(path)
        start = time.perf_counter()
        with torch.enable_grad():
            fitted = fit(exp.prior(str(path)), x, indices, {RANGE: {"kind": "init", "radius": None}}, RandomInit(), 1,
                         max(1, round(1000 * args.step_fraction)), 0.05)[RANGE]
        error = (fitted.clamp(0, 1) - x).pow(2).flatten(1).sum(1)
        exp.image_row(label, {"operator": "oracle", "ratio": None, "prior": str(path), "model": model,
                              "overrides": overrides, "split": "val"},
                      fitted, x, error, (time.perf_counter() - start) / len(x))
    quality = _prior_quality(exp, paths)
    candidates = [label for label, (_, model, _) in recipes.items() if model != "dcgan"]
    chosen = min(candidates, key=lambda label: quality[label]["fd"])
    lines = [f"RTIL multi-code DCGAN recipes, {epochs} epochs each; range oracle bound on {len(x)} validation "
             f"digits; rule: lowest FD among the RTIL recipes", "",
             "| recipe | FD (classifier features) | IS | oracle bound PSNR (dB): G's range | train.py overrides |",
             "|---|---|---|---|---|"]
    for row in exp.rows:
        q = quality[row["label"]]
        mark = " **(chosen)**" if row["label"] == chosen else ""
        lines.append(f"| {row['label']}{mark} | {q['fd']:.1f} | {q['is']:.2f} | {_pm(row, 'psnr', '.2f')} | "
                     f"{' '.join(row['overrides']) or '-'} |")
    return _finish(exp, "\n".join(lines), prior_quality=quality, chosen=chosen, split="val")


#: mgan_lr: mGANprior learning rates tried on validation digits (RTIL A.4: Adam at 0.1 for its PGGAN)
MGAN_LEARNING_RATES = (0.1, 0.03, 0.01, 0.003)


def mgan_lr(args) -> Experiment:
    """mGANprior's learning rate for a figure-5 preset (``--figures 5``, the DCGAN, or ``5-pggan``), chosen on the
    validation split only: each rate fits the clean image (A = I) of ``--images`` validation digits with the preset's
    solver and N codes; rule: the lowest measurement error (here the distance to the clean image itself, so no ground
    truth beyond the measurements)."""
    figures = [f for f in args.figures or ["5"] if RTIL_FIGURES[f].method == "mGANprior"]
    if len(figures) != 1:
        raise UserInputError(f"mgan_lr tunes one mGANprior figure at a time: give --figures with one of "
                             f"{', '.join(f for f, fig in RTIL_FIGURES.items() if fig.method == 'mGANprior')}")
    preset = RTIL_FIGURES[figures[0]].preset
    cfg0 = compose_experiment(preset, with_hydra=True)
    path = args.prior or cfg0.prior.checkpoint
    stem = preset.replace("rtil_figs_mgan", "mgan_lr")
    exp = Experiment(stem if path == cfg0.prior.checkpoint else f"{stem}_{Path(path).stem}", args, preset=preset)
    x, indices = tuning_images("val", cfg0.hydra.runtime.choices.data, num_images=2 if args.quick else args.images or 8,
                               **_data_overrides(cfg0))
    for lr in MGAN_LEARNING_RATES[:2] if args.quick else MGAN_LEARNING_RATES:
        cfg = exp.config(f"prior.checkpoint={path}", "operator=denoising", "operator.noise_std=0", f"solver.lr={lr}")
        x_hat, error, seconds = exp.solve(cfg, x, indices, prior=exp.prior(path))
        exp.image_row(f"lr {lr}", {"operator": "denoising, noise 0 (A = I)", "ratio": None, "lr": lr, "prior": path,
                                   "split": "val", "steps": int(cfg.solver.steps)}, x_hat, x, error, seconds)
    chosen = min(exp.rows, key=lambda r: r["measurement_error_mean"])["lr"]
    plot_curves({"mGANprior, A = I": {"x": [r["lr"] for r in exp.rows], "y": [r["psnr_mean"] for r in exp.rows],
                                      "yerr": [r["psnr_ci95"] for r in exp.rows]}},
                exp.out_path().with_name(f"{exp.name}.png"), "learning rate", "PSNR (dB)", "mgan_lr: validation, 95% CI",
                logx=True)
    lines = [f"mGANprior on {len(x)} validation digits, A = I, {exp.rows[0]['steps']} steps, prior {path}; "
             "rule: lowest measurement error", "", "| lr | measurement error | PSNR (dB) | SSIM |", "|---|---|---|---|"]
    lines += [f"| {r['lr']}{' **(chosen)**' if r['lr'] == chosen else ''} | {r['measurement_error_mean']:.3g} | "
              f"{_pm(r, 'psnr', '.2f')} | {_pm(r, 'ssim', '.3f')} |" for r in exp.rows]
    return _finish(exp, "\n".join(lines), chosen=chosen, split="val", preset=preset)


# -- entry point ----------------------------------------------------------------------------------------------

def _finish(exp: Experiment, table: str, **extra) -> Experiment:
    path = exp.save(complete=True, markdown=table, **extra)
    print(table)
    print(f"wall time {time.perf_counter() - exp.started:.0f} s; results {path}")
    return exp


SUBCOMMANDS = {"dpr_fig2": dpr_fig2, "prilo_fig3": prilo_fig3, "dpr_fig3": dpr_fig3, "prilo_table3": prilo_table3,
               "prilo_table1": prilo_table1, "ilo_small": ilo_small, "rtil_figs": rtil_figs,
               "rtil_mgan_recipe": rtil_mgan_recipe, "mgan_lr": mgan_lr, "ilo_l1_radius": ilo_l1_radius}

#: subcommand-specific options -> the subcommands that read them (any other would silently ignore the option)
OPTION_USERS = {"methods": ("ilo_small", "prilo_fig3"), "collect_only": ("prilo_table1", "dpr_fig2"),
                "axis": ("dpr_fig2", "prilo_fig3", "dpr_fig3"), "encoder": ("prilo_table3",), "inits": ("prilo_table3",),
                "priors": ("rtil_figs",), "figures": ("rtil_figs", "mgan_lr"), "train_epochs": ("rtil_figs", "rtil_mgan_recipe"),
                "first_image": ("prilo_fig3", "dpr_fig3", "ilo_small", "rtil_figs", "prilo_table3"),
                "dataset": ("prilo_table1",), "dcgan": ("ilo_small",), "out": ("prilo_table1",),
                "prior": ("prilo_fig3", "dpr_fig3", "prilo_table3", "prilo_table1", "ilo_small", "ilo_l1_radius", "mgan_lr")}


@exit_on_user_error
def main(argv=None) -> Experiment:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=list(SUBCOMMANDS))
    parser.add_argument("--images", type=int, default=None, help="test images (dpr_fig2: instances); default: the preset's")
    parser.add_argument("--first-image", type=int, default=0,
                        help="the first test image solved (default 0): a later run from image k extends an earlier "
                             "run's k images, joined with concat_results.py")
    parser.add_argument("--axis", nargs="+", default=None,
                        help="dpr_fig2, prilo_fig3, dpr_fig3: a subset of the preset's m/n or m values")
    parser.add_argument("--step-fraction", type=float, default=1.0, help="fraction of every configured step count")
    parser.add_argument("--prior", default=None, help="prior file (default: the preset's or the default data's VAE)")
    parser.add_argument("--encoder", default=None, help="prilo_table3: LI encoder file")
    parser.add_argument("--inits", nargs="+", choices=["mii", "li"], default=None, help="prilo_table3: initialisations")
    parser.add_argument("--priors", nargs="+", default=None, metavar="MODEL=FILE",
                        help="rtil_figs: prior files by model, e.g. dcgan=a.pt rtil_dcgan=b.pt (default: the presets'; "
                             "trained here when missing)")
    parser.add_argument("--figures", nargs="+", choices=list(RTIL_FIGURES), default=None,
                        help="rtil_figs: 4 (ILO, DCGAN), 5 (mGANprior, DCGAN), 4-stylegan2 (ILO, 32x32 StyleGAN2), "
                             "5-pggan (mGANprior, 32x32 PGGAN); default: all. mgan_lr: the one figure whose preset it "
                             "tunes, 5 (default) or 5-pggan")
    parser.add_argument("--dataset", choices=["mnist", "fmnist"], default="mnist", help="prilo_table1: the column")
    parser.add_argument("--dcgan", action="store_true", help="ilo_small: the 64x64 face DCGAN preset (ilo_small_dcgan)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="ilo_small: a subset of csgm, ilo, ilo_equal_compute, ilo_l1, csgm_starts (CSGM's steps "
                             "split over 4 starts, the lowest measurement error kept; run only when named); prilo_fig3: "
                             "of dpr, dpr_mii, prilo_mii, prilo_mii_paper, wf, prilo_mii_holdout (ours judged on 10%% held-out "
                             "measurements; run only when named); give a --tag unless the subset is the run to publish, so that "
                             "the full run's results stay")
    parser.add_argument("--train-epochs", type=int, default=None,
                        help="rtil_figs: epochs of each prior trained here (default: 30 for the DCGANs, 35 for the StyleGAN2s)")
    parser.add_argument("--out", default=None, help="prilo_table1: run folders (resumable)")
    parser.add_argument("--collect-only", action="store_true",
                        help="prilo_table1: tabulate the finished rows in the run folders, run nothing; dpr_fig2: print "
                             "the table of its results file (with --tag: that run's), run and write nothing")
    parser.add_argument("--override", nargs="*", default=[],
                        help="extra Hydra overrides for every point (refused for a key that a point or method sets)")
    parser.add_argument("--tag", default="", help="suffix of the results files, e.g. _lr0.003 for a run with --override "
                        "solver.lr=0.003, so that a variant does not replace the preset's results")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 images, 1%% of the steps, one point per curve")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.step_fraction = 2, 0.01
    if args.images is not None and args.images < 1:
        raise UserInputError(f"--images must be >= 1, got {args.images}")
    if args.first_image < 0:
        raise UserInputError(f"--first-image must be >= 0, got {args.first_image}")
    if not re.fullmatch(r"[A-Za-z0-9._-]*", args.tag):
        raise UserInputError(f"--tag {args.tag!r}: use letters, digits, '.', '_' or '-' (it becomes part of file names)")
    if not 0 < args.step_fraction:
        raise UserInputError(f"--step-fraction must be > 0, got {args.step_fraction}")
    for option, users in OPTION_USERS.items():
        if getattr(args, option) != parser.get_default(option) and args.experiment not in users:
            raise UserInputError(f"--{option.replace('_', '-')}: {args.experiment} does not read it (it would be ignored); "
                                 f"it is an option of {', '.join(users)}")
    torch.set_num_threads(args.threads)
    return SUBCOMMANDS[args.experiment](args)


if __name__ == "__main__":
    main()
