"""One table and one figure per task from several results files of benchmarks/experiments.py that ran on the
same test images, e.g. the halves of one comparison run as separate processes (``--methods ... --tag ...``):

    python benchmarks/merge_results.py benchmarks/results/prilo_fig3_gaussian_mnist.json \\
        benchmarks/results/prilo_fig3_gaussian_mnist_paper_rule.json --out benchmarks/results/prilo_fig3_gaussian_mnist_all

writes OUT.md (every file's rows, point by point in the first file's order, then the files' order) and the
subcommand's plots of all of them: ``OUT_<operator>_<psnr|ssim>.png`` for measurement sweeps (PRILO / DPR figure 3),
``OUT_<task>.png`` for task sweeps (ILO, RTIL). A label that several files use is suffixed with its file's name.
Nothing is recomputed: the rows are the files' own (mean ± 95% CI over the images). Files must hold the same number of
test images from the same data (as their ``--override data=`` says) and, where every file records it, the same
fingerprints of the ground truths (``truths_per_image``, else ``truths``: older files have neither).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.experiments import (TASK_AXES, point, point_keys, same_truths, sweep_plots, sweep_table,  # noqa: E402
                                   table3_plots, table3_table, task_plots, task_table)
from common.errors import UserInputError, exit_on_user_error  # noqa: E402


def load_payload(path: str) -> dict:
    try:
        payload = json.loads(Path(path).read_text())
        rows = payload["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserInputError(f"{path}: not a results file of benchmarks/experiments.py ({err})") from None
    if not isinstance(rows, list) or not rows:
        raise UserInputError(f"{path}: a results file without rows; give a finished run's file")
    if not payload.get("complete", False):
        raise UserInputError(f"{path}: an unfinished run (complete: false); give finished runs only")
    return payload


def _data(payload: dict) -> str:
    """The data its test images came from, as far as the file says: its ``--override data=D``, else the preset's."""
    return next((o.split("=", 1)[1] for o in payload.get("overrides", []) if o.startswith("data=")), "the preset's")


def merged_rows(files: list[str]) -> list[dict]:
    """Every file's rows, labels made unique, ordered by point (first file's order) and then by file; refused
    unless every file sweeps the same kind of point, on the same number of images of the same data, and (where every
    file records them) the same ground-truth fingerprints."""
    payloads = {path: load_payload(path) for path in files}
    data = {path: _data(payload) for path, payload in payloads.items()}
    if len(set(data.values())) > 1:
        raise UserInputError("the files' test images come from different data (" + "; ".join(
            f"{Path(p).name}: {d}" for p, d in data.items()) + "); merge runs on the same images")
    runs = {path: payload["rows"] for path, payload in payloads.items()}
    first, *others = runs
    for path in others:
        if any(same_truths(a, b) is False for a in runs[first] for b in runs[path]):  # older files have none: unchecked
            raise UserInputError(f"the files' test images differ ({Path(first).name} and {Path(path).name} have other "
                                 "ground-truth fingerprints); merge runs on the same images")
    kinds = {path: {point_keys(r) for r in rows if r.get("operator") != "oracle"} for path, rows in runs.items()}
    if len({frozenset(k) for k in kinds.values()}) > 1:
        raise UserInputError("the files sweep different points (" + "; ".join(
            f"{Path(p).name}: {', '.join('/'.join(k) for k in sorted(v))}" for p, v in kinds.items()) + "); merge runs of one subcommand")
    images = {path: {r["images"] for r in rows} for path, rows in runs.items()}
    if len(set().union(*images.values())) > 1:
        raise UserInputError("the files ran on different numbers of test images (" + "; ".join(
            f"{Path(p).name}: {sorted(v)}" for p, v in images.items()) + "); merge runs on the same images")
    owners: dict[str, set[str]] = {}
    for path, rows in runs.items():
        for r in rows:
            owners.setdefault(r["label"], set()).add(path)
    out = []
    for path, rows in runs.items():
        out += [{**r, "label": f"{r['label']} ({Path(path).stem})" if len(owners[r["label"]]) > 1 else r["label"]}
                for r in rows]
    order = {p: i for i, p in enumerate(dict.fromkeys(point(r) for r in out))}
    return sorted(out, key=lambda r: order[point(r)])  # stable: within a point, the files' order


def files_and_out(argv, description: str, verb: str) -> tuple[list[str], Path, str]:
    """(results files, OUT prefix, paper column text) of a command line that joins results files (this script,
    concat_results.py); refused: fewer than two files, or an OUT whose OUT.json exists (a results file is never
    replaced, nor its plots)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="results files (benchmarks/results/<name>.json), at least two")
    parser.add_argument("--out", required=True,
                        help="prefix of what is written: OUT.md, OUT_*.png (concat_results.py: also OUT.json)")
    parser.add_argument("--paper", default="figure only", help="the paper column's text")
    args = parser.parse_args(argv)
    if len(args.files) < 2:
        raise UserInputError(f"give at least two results files to {verb}")
    out = Path(args.out)
    if out.with_name(f"{out.name}.json").exists():  # e.g. an input's own name
        raise UserInputError(f"--out {args.out}: {out.name}.json exists (a results file; it and its plots OUT_*.png "
                             "are not replaced); choose another prefix")
    return args.files, out, args.paper


@exit_on_user_error
def main(argv=None) -> str:
    files, out, paper = files_and_out(argv, __doc__, "merge")
    return write_table_and_plots(merged_rows(files), out, paper)


def sweep_kind(rows: list[dict]) -> str:
    """What results rows hold: ``table3`` (PRILO table 3's rows), ``measurement`` (a sweep over m: PRILO / DPR
    figure 3) or ``task`` (a sweep over tasks' ratios: ILO section 4, the RTIL figures); refused otherwise."""
    if any(r.get("split") == "val" for r in rows):
        raise UserInputError("these are tuning rows on the validation split (e.g. ilo_l1_radius, mgan_lr); their own "
                             "benchmarks/experiments.py subcommand tabulates and plots them")
    if all("ablation" in r for r in rows):
        return "table3"
    swept = [r for r in rows if r.get("operator") != "oracle"]
    if swept and all("operator" in r for r in swept):
        if all("m" in point_keys(r) for r in swept):
            return "measurement"
        if all(r["operator"] in TASK_AXES for r in swept):
            return "task"
    raise UserInputError("these rows are neither a sweep (over m or over a task's ratio) nor PRILO table 3's; "
                         "their own benchmarks/experiments.py subcommand tabulates and plots them")


def write_plots(rows: list[dict], out: Path) -> str:
    """The sweep's plots under the prefix OUT (``OUT_<operator>_<psnr|ssim>.png`` against m, ``OUT_<init>.png`` for
    PRILO table 3's rows, else ``OUT_<task>.png``); returns the rows' :func:`sweep_kind`."""
    kind = sweep_kind(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "table3":
        table3_plots(rows, out)
    elif kind == "measurement":
        sweep_plots(rows, out, f"{out.name}: {{operator}}, {rows[0]['images']} test images, 95% CI")
    else:
        task_plots(rows, out)
    return kind


def write_table_and_plots(rows: list[dict], out: Path, paper: str) -> str:
    """OUT.md and the sweep's plots (:func:`write_plots`)."""
    kind = write_plots(rows, out)
    table = {"table3": table3_table, "measurement": lambda r: sweep_table(r, paper),
             "task": lambda r: task_table(r, paper)}[kind](rows)
    markdown = out.with_name(f"{out.name}.md")
    markdown.write_text(table + "\n")
    print(table)
    print(f"saved {markdown}")
    return table


if __name__ == "__main__":
    main()
