"""benchmarks/replot.py and the task-sweep figures: a results file's plots are redrawn from its saved rows alone,
one panel per quality measure (PSNR, SSIM, LPIPS) against the task's axis."""
import json
import math

import matplotlib.image
import pytest

from benchmarks import replot
from benchmarks.experiments import task_panels


def _row(label, operator, ratio, lpips=0.1):
    return {"label": label, "operator": operator, "ratio": ratio, "axis": ["operator", "ratio"], "images": 4,
            "psnr_mean": 20.0 + 10 * ratio, "psnr_ci95": 0.5, "ssim_mean": 0.8, "ssim_ci95": 0.01,
            "lpips_mean": lpips, "lpips_ci95": 0.01}


def _bound(label, with_range=True):
    row = {**_row(label, "oracle", 0.0), "ratio": None, "psnr_mean": 90.0, "ssim_mean": 1.0, "lpips_mean": 0.0}
    return {**row, "psnr_range_mean": 30.0, "psnr_range_ci95": 1.0} if with_range else row


def _results(path, rows, **extra):
    path.write_text(json.dumps({"experiment": path.stem, "complete": True, "rows": rows, **extra}))
    return path


def test_task_panels_plot_each_measure_a_row_has_and_the_range_bound_where_it_bounds_that_measure():
    rows = [_row(m, "inpainting", r) for r in (0.1, 0.2) for m in ("CSGM", "ILO")]
    panels = task_panels(rows, [_bound("vanilla: oracle bound"), _bound("old: oracle bound", with_range=False)])
    assert list(panels) == ["PSNR (dB)", "SSIM", "LPIPS (lower is better)"]
    psnr = panels["PSNR (dB)"]
    assert psnr["ILO"] == {"x": [0.1, 0.2], "y": [21.0, 22.0], "yerr": [0.5, 0.5]}
    assert psnr["vanilla: oracle bound (G's range)"]["y"] == [30.0, 30.0]  # the range, not the 90 dB output space
    assert psnr["old: oracle bound"]["y"] == [90.0, 90.0]  # a bound row from before range bounds: its own PSNR
    assert set(panels["SSIM"]) == set(panels["LPIPS (lower is better)"]) == {"CSGM", "ILO"}  # no SSIM/LPIPS range

    unscored = task_panels([_row("ILO", "inpainting", 0.1, lpips=math.nan)], [])
    assert list(unscored) == ["PSNR (dB)", "SSIM"]  # LPIPS cannot score 28x28 digits: no empty panel


def test_replot_redraws_a_task_sweeps_figures_from_its_rows_and_writes_nothing_else(tmp_path):
    path = _results(tmp_path / "ilo_small.json", [_row("ILO", op, r) for op in ("inpainting", "denoising")
                                                   for r in (0.1, 0.2)] + [_bound("oracle bound")])
    saved = path.read_text()
    (tmp_path / "ilo_small_inpainting.png").write_bytes(b"an older figure")
    replot.main([str(path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ilo_small.json", "ilo_small_denoising.png", "ilo_small_inpainting.png"]
    assert path.read_text() == saved
    height, width, _ = matplotlib.image.imread(tmp_path / "ilo_small_inpainting.png").shape
    assert width > 2.5 * height  # three panels side by side


@pytest.mark.parametrize("rows, extra", [
    ([{"label": "DPR", "psnr_mean": 20.0}], {}),  # PRILO table 1's rows: no sweep
    ([{**_row("fraction 0.1", "cs_circulant", 0.05), "split": "val"}], {"split": "val"}),  # a tuning sweep
])
def test_files_replot_does_not_draw_are_refused_in_one_line_before_any_plot_is_replaced(tmp_path, capsys, rows, extra):
    good = _results(tmp_path / "good.json", [_row("ILO", "inpainting", 0.1)])
    bad = _results(tmp_path / "bad.json", rows, **extra)
    with pytest.raises(SystemExit) as exit_info:
        replot.main([str(good), str(bad)])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}:") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "good.json"]


def test_replot_wants_the_results_file_not_a_figure(tmp_path, capsys):
    with pytest.raises(SystemExit):
        replot.main([str(tmp_path / "ilo_small_inpainting.png")])
    assert "give the results file" in capsys.readouterr().err
