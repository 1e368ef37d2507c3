"""PRILO's table 1 (Fourier phase retrieval, not oversampled, MNIST) as the project runs it: DPR, PRILO
and PRILO-MII, each PRILO by the paper's rules (solver=prilo_paper: x* = G(z_0*), R starts) and by
ours (solver=prilo: best iterate, negated start pairs, negation check) at the same number of starts;
PSNR/SSIM raw and oracle-aligned (evaluation.alignment), beside the prior's oracle bound
(evaluation.oracle_bound: the prior fitted to the ground truth in G's range and in PRILO's balls).

    python benchmarks/table1_mnist.py --prior outputs/priors/vae_mnist.pt --data-root $MDS --images 256

Every row is a plain ``python invert.py`` (or ``python -m evaluation.oracle_bound``) run of the first
``--images`` test images into ``--out/<row>`` (resumable: rerunning skips finished images); the
summaries are collected into benchmarks/results/table1_<data>.json and printed as a markdown table.
``--rows`` runs a subset; ``--collect`` only collects. Every row is summarised on the images all rows
have finished (``num_images``; ``finished``: the row's own count), so an interrupted table still
compares the same images.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save_results  # noqa: E402

#: conf/solver/prilo_paper.yaml's rules on any PRILO config: x* = G(z_0*), R latents, no negation, eq. 10's noise
PAPER_RULE = ("solver.select=final", "solver.two_start=false", "solver.negation_check=false",
              "solver.gradient_noise.eta=0.02", "solver.gradient_noise.gamma=0.55")


def table1_rows(prilo: str = "prilo") -> dict[str, tuple[str, list[str]]]:
    """Row -> (entry point, overrides) for a PRILO config (prilo, prilo_fmnist); the oracle row uses its
    output spaces (range, layer 1, layer 2); the paper-rule rows are ``prilo_paper`` or its rules on ``prilo``."""
    paper = ["solver=prilo_paper"] if prilo == "prilo" else [f"solver={prilo}", *PAPER_RULE]
    return {
        "oracle bound": ("evaluation.oracle_bound", [f"solver={prilo}", "init=mii"]),
        "DPR": ("invert.py", ["solver=dpr", "init=random"]),
        "PRILO-MII (paper rule)": ("invert.py", [*paper, "init=mii"]),
        "PRILO-MII (ours)": ("invert.py", [f"solver={prilo}", "init=mii"]),
        "PRILO (paper rule)": ("invert.py", [*paper, "init=random"]),
        "PRILO (ours)": ("invert.py", [f"solver={prilo}", "init=random"]),
        # classical baselines (no prior): Fienup's non-negativity as in the paper, and our default [0, 1] box
        "ER (nonneg)": ("invert.py", ["solver=er", "solver.upper_bound=null"]),
        "HIO (nonneg)": ("invert.py", ["solver=hio", "solver.upper_bound=null"]),
        "ER": ("invert.py", ["solver=er"]),
        "HIO": ("invert.py", ["solver=hio"]),
    }


ROWS = table1_rows()
#: PRILO table 1 / appendix E (1024 test images, four restarts): PSNR, SSIM; its ER/HIO use non-negativity
PAPER_TABLE1 = {
    "mnist": {"ER (nonneg)": (15.1826, 0.5504), "HIO (nonneg)": (23.4627, 0.5274), "DPR": (23.9871, 0.9005),
              "PRILO (paper rule)": (42.7584, 0.9843), "PRILO-MII (paper rule)": (43.9541, 0.9949)},
    "fmnist": {"ER (nonneg)": (12.7002, 0.3971), "HIO (nonneg)": (12.9530, 0.4019), "DPR": (18.8657, 0.6846),
               "PRILO (paper rule)": (20.2087, 0.7133), "PRILO-MII (paper rule)": (21.4836, 0.7560)},
}
KEYS = ["psnr", "ssim", "psnr_aligned", "ssim_aligned", "measurement_error",
        "psnr_range", "psnr_layer1", "psnr_layer2", "ssim_range", "ssim_layer1", "ssim_layer2"]


def folder(row: str) -> str:
    return row.lower().replace(" ", "_").replace("(", "").replace(")", "")


def run(row: str, args) -> None:
    entry, overrides = ROWS[row]
    command = [sys.executable, *(["-m", entry] if not entry.endswith(".py") else [str(ROOT / entry)]),
               *overrides, f"prior.checkpoint={args.prior}", f"data={args.data}", f"num_images={args.images}",
               f"restarts={args.restarts}", f"batch_size={args.batch_size}", f"seed={args.seed}",
               f"hydra.run.dir={Path(args.out) / folder(row)}", "logger=csv", "trainer.enable_progress_bar=false"]
    if args.data_root:
        command.append(f"data.root={args.data_root}")
    if args.devices > 1 and entry == "invert.py":  # images split over processes; results do not change
        command += [f"trainer.devices={args.devices}", "trainer.strategy=ddp_spawn", "trainer.accelerator=cpu"]
    print(f"== {row}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "WANDB_MODE": "offline"})


def image_rows(run_dir: Path) -> dict[int, dict]:
    """Per finished image, its report row: from metrics.csv, or for an unfinished invert.py run from its parts."""
    from evaluation.report import read_metrics_csv
    from lightning_modules.inversion import read_parts

    if (run_dir / "metrics.csv").is_file():
        return {r["index"]: r for r in read_metrics_csv(run_dir / "metrics.csv")}
    done = read_parts(run_dir) if (run_dir / "parts").is_dir() else {}
    return {i: r["row"] for i, r in done.items()}


def collect(args) -> dict:
    return collect_rows(Path(args.out), ROWS, PAPER_TABLE1["mnist"])


def collect_rows(out: Path, rows: dict, paper: dict) -> dict:
    """Every finished row under ``out`` summarised on the images that all of them have finished (the same images)."""
    from evaluation.report import summarize

    per_row = {row: image_rows(out / folder(row)) for row in rows}
    per_row = {row: r for row, r in per_row.items() if r}
    common = sorted(set.intersection(*(set(r) for r in per_row.values()))) if per_row else []
    collected = {}
    for row, images in per_row.items():
        s = summarize([images[i] for i in common], row, {}, [k for k in KEYS if k in images[common[0]]])
        collected[row] = {"num_images": s["num_images"], "num_failed": s["num_failed"], "finished": len(images),
                          "seconds": s["seconds"], "overrides": rows[row][1],
                          **{f"{k}_{m}": s.get(f"{k}_{m}") for k in KEYS for m in ("mean", "ci95")}}
        if row in paper:
            collected[row]["paper_psnr"], collected[row]["paper_ssim"] = paper[row]
        bound = per_row.get("oracle bound")
        collected[row]["per_image"] = per_image_facts(
            [images[i] for i in common], [bound[i] for i in common] if bound and row != "oracle bound" else None)
    return collected


def per_image_facts(images: list[dict], bound: list[dict] | None) -> dict:
    """Counts the text of docs/RESULTS.md quotes: per image raw vs aligned PSNR, exact recoveries (aligned
    PSNR at the 100 dB cap), images above the oracle bound's range / layer-2 fit, and range fits >= 40 dB."""
    def values(rows, key):
        return np.array([float(r[key]) for r in rows if r.get(key) not in (None, "")])

    facts = {}
    if images and images[0].get("psnr_range") not in (None, ""):
        facts["range_fit_at_least_40db"] = int((values(images, "psnr_range") >= 40).sum())
    if images and images[0].get("psnr_aligned") not in (None, ""):
        raw, aligned = values(images, "psnr"), values(images, "psnr_aligned")
        facts.update(raw_within_2db_of_aligned=int((raw >= aligned - 2).sum()), psnr_median=float(np.median(raw)),
                     psnr_aligned_median=float(np.median(aligned)), aligned_at_cap=int((aligned >= 99.9).sum()),
                     aligned_below_20db=int((aligned < 20).sum()))
        if bound is not None:
            for space in ("range", "layer2"):
                facts[f"aligned_above_{space}_fit"] = int((aligned > values(bound, f"psnr_{space}") + 0.1).sum())
    return facts


def markdown(rows: dict) -> str:
    def pm(r, k, fmt):
        m, c = r.get(f"{k}_mean"), r.get(f"{k}_ci95")
        return "–" if m is None else f"{m:{fmt}} ± {c:{fmt}}"

    lines = ["| method | n | PSNR (dB) | SSIM | PSNR aligned (oracle) | SSIM aligned (oracle) | paper PSNR / SSIM |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        paper = f"{r['paper_psnr']:.2f} / {r['paper_ssim']:.4f}" if "paper_psnr" in r else "–"
        if name == "oracle bound":
            lines.append(f"| oracle bound: G's range (z_0 only) | {r['num_images']} | {pm(r, 'psnr_range', '.2f')} | "
                         f"{pm(r, 'ssim_range', '.4f')} | | | |")
            for space in ("layer1", "layer2"):
                lines.append(f"| oracle bound: {space} ball around the range fit | {r['num_images']} | "
                             f"{pm(r, f'psnr_{space}', '.2f')} | {pm(r, f'ssim_{space}', '.4f')} | | | |")
            continue
        n = f"{r['num_images']} ({r['num_failed']})"
        lines.append(f"| {name} | {n} | {pm(r, 'psnr', '.2f')} | "
                     f"{pm(r, 'ssim', '.4f')} | {pm(r, 'psnr_aligned', '.2f')} | {pm(r, 'ssim_aligned', '.4f')} | {paper} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist.pt")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--data-root", default=None, help="data.root for datasets read from disk (e.g. mnist)")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--restarts", type=int, default=4, help="starts per image, the same for every row")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--devices", type=int, default=1, help="processes per invert.py row (DDP on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/table1")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--collect", action="store_true", help="only collect finished rows")
    args = parser.parse_args(argv)
    if not args.collect:
        for row in args.rows:
            run(row, args)
    rows = collect(args)
    table = markdown(rows)
    print(table)
    save_results(f"table1_{args.data}", {"prior": args.prior, "data": args.data, "images": args.images,
                                         "restarts": args.restarts, "split": "test", "seed": args.seed,
                                         "operator": "fourier_pr (not oversampled, ortho)",
                                         "selection": "lowest measurement error per image (oracle bound: image error)",
                                         "rows": rows, "markdown": table})
    return rows


if __name__ == "__main__":
    main()
