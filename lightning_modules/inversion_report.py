"""The results of an inversion run, assembled from its parts (``lightning_modules.inversion``) once every
image is solved: ``reconstructions.pt`` (+ ``measurements.pt``, + one PNG per image for measurement files),
and the report of :func:`evaluation.report.write_report` (metrics.csv, summary.json, summary.md, grid.png)
with a grid of ground truth / measurements / reconstructions; the summary table is printed.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from common.atomic import save_image, torch_save
from lightning_modules.inversion import read_parts
from operators.base import ForwardOperator

#: images per row of grid.png
GRID_IMAGES = 8


def measurement_images(operator: ForwardOperator, y: torch.Tensor) -> torch.Tensor | None:
    """Measurements as displayable images: log-magnitude for Fourier, as-is when image-shaped."""
    from evaluation.report import log_magnitude_image

    if operator.name == "fourier_pr":
        return log_magnitude_image(y)
    if y.dim() == 4 and y.shape[1] in (1, 3):
        return y.clamp(0, 1)
    return None


def save_pngs(images: torch.Tensor, indices: list[int], folder: Path) -> None:
    for image, index in zip(images, indices):
        save_image(image, folder / f"{index:06d}.png")


def write_inversion_results(out_dir: Path, wanted: list[int], operator: ForwardOperator, method: str,
                            config: Mapping, save_measurements: bool = False, pngs: bool = False) -> dict:
    """Merge the parts of ``out_dir`` for the sample indices ``wanted`` (in that order) into the run's
    result files, print the summary table and return the summary. ``config``: the resolved run config
    (stored in summary.json); ``save_measurements``: also write ``measurements.pt`` (y, indices and the
    operator's state, an input of ``invert.py measurements=``); ``pngs``: one PNG per reconstruction
    under ``reconstructions/`` (file-input mode)."""
    from evaluation.report import write_report

    out_dir = Path(out_dir)
    results = read_parts(out_dir)
    records = [results[i] for i in wanted]
    index = torch.tensor(wanted)
    x_hat = torch.stack([r["x_hat"] for r in records])
    y = torch.stack([r["y"] for r in records])
    torch_save({"index": index, "x_hat": x_hat}, out_dir / "reconstructions.pt")
    if save_measurements:
        from operators import operator_state

        torch_save({"index": index, "y": y, "operator": operator_state(operator)}, out_dir / "measurements.pt")
    grid = {"measurement": measurement_images(operator, y[:GRID_IMAGES])}
    if "x" in records[0]:
        grid = {"ground truth": torch.stack([r["x"] for r in records[:GRID_IMAGES]]), **grid}
    grid["reconstruction"] = x_hat[:GRID_IMAGES]
    grid = {k: v for k, v in grid.items() if v is not None}
    if pngs:
        save_pngs(x_hat, wanted, out_dir / "reconstructions")
    summary = write_report(out_dir, [r["row"] for r in records], method, config, grid=grid)
    print((out_dir / "summary.md").read_text())
    print(f"results in {out_dir}")
    return summary
