"""One results file from runs of one benchmarks/experiments.py sweep (or of PRILO table 3) on consecutive ranges of
test images, so that a run grows by solving only its new images:

    python benchmarks/experiments.py prilo_fig3 --images 128 --tag _first ...                  (images 0-127)
    python benchmarks/experiments.py prilo_fig3 --images 128 --first-image 128 --tag _next ... (images 128-255)
    python benchmarks/concat_results.py benchmarks/results/prilo_fig3_gaussian_first.json \\
        benchmarks/results/prilo_fig3_gaussian_next.json --out benchmarks/results/prilo_fig3_gaussian_256

writes OUT.json (a results file that paired_psnr.py and merge_results.py read), OUT.md and the sweep's plots, with the
rows one run on all the images would have had: measurements and starts are seeded by an image's index, so the parts
solve their images as one run would, up to the rounding of batched float32 kernels, which can differ with the batch
size and which the solver's steps carry on. The per-image PSNRs are joined; every other mean ± 95% CI is pooled
exactly from the parts' counts, means and CIs (a union's sum of squares is the parts' own plus their spread about the
joint mean). Measurement error and seconds per image are image-weighted means. The per-image ground-truth fingerprints
(``truths_per_image``) are joined, so OUT.json pairs with any run on the same images, one run or other parts; the
whole-row ``truths`` becomes the parts' joined with "+" (files from before per-image fingerprints pair only with
concatenations of the same parts). A fingerprint that one part lacks (its file is older) is left out of OUT.json,
so that old parts still join with new ones; OUT.json then pairs by its whole-row ``truths`` with joins of the same
older parts, however their newer images were split into parts (see ``joined_truths``). The parts must hold the same
rows (labels and points), have run with the same overrides and step fraction, and cover consecutive images (their
``first_image``; files from before it existed start at image 0). Anything else a part's file holds beside its rows
(e.g. rtil_figs' paired differences) is not carried over: recompute it from OUT.json (paired_psnr.py).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.experiments import OPTION_USERS, point_keys  # noqa: E402
from benchmarks.merge_results import files_and_out, load_payload, write_table_and_plots  # noqa: E402
from common.atomic import write_json  # noqa: E402
from common.errors import UserInputError, exit_on_user_error  # noqa: E402
from evaluation.report import t_quantile_975  # noqa: E402


def pooled_mean_ci95(parts: list[tuple[int, float, float]]) -> tuple[float, float]:
    """Mean and 95%-CI half-width (Student t, as evaluation.report.mean_ci95) of the union of samples given by their
    (count, mean, CI half-width): each part's sum of squares is recovered from its CI,
    s_i = ci_i sqrt(n_i) / t(n_i - 1)."""
    parts = [p for p in parts if p[0] > 0]
    n = sum(p[0] for p in parts)
    if n == 0 or any(not math.isfinite(m) for _, m, _ in parts):
        return math.nan, math.nan
    mean = sum(k * m for k, m, _ in parts) / n
    if n == 1:
        return mean, math.nan
    squares = 0.0
    for k, m, ci in parts:
        within = 0.0 if k == 1 else (k - 1) * (ci * math.sqrt(k) / t_quantile_975(k - 1)) ** 2
        squares += within + k * (m - mean) ** 2
    return mean, t_quantile_975(n - 1) * math.sqrt(squares / (n - 1)) / math.sqrt(n)


def _key(row: dict) -> tuple:
    return row["label"], tuple(row.get(k) for k in point_keys(row))


def joined_truths(parts: list[dict]) -> str:
    """The whole-row fingerprint of a join: the parts' own, joined with "+". Where some parts are older files without
    per-image fingerprints (the join then has none), each run of consecutive newer parts counts as one part,
    fingerprinted by its images' fingerprints: joins of the same older parts then pair (the same fingerprint) however
    their newer images were split into parts, and still not where any image differs."""
    if all("truths_per_image" in p for p in parts):
        return "+".join(p["truths"] for p in parts)
    groups = []
    for newer, run in itertools.groupby(parts, key=lambda p: "truths_per_image" in p):
        if newer:
            images = ",".join(t for p in run for t in p["truths_per_image"])
            groups.append("images-" + hashlib.sha256(images.encode()).hexdigest()[:16])
        else:
            groups.extend(p["truths"] for p in run)
    return "+".join(groups)


def concatenated_row(parts: list[dict]) -> dict:
    """One row from the same row of consecutive parts (in image order); refused where the parts disagree on anything
    but their images."""
    fingerprints = {"truths", "truths_per_image"}  # files from before them lack them: kept where every part has them
    keys = set(parts[0]) - fingerprints
    if any(set(p) - fingerprints != keys for p in parts):
        raise UserInputError(f"row {_key(parts[0])}: the parts' rows have different fields; concatenate runs of one "
                             "version of one subcommand")
    keys |= set.intersection(*(set(p) for p in parts)) & fingerprints
    if "psnr_values" not in keys:
        raise UserInputError(f"row {_key(parts[0])}: no per-image PSNR (psnr_values) to join; rerun the part")
    counts = [sum(math.isfinite(v) for v in p["psnr_values"]) for p in parts]  # a failed image counts nowhere
    images = [p["images"] for p in parts]
    out = {"images": sum(images), "psnr_values": [v for p in parts for v in p["psnr_values"]]}
    if "truths" in keys:  # older files have none
        out["truths"] = joined_truths(parts)
    if "truths_per_image" in keys:
        out["truths_per_image"] = [t for p in parts for t in p["truths_per_image"]]
    for key in ("seconds_per_image", "measurement_error_mean"):
        if key in keys:
            out[key] = sum(n * p[key] for n, p in zip(images, parts)) / sum(images)
    pooled = {key.removesuffix("_mean") for key in keys if key.endswith("_mean")} & {
        key.removesuffix("_ci95") for key in keys if key.endswith("_ci95")}
    for stat in pooled:
        out[f"{stat}_mean"], out[f"{stat}_ci95"] = pooled_mean_ci95(
            [(n, p[f"{stat}_mean"], p[f"{stat}_ci95"]) for n, p in zip(counts, parts)])
    for key in keys - set(out):  # the row's settings: the parts must agree
        differing = [p[key] for p in parts if p[key] != parts[0][key]]
        if differing:
            raise UserInputError(f"row {_key(parts[0])}: the parts differ in {key!r} ({parts[0][key]!r} vs "
                                 f"{differing[0]!r}); concatenate runs of the same settings")
        out[key] = parts[0][key]
    return {k: out[k] for k in parts[0] if k in out}  # the parts' field order


def concatenated(paths: list[str]) -> dict:
    """The payload of one run over the parts' images (see the module's text); refused unless they fit together."""
    payloads = sorted(((load_payload(p), p) for p in paths), key=lambda pp: pp[0].get("first_image", 0))
    for field in ("overrides", "step_fraction", "quick"):
        values = {repr(p.get(field)) for p, _ in payloads}
        if len(values) > 1:
            raise UserInputError(f"the files ran with different {field} (" + "; ".join(
                f"{Path(path).name}: {p.get(field)}" for p, path in payloads) + "); concatenate parts of one run")
    if len({p["argv"][0] if p.get("argv") else None for p, _ in payloads}) > 1:
        raise UserInputError("the files come from different subcommands (" + ", ".join(
            f"{Path(path).name}: {p.get('argv', ['?'])[0]}" for p, path in payloads)
                             + "); concatenate parts of one run")
    rows_by_file = []
    for payload, path in payloads:
        rows = {_key(r): r for r in payload["rows"]}
        if len(rows) != len(payload["rows"]):
            raise UserInputError(f"{path}: several rows of one label at one point; concatenate runs of experiments.py")
        if any("axis" not in r and "ratio" not in r and "ablation" not in r for r in payload["rows"]):
            raise UserInputError(f"{path}: rows of no sweep and no PRILO table 3 row; concatenate runs of "
                                 f"{', '.join(OPTION_USERS['first_image'])}, or rerun with --images N")
        counts = {r["images"] for r in payload["rows"]}
        if len(counts) > 1:
            raise UserInputError(f"{path}: rows on different numbers of images {sorted(counts)}; not one run's file")
        rows_by_file.append((rows, payload.get("first_image", 0), counts.pop(), path))
    first_keys = list(rows_by_file[0][0])
    for rows, _, _, path in rows_by_file[1:]:
        if set(rows) != set(first_keys):
            missing = set(first_keys) ^ set(rows)
            raise UserInputError(f"{Path(path).name} and {Path(rows_by_file[0][3]).name} hold different rows (e.g. "
                                 f"{sorted(missing, key=str)[0]}); concatenate runs of the same methods and points")
    for (_, first, images, path), (_, following, _, next_path) in zip(rows_by_file, rows_by_file[1:]):
        if first + images != following:
            raise UserInputError(f"{Path(path).name} holds images {first}-{first + images - 1} and "
                                 f"{Path(next_path).name} starts at image {following}: not consecutive; run the gap "
                                 f"with --first-image {first + images}, or drop an overlapping part")
    head = payloads[0][0]
    rows = [concatenated_row([rows[key] for rows, *_ in rows_by_file]) for key in first_keys]
    return {"experiment": head.get("experiment"), "concatenated_from": [path for _, path in payloads],
            "argv": head.get("argv"), "images": rows[0]["images"], "first_image": rows_by_file[0][1],
            "step_fraction": head.get("step_fraction"), "overrides": head.get("overrides"), "quick": head.get("quick"),
            "complete": True, "wall_seconds": sum(p.get("wall_seconds", math.nan) for p, _ in payloads),
            "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}


@exit_on_user_error
def main(argv=None) -> dict:
    files, out, paper = files_and_out(argv, __doc__, "concatenate")
    payload = concatenated(files)
    payload["markdown"] = write_table_and_plots(payload["rows"], out, paper)
    target = write_json(out.with_name(f"{out.name}.json"), payload)
    print(f"saved {target} ({payload['images']} images from image {payload['first_image']} on)")
    return payload


if __name__ == "__main__":
    main()
