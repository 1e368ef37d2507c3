"""Results reports: metrics.csv, summary.json/md, grid.png, CI, atomic writes."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import report
from evaluation.report import (COLUMNS, log_magnitude_image, mean_ci95, read_metrics_csv, summary_markdown,
                               t_quantile_975, write_report)

NAN = float("nan")


def _rows():
    return [
        {"index": 7, "psnr": 30.0, "ssim": 0.9, "lpips": NAN, "measurement_error": 0.03, "seconds": 1.5,
         "restarts": 4},
        {"index": 2, "psnr": 10.0, "ssim": 0.5, "lpips": NAN, "measurement_error": 0.01, "seconds": 0.5,
         "restarts": 4},
        {"index": 5, "psnr": 20.0, "ssim": 0.7, "measurement_error": torch.tensor(0.02), "seconds": 1.0,
         "restarts": 4},
        {"index": 9, "psnr": NAN, "ssim": NAN, "lpips": NAN, "measurement_error": NAN, "seconds": 2.0,
         "status": "failed", "restarts": 4},
    ]


def test_t_quantiles_and_ci():
    # published two-sided 95% t values
    for dof, t in [(1, 12.7062), (4, 2.7764), (9, 2.2622), (29, 2.0452), (1023, 1.9623)]:
        assert t_quantile_975(dof) == pytest.approx(t, abs=1e-4)
    mean, half = mean_ci95([1, 2, 3, 4, 5])
    assert mean == 3 and half == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert mean_ci95([1, NAN, 2, 3, 4, 5, None]) == (mean, half)
    assert mean_ci95([4.0])[0] == 4.0 and math.isnan(mean_ci95([4.0])[1])
    assert all(math.isnan(v) for v in mean_ci95([NAN, NAN]))


def test_csv_columns_order_and_round_trip(tmp_path):
    write_report(tmp_path, _rows(), method="prilo", config={}, extra_columns=["restarts"])
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == COLUMNS + ["restarts"]
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [r["index"] for r in rows] == [2, 5, 7, 9]
    assert all(r["method"] == "prilo" for r in rows)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert rows[1]["measurement_error"] == pytest.approx(0.02) and rows[2]["psnr"] == 30.0
    assert math.isnan(rows[0]["lpips"]) and rows[0]["restarts"] == 4
    assert lines[1].split(",")[4] == ""  # missing LPIPS is an empty cell
    # resuming: rows read back can be written again unchanged
    write_report(tmp_path / "again", rows, method="prilo", config={}, extra_columns=["restarts"])
    assert (tmp_path / "again" / "metrics.csv").read_text() == (tmp_path / "metrics.csv").read_text()


def test_summary_values(tmp_path):
    config = {"solver": {"lr": 0.1, "steps": [10, 20]}, "seed": 0}
    summary = write_report(tmp_path, _rows(), method="prilo", config=config, extra_columns=["restarts"])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert set(summary) == {"method", "num_images", "num_failed", "psnr_mean", "psnr_ci95", "ssim_mean", "ssim_ci95",
                            "lpips_mean", "lpips_ci95", "measurement_error_mean", "measurement_error_ci95",
                            "seconds", "seconds_total", "config"}
    assert (summary["method"], summary["num_images"], summary["num_failed"]) == ("prilo", 4, 1)
    assert summary["psnr_mean"] == 20.0
    assert summary["psnr_ci95"] == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-6)  # s = 10, n = 3
    assert summary["ssim_mean"] == pytest.approx(0.7)
    assert summary["lpips_mean"] is None and summary["lpips_ci95"] is None  # no ground truth for LPIPS
    # seconds means what it means in metrics.csv (per image): their mean; the total beside it
    assert summary["seconds"] == 1.25 and summary["seconds_total"] == 5.0 and summary["config"] == config
    md = (tmp_path / "summary.md").read_text()
    assert "| prilo | 4 (1) | 20.00 ± 24.84 | 0.7000 ± 0.4968 | – |" in md and md.splitlines()[2].endswith("| 1.25 |")
    assert "95% confidence interval" in md and "Measurement error: mean squared difference" in md


def test_summary_markdown_compares_methods(tmp_path):
    a = write_report(tmp_path / "a", _rows(), "prilo", {}, extra_columns=["restarts"])
    b = write_report(tmp_path / "b", [{"index": 0, "psnr": 12.5}], "dpr", {})
    table = summary_markdown([a, b]).splitlines()
    assert table[0].startswith("| method | n (failed) | PSNR (dB) | SSIM | LPIPS")
    assert table[3].startswith("| dpr | 1 (0) | 12.50 | – | – |") and table[4] == ""


def test_bad_rows_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown columns"):
        write_report(tmp_path, [{"index": 0, "psnrr": 1.0}], "x", {})
    with pytest.raises(ValueError, match="twice"):
        write_report(tmp_path, [{"index": 0}, {"index": 0}], "x", {})
    assert not (tmp_path / "metrics.csv").exists()


class _Exploding:
    def __str__(self):
        raise RuntimeError("disk full")


def test_failed_write_leaves_existing_file_untouched(tmp_path, monkeypatch):
    write_report(tmp_path, _rows(), "prilo", {}, extra_columns=["restarts"])
    before = (tmp_path / "metrics.csv").read_bytes()
    rows = _rows()
    rows[2]["restarts"] = _Exploding()  # fails while the third row is being written
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(tmp_path, rows, "prilo", {}, extra_columns=["restarts"])
    assert (tmp_path / "metrics.csv").read_bytes() == before

    def failing_replace(src, dst):
        raise OSError("interrupted")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="interrupted"):
        write_report(tmp_path, _rows()[:1], "prilo", {}, extra_columns=["restarts"])
    assert (tmp_path / "metrics.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "summary.json", "summary.md"]  # no temp


def test_grid_png(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 24, generator=g)
    x_hat = x.clone()
    x_hat[2] = NAN  # a failed reconstruction is drawn black
    measurement = log_magnitude_image(torch.fft.fft2(x.mean(1, keepdim=True)).abs())
    write_report(tmp_path, [{"index": i} for i in range(3)], "prilo", {},
                 grid={"ground truth": x, "measurement": measurement, "reconstruction": x_hat})
    image = np.asarray(Image.open(tmp_path / "grid.png"))
    p = report.GRID_PADDING
    assert image.shape == (3 * (16 + p) + p, 3 * (24 + p) + p, 3)
    expected = (x[1].permute(1, 2, 0) * 255).round().byte().numpy()
    assert np.array_equal(image[p:p + 16, 2 * p + 24:2 * p + 48], expected)  # row 0, column 1
    recon_row = 3 * p + 32
    assert (image[recon_row:recon_row + 16, 3 * p + 48:3 * p + 72] == 0).all()


def test_log_magnitude_image():
    y = torch.fft.fft2(torch.full((2, 1, 8, 8), 0.5)).abs()  # all energy at the zero frequency
    img = log_magnitude_image(y)
    assert img.shape == (2, 1, 8, 8) and img.min() == 0 and img.max() == 1
    assert img[0, 0, 4, 4] == 1 and img[0, 0].sum() == 1  # centred by fftshift
