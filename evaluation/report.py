"""Results reports of an evaluation run: metrics.csv, summary.json, summary.md, grid.png.

Every file is written atomically (:mod:`common.atomic`),
so an interrupted run leaves either the previous file or the complete new one. Metrics
may be missing (file-input mode has no ground truth): they are NaN in memory, empty in
the CSV and ``null`` in the JSON.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common.atomic import atomic_open, write_json, write_text

COLUMNS = ["index", "method", "psnr", "ssim", "lpips", "measurement_error", "seconds", "status"]
METRIC_COLUMNS = ["psnr", "ssim", "lpips", "measurement_error"]
#: oracle metrics (ground truth used, labelled as such) written after the raw ones where rows carry them:
#: PSNR/SSIM after the alignment to the trivial ambiguities (evaluation.alignment)
ORACLE_COLUMNS = ["psnr_aligned", "ssim_aligned"]
_FLOAT_COLUMNS = METRIC_COLUMNS + ORACLE_COLUMNS + ["seconds"]
GRID_PADDING = 2


# -- statistics --------------------------------------------------------------------------
def _t_two_sided_coverage(t: float, dof: int) -> float:
    """P(|T| < t) for Student's t with integer ``dof`` (Abramowitz & Stegun 26.7.3/4)."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 1:
        term, total = math.cos(theta), 0.0
        for k in range(1, (dof - 1) // 2 + 1):  # cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ...
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + math.sin(theta) * total) if dof > 1 else 2 * theta / math.pi
    term, total = 1.0, 0.0
    for k in range(1, dof // 2 + 1):  # 1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ...
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


def t_quantile_975(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom (bisection)."""
    lo, hi = 0.0, 20.0 if dof > 1 else 100.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_two_sided_coverage(mid, dof) < 0.95 else (lo, mid)
    return (lo + hi) / 2


def mean_ci95(values: Iterable[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval, t_{0.975, n-1} * s / sqrt(n).

    Student t with the sample standard deviation s (ddof 1); NaN values (failed or
    missing) are ignored. No finite value: (nan, nan); one value: (value, nan).
    """
    v = np.asarray([_as_float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), math.nan
    return float(v.mean()), t_quantile_975(v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)


def _json_ready(value):
    """NaN/Inf -> None, tensors and numpy scalars -> Python numbers, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return _json_ready(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# -- metrics.csv -------------------------------------------------------------------------
def _as_float(value) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    return float(value)


def _normalise_rows(rows: Sequence[Mapping], method: str, columns: list[str]) -> list[dict]:
    out, seen = [], set()
    for row in rows:
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"report rows have unknown columns {sorted(unknown)}; pass them in extra_columns")
        if "index" not in row:
            raise ValueError("every report row needs an 'index'")
        r = {c: row.get(c) for c in columns}
        r["index"] = int(r["index"])
        if r["index"] in seen:
            raise ValueError(f"index {r['index']} appears twice in the report rows")
        seen.add(r["index"])
        r["method"] = r["method"] if r["method"] is not None else method
        r["status"] = r["status"] if r["status"] is not None else "ok"
        for c in [c for c in _FLOAT_COLUMNS if c in r]:
            r[c] = _as_float(r[c])
        out.append(r)
    return sorted(out, key=lambda r: r["index"])


def _csv_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, torch.Tensor):
        value = value.item()
    return repr(value) if isinstance(value, float) else str(value)


def _parse_number(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def read_metrics_csv(path: str | os.PathLike) -> list[dict]:
    """Rows of a metrics.csv: index int, method/status str, metrics float (NaN if empty);
    extra columns as int or float where they parse, else str. Used to resume a run."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        r = {}
        for key, text in row.items():
            if key == "index":
                r[key] = int(text)
            elif key in ("method", "status"):
                r[key] = text
            elif key in _FLOAT_COLUMNS or text == "":
                r[key] = _as_float(text)
            else:
                r[key] = _parse_number(text)
        out.append(r)
    return out


# -- summaries ---------------------------------------------------------------------------
def summarize(rows: Sequence[Mapping], method: str, config: Mapping, extra_metrics: Sequence[str] = ()) -> dict:
    summary = {"method": method, "num_images": len(rows),
               "num_failed": sum(1 for r in rows if r.get("status", "ok") != "ok")}
    for c in METRIC_COLUMNS + [c for c in ORACLE_COLUMNS if any(c in r for r in rows)] + list(extra_metrics):
        summary[f"{c}_mean"], summary[f"{c}_ci95"] = mean_ci95(r.get(c, math.nan) for r in rows)
    seconds = [_as_float(r.get("seconds")) for r in rows]
    finite = [s for s in seconds if math.isfinite(s)]
    # as in metrics.csv: solve time per image (its share of its batch's); also the run's total
    summary["seconds"] = float(sum(finite) / len(finite)) if finite else math.nan
    summary["seconds_total"] = float(sum(finite)) if finite else math.nan
    summary["config"] = config
    return _json_ready(summary)


def _pm(mean, ci, fmt: str) -> str:
    if mean is None:
        return "–"
    return f"{mean:{fmt}}" + (f" ± {ci:{fmt}}" if ci is not None else "")


#: printed under every summary table: what its numbers are
TABLE_LEGEND = (
    "Mean over images ± half-width of its 95% confidence interval (Student t, n − 1 degrees of freedom); "
    "failed images are counted, not averaged. Measurement error: mean squared difference between the "
    "reconstruction's measurements A(x̂) and the given y (magnitudes |A x̂| for phase retrieval), the only "
    "criterion the solver sees. Seconds: solve time per image (its share of its batch's), as in metrics.csv."
)


def summary_markdown(summaries: Sequence[Mapping]) -> str:
    """One markdown table comparing methods: mean ± 95% CI per metric (oracle-aligned PSNR/SSIM after the
    raw ones where a summary has them), then :data:`TABLE_LEGEND`."""
    aligned = any("psnr_aligned_mean" in s for s in summaries)
    header = ["method", "n (failed)", "PSNR (dB)", "SSIM"]
    header += ["PSNR aligned (oracle)", "SSIM aligned (oracle)"] if aligned else []
    header += ["LPIPS", "measurement error", "seconds per image"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [str(s["method"]), f"{s['num_images']} ({s['num_failed']})",
                 _pm(s["psnr_mean"], s["psnr_ci95"], ".2f"), _pm(s["ssim_mean"], s["ssim_ci95"], ".4f")]
        if aligned:
            cells += [_pm(s.get("psnr_aligned_mean"), s.get("psnr_aligned_ci95"), ".2f"),
                      _pm(s.get("ssim_aligned_mean"), s.get("ssim_aligned_ci95"), ".4f")]
        cells += [_pm(s["lpips_mean"], s["lpips_ci95"], ".4f"),
                  _pm(s["measurement_error_mean"], s["measurement_error_ci95"], ".3e"),
                  "–" if s["seconds"] is None else f"{s['seconds']:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + TABLE_LEGEND + "\n"


# -- images ------------------------------------------------------------------------------
def log_magnitude_image(y: torch.Tensor) -> torch.Tensor:
    """Fourier magnitudes |F x| (N, C, H, W) -> displayable (N, C, H, W) in [0, 1]:
    fftshift (zero frequency in the centre), log(1 + |y|), divided by each image's max."""
    mag = torch.fft.fftshift(y.detach().abs().float(), dim=(-2, -1)).log1p()
    peak = mag.flatten(1).amax(1).clamp_min(1e-12)
    return mag / peak.view(-1, *([1] * (mag.ndim - 1)))


def grid_image(grid: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Rows in ``grid`` order (e.g. ground truth / measurement / reconstruction), one
    column per image; tiles of the largest H x W, white padding of :data:`GRID_PADDING`
    px; 1-channel rows are shown grey, NaN as black. Returns uint8 (H, W, 3)."""
    rows = [t.detach().float().cpu() for t in grid.values()]
    if any(t.ndim != 4 or t.shape[1] not in (1, 3) for t in rows) or len({t.shape[0] for t in rows}) != 1:
        raise ValueError("grid rows must be (N, C, H, W) with C 1 or 3 and the same N, "
                         f"got {[tuple(t.shape) for t in rows]}")
    n, p = rows[0].shape[0], GRID_PADDING
    th, tw = max(t.shape[2] for t in rows), max(t.shape[3] for t in rows)
    canvas = torch.ones(3, len(rows) * (th + p) + p, n * (tw + p) + p)
    for i, row in enumerate(rows):
        row = torch.nan_to_num(row, nan=0.0).clamp(0, 1).expand(-1, 3, -1, -1)
        h, w = row.shape[2:]
        for j in range(n):
            top, left = p + i * (th + p) + (th - h) // 2, p + j * (tw + p) + (tw - w) // 2
            canvas[:, top:top + h, left:left + w] = row[j]
    return (canvas.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


# -- the report --------------------------------------------------------------------------
def write_report(out_dir: str | os.PathLike, rows: Sequence[Mapping], method: str, config: Mapping,
                 grid: Mapping[str, torch.Tensor] | None = None, extra_columns: Sequence[str] = (),
                 extra_metrics: Sequence[str] = ()) -> dict:
    """Write metrics.csv (one row per image, sorted by index), summary.json, summary.md and,
    with ``grid``, grid.png into ``out_dir``; returns the summary dict.

    ``rows``: dicts with "index" and any of :data:`COLUMNS` (method defaults to ``method``,
    status to "ok"; a status other than "ok" counts as failed), :data:`ORACLE_COLUMNS` (written,
    and summarised, when any row has them) and ``extra_columns``, of which ``extra_metrics`` (numbers)
    also get a mean and CI in summary.json.
    ``config``: the full resolved config, stored in summary.json.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    oracle = [c for c in ORACLE_COLUMNS if any(c in r for r in rows)]
    columns = COLUMNS + oracle + [c for c in extra_columns if c not in COLUMNS + oracle]
    table = _normalise_rows(rows, method, columns)
    with atomic_open(out_dir / "metrics.csv", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in table:
            writer.writerow([_csv_cell(r[c]) for c in columns])
    summary = summarize(table, method, config, [c for c in extra_metrics if c in columns])
    write_json(out_dir / "summary.json", summary, allow_nan=False)
    write_text(out_dir / "summary.md", summary_markdown([summary]))
    if grid is not None:
        with atomic_open(out_dir / "grid.png", "wb") as f:
            Image.fromarray(grid_image(grid)).save(f, format="PNG")
    return summary
