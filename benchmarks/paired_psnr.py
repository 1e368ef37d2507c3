"""Paired per-image PSNR differences between two results files of benchmarks/experiments.py, e.g. each prior of
RTIL figure 5 at the mGANprior learning rate chosen for it on validation (vanilla 0.01, RTIL 0.003):

    python benchmarks/paired_psnr.py benchmarks/results/rtil_figs_mgan.json "dcgan: mGANprior" \\
        benchmarks/results/rtil_figs_mgan_lr0.003.json "rtil_mgan_dcgan: mGANprior"

prints, per sweep point (task and ratio, or operator and m for PRILO / DPR figure 3), PSNR(second) − PSNR(first) on
the same test images (mean ± 95% CI, and on how many images
the second is higher). Both runs must share the preset's task axes and ``--images`` (rows keep ``psnr_values``), and
the same test images where both files record their fingerprints (``truths_per_image``, else the whole-row ``truths``;
files written before them are unchecked).
``--plot PREFIX`` also draws both runs' PSNR (mean ± 95% CI) against the task axis, one ``PREFIX_<task>.png`` per task,
e.g. two halves of one comparison run as separate processes (``experiments.py ilo_small --methods ... --tag ...``).
Rows of a table (PRILO table 3: one row per label, no sweep axis) pair as one point, e.g. ``python
benchmarks/paired_psnr.py benchmarks/results/prilo_table3.json mii/full benchmarks/results/prilo_table3.json mii/only_a``.
``--common-images`` pairs runs on different image ranges on the images both solved (their ``first_image`` and
``--images``; measurements and starts are seeded per image, so an image is solved alike in either run, up to the
rounding of batched float32 kernels); a run cut to fewer images keeps only PSNR (the file has no other per-image values), so its measurement error is "–"."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import plot_curves  # noqa: E402
from benchmarks.experiments import TASK_AXES, Experiment, paired_psnr, point, point_keys  # noqa: E402
from common.errors import UserInputError, exit_on_user_error  # noqa: E402
from evaluation.report import mean_ci95  # noqa: E402


def labelled_rows(path: str, label: str) -> list[dict]:
    """The file's rows of ``label``, each with the file's ``first_image`` (0 for files from before it existed)."""
    try:
        payload = json.loads(Path(path).read_text())
        rows = [{"first_image": payload.get("first_image", 0), **r} for r in payload["rows"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
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


def on_common_images(base: list[dict], other: list[dict]) -> tuple[list[dict], list[dict], range]:
    """Both runs' rows cut to the test images both solved (their ranges first_image .. first_image + images - 1),
    with the PSNR mean ± CI of the cut; a cut row keeps no other statistic and no whole-row fingerprint (they
    describe all its images), its per-image fingerprints are cut with it."""
    spans = [range(rows[0]["first_image"], rows[0]["first_image"] + rows[0]["images"]) for rows in (base, other)]
    common = range(max(s.start for s in spans), min(s.stop for s in spans))
    if not common:
        raise UserInputError(f"the runs share no test image (images {spans[0].start}-{spans[0].stop - 1} and "
                             f"{spans[1].start}-{spans[1].stop - 1}); pair runs whose images overlap")

    def cut(rows: list[dict], span: range) -> list[dict]:
        if span == common:
            return rows
        at = slice(common.start - span.start, common.stop - span.start)
        out = []
        for r in rows:
            kept = {k: v for k, v in r.items() if not k.endswith(("_mean", "_ci95")) and k != "truths"}
            kept.update(images=len(common), first_image=common.start, psnr_values=r["psnr_values"][at])
            kept["psnr_mean"], kept["psnr_ci95"] = mean_ci95(kept["psnr_values"])
            if "truths_per_image" in r:
                kept["truths_per_image"] = r["truths_per_image"][at]
            out.append(kept)
        return out

    return cut(base, spans[0]), cut(other, spans[1]), common


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
    parser.add_argument("--common-images", action="store_true",
                        help="pair on the test images both runs solved (e.g. a 16-image run with the first 16 of a "
                             "64-image one, or a --first-image part with the run it grows), not only on equal runs")
    args = parser.parse_args(argv)
    base, other = labelled_rows(args.base, args.base_label), labelled_rows(args.other, args.other_label)
    if args.common_images:
        base, other, common = on_common_images(base, other)
        print(f"on test images {common.start}-{common.stop - 1}, the images both runs solved")
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
