"""Paired per-image PSNR differences between two results files of benchmarks/experiments.py, e.g. each prior of
RTIL figure 5 at the mGANprior learning rate chosen for it on validation (vanilla 0.01, RTIL 0.003):

    python benchmarks/paired_psnr.py benchmarks/results/rtil_figs_mgan.json "dcgan: mGANprior" \\
        benchmarks/results/rtil_figs_mgan_lr0.003.json "rtil_mgan_dcgan: mGANprior"

prints, per sweep point (task and ratio, or operator and m for PRILO / DPR figure 3), PSNR(second) − PSNR(first) on
the same test images (mean ± 95% CI, and on how many images
the second is higher). Both runs must share the preset's task axes and ``--images`` (rows keep ``psnr_values``), and
the same test images where both files record their fingerprint (``truths``; files written before it are unchecked).
``--plot PREFIX`` also draws both runs' PSNR (mean ± 95% CI) against the task axis, one ``PREFIX_<task>.png`` per task,
e.g. two halves of one comparison run as separate processes (``experiments.py ilo_small --methods ... --tag ...``).
Rows of a table (PRILO table 3: one row per label, no sweep axis) pair as one point, e.g. ``python
benchmarks/paired_psnr.py benchmarks/results/prilo_table3.json mii/full benchmarks/results/prilo_table3.json mii/only_a``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import plot_curves  # noqa: E402
from benchmarks.experiments import TASK_AXES, Experiment, paired_psnr, point, point_keys  # noqa: E402
from common.errors import UserInputError, exit_on_user_error  # noqa: E402


def labelled_rows(path: str, label: str) -> list[dict]:
    try:
        rows = json.loads(Path(path).read_text())["rows"]
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"{path}: not a results file of benchmarks/experiments.py ({err})") from None
    chosen = [r for r in rows if r.get("label") == label and r.get("operator") != "oracle"]
    if not chosen:
        labels = sorted({r.get("label") for r in rows if r.get("operator") != "oracle"})
        raise UserInputError(f"{path} has no rows labelled {label!r}; its labels: {', '.join(map(str, labels))}")
    if not all(k in r for r in chosen for k in point_keys(r)):  # a table's row (PRILO table 3): no sweep axis
        if len(chosen) > 1:
            raise UserInputError(f"{path} has {len(chosen)} rows labelled {label!r} and no sweep axis to tell them apart")
        return [{**chosen[0], "axis": ["point"], "point": "all images"}]
    return chosen


def plot_pair(runs: dict[str, list[dict]], prefix: Path) -> list[Path]:
    """Per task, each run's PSNR mean ± 95% CI against the task's axis (one curve per key of ``runs``)."""
    paths = []
    for op in dict.fromkeys(r["operator"] for rows in runs.values() for r in rows):
        key = point_keys(next(r for rows in runs.values() for r in rows if r["operator"] == op))[-1]
        curves = {name: next(iter(Experiment.curves([r for r in rows if r["operator"] == op], key, "psnr").values()))
                  for name, rows in runs.items()}
        axis = TASK_AXES[op][2] if op in TASK_AXES else key
        paths.append(plot_curves(curves, prefix.with_name(f"{prefix.name}_{op}.png"), axis, "PSNR (dB)", f"{op}, 95% CI"))
    return paths


def _error(value) -> str:
    return "–" if value is None else f"{value:.2e}"


@exit_on_user_error
def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="results file of the reference")
    parser.add_argument("base_label", help="its rows' label, e.g. 'dcgan: mGANprior'")
    parser.add_argument("other", help="results file compared with it")
    parser.add_argument("other_label")
    parser.add_argument("--plot", metavar="PREFIX", default=None, help="also write PREFIX_<task>.png: both runs' PSNR curves")
    args = parser.parse_args(argv)
    base, other = labelled_rows(args.base, args.base_label), labelled_rows(args.other, args.other_label)
    differences = paired_psnr(base, other)
    if args.plot and "point" in other[0]:
        raise UserInputError("--plot draws PSNR against a sweep axis, and these rows are a table's (one point each): "
                             "leave --plot out")
    if args.plot:
        names = ((args.base_label, args.other_label) if args.base_label != args.other_label else
                 (f"{args.base_label} ({Path(args.base).stem})", f"{args.other_label} ({Path(args.other).stem})"))
        plot_pair(dict(zip(names, (base, other))), Path(args.plot))
    errors = {point(r): r.get("measurement_error_mean") for r in base}
    keys = point_keys(other[0])
    print(f"PSNR ({args.other_label}, {Path(args.other).name}) − PSNR ({args.base_label}, {Path(args.base).name}), "
          f"paired per image\n\n| {' | '.join('task' if k == 'operator' else k for k in keys)} | PSNR difference (dB) | "
          f"images where the second is better | mean measurement error, first / second |\n|{'---|' * (len(keys) + 3)}")
    for d, r in zip(differences, other):
        at = point(r)
        print(f"| {' | '.join(map(str, at))} | {d['psnr_difference_mean']:+.2f} ± {d['psnr_difference_ci95']:.2f} | "
              f"{d['better']}/{d['images']} | {_error(errors[at])} / {_error(r.get('measurement_error_mean'))} |")
    return differences


if __name__ == "__main__":
    main()
