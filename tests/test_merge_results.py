"""benchmarks/merge_results.py: several runs of one subcommand on the same images as one table and figure."""
import json

import pytest

from benchmarks import merge_results


def _row(label, operator, point, images=4, psnr=20.0):
    key = "m" if "pr" in operator else "ratio"
    return {"label": label, "operator": operator, key: point, "axis": ["operator", key], "images": images,
            "psnr_mean": psnr, "psnr_ci95": 0.5, "ssim_mean": 0.8, "ssim_ci95": 0.01, "lpips_mean": 0.1,
            "lpips_ci95": 0.01, "mse_mean": 0.01, "measurement_error_mean": 1e-3}


def _results(path, rows, complete=True, overrides=()):
    path.write_text(json.dumps({"experiment": path.stem, "complete": complete, "rows": rows, "overrides": list(overrides)}))
    return str(path)


def test_measurement_sweeps_merge_point_by_point_with_one_figure_of_every_method(tmp_path):
    a = _results(tmp_path / "a.json", [_row(lab, "gaussian_pr", m) for m in (25, 50) for lab in ("DPR", "PRILO-MII")])
    b = _results(tmp_path / "b.json", [_row(lab, "gaussian_pr", m) for m in (25, 50)
                                       for lab in ("PRILO-MII", "PRILO-MII (paper rule)")])
    table = merge_results.main([a, b, "--out", str(tmp_path / "out" / "all")])
    lines = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [(cells[1], cells[2]) for cells in lines] == [
        ("25", "DPR"), ("25", "PRILO-MII (a)"), ("25", "PRILO-MII (b)"), ("25", "PRILO-MII (paper rule)"),
        ("50", "DPR"), ("50", "PRILO-MII (a)"), ("50", "PRILO-MII (b)"), ("50", "PRILO-MII (paper rule)")]
    assert (tmp_path / "out" / "all.md").read_text() == table + "\n"
    assert {p.name for p in (tmp_path / "out").glob("*.png")} == {"all_gaussian_pr_psnr.png", "all_gaussian_pr_ssim.png"}


def test_task_sweeps_merge_with_the_oracle_bound_row(tmp_path):
    bound = {**_row("oracle bound", "oracle", None), "axis": ["operator"], "psnr_range_mean": 30.0, "psnr_range_ci95": 1.0}
    a = _results(tmp_path / "csgm.json", [_row("CSGM", "inpainting", r) for r in (0.1, 0.2)] + [bound])
    b = _results(tmp_path / "ilo.json", [_row("ILO", "inpainting", r, psnr=25.0) for r in (0.1, 0.2)])
    table = merge_results.main([a, b, "--out", str(tmp_path / "t")])
    assert [line.split(" | ")[2] for line in table.splitlines()[2:]] == ["CSGM", "ILO", "CSGM", "ILO", "oracle bound"]
    assert (tmp_path / "t_inpainting.png").exists() and not (tmp_path / "t_oracle.png").exists()


def test_prilo_table3_runs_of_each_initialisation_merge_into_one_table_with_a_figure_per_initialisation(tmp_path):
    def table_row(init, ablation):
        row = {k: v for k, v in _row(f"{init}/{ablation}", "", None).items() if k not in ("operator", "ratio", "axis")}
        return {**row, "init": init, "ablation": ablation, "psnr_aligned_mean": 22.0, "psnr_aligned_ci95": 0.5,
                "ssim_aligned_mean": 0.9, "ssim_aligned_ci95": 0.01, "paper_celeba_stylegan": [21.42, 0.6358]}

    files = [_results(tmp_path / f"{init}.json", [table_row(init, a) for a in ("only_a", "full")]) for init in ("mii", "li")]
    table = merge_results.main([*files, "--out", str(tmp_path / "t3")])
    assert [tuple(line.split(" | ")[:2]) for line in table.splitlines()[2:]] == [
        ("| MII", "only_a"), ("| MII", "full"), ("| LI", "only_a"), ("| LI", "full")]
    assert "21.42 / 0.6358" in table
    assert {p.name for p in tmp_path.glob("t3_*.png")} == {"t3_mii.png", "t3_li.png"}


def test_files_with_the_same_fingerprints_merge_and_files_without_them_are_not_checked(tmp_path):
    rows = [{**_row(lab, "gaussian_pr", 25), "truths": "a"} for lab in ("DPR", "WF")]
    a, b = _results(tmp_path / "a.json", rows[:1]), _results(tmp_path / "b.json", rows[1:])
    old = _results(tmp_path / "old.json", [_row("DPR-MII", "gaussian_pr", 25)])  # written before fingerprints
    table = merge_results.main([a, b, old, "--out", str(tmp_path / "all")])
    assert [line.split(" | ")[2] for line in table.splitlines()[2:]] == ["DPR", "WF", "DPR-MII"]


def test_a_run_joined_from_parts_merges_with_one_run_on_the_same_images(tmp_path):
    images = {"truths_per_image": ["i0", "i1", "i2", "i3"]}
    one_run = _results(tmp_path / "a.json", [{**_row("DPR", "gaussian_pr", 25), "truths": "a", **images}])
    joined = _results(tmp_path / "b.json", [{**_row("WF", "gaussian_pr", 25), "truths": "a0+a1", **images}])
    table = merge_results.main([one_run, joined, "--out", str(tmp_path / "all")])
    assert [line.split(" | ")[2] for line in table.splitlines()[2:]] == ["DPR", "WF"]
    shuffled = _results(tmp_path / "c.json", [{**_row("WF", "gaussian_pr", 25), "truths": "a",
                                               "truths_per_image": ["i1", "i0", "i2", "i3"]}])
    with pytest.raises(SystemExit):  # the same whole-row fingerprint, other images in that order
        merge_results.main([one_run, shuffled, "--out", str(tmp_path / "other")])
    assert not (tmp_path / "other.md").exists()


@pytest.mark.parametrize("case", ["one file", "other images", "other data", "other fingerprints", "unfinished", "other points", "out is an input",
                                  "no rows"])
def test_files_that_do_not_merge_are_refused_and_nothing_is_written(tmp_path, capsys, case):
    a = _results(tmp_path / "a.json", [{**_row("DPR", "gaussian_pr", 25), "truths": "a"}])
    second = {"other images": ([_row("WF", "gaussian_pr", 25, images=8)], True),
              "other data": ([_row("WF", "gaussian_pr", 25)], True, ["data=mnist"]),  # same count, other digits
              "other fingerprints": ([{**_row("WF", "gaussian_pr", 25), "truths": "b"}], True),
              "unfinished": ([_row("WF", "gaussian_pr", 25)], False),
              "no rows": ([], True),
              "other points": ([_row("ILO", "inpainting", 0.1)], True),
              "out is an input": ([_row("WF", "gaussian_pr", 25)], True)}.get(case)
    b = _results(tmp_path / "b.json", *second) if second else None
    out = tmp_path / ("a" if case == "out is an input" else "merged")
    with pytest.raises(SystemExit) as exit_info:
        merge_results.main([a, *([b] if b else []), "--out", str(out)])
    assert exit_info.value.code != 0
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.json", *(["b.json"] if b else [])])
