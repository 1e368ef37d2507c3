"""benchmarks/concat_results.py: runs of one sweep on consecutive test images joined into the run on all of them."""
import json

import numpy as np
import pytest

from benchmarks import concat_results
from evaluation.report import mean_ci95
from tests.cli import tiny_vae_prior


@pytest.mark.parametrize("sizes", [(5, 7), (1, 4, 9), (2, 1, 1), (30, 2)])
def test_pooled_mean_and_ci_are_those_of_the_union(sizes):
    values = np.random.default_rng(sum(sizes)).normal(20.0, 3.0, sum(sizes))
    parts, start = [], 0
    for size in sizes:
        chunk = values[start:start + size]
        parts.append((size, *mean_ci95(chunk)))
        start += size
    assert concat_results.pooled_mean_ci95(parts) == pytest.approx(mean_ci95(values), rel=1e-12)


def test_a_missing_metric_stays_missing():
    assert all(np.isnan(concat_results.pooled_mean_ci95([(3, float("nan"), float("nan")), (2, 1.0, 0.5)])))


@pytest.mark.slow
def test_runs_from_a_first_image_on_concatenate_to_the_run_on_all_images(tmp_path, monkeypatch):
    """prilo_fig3 on images 0-3 in one run, and on 0-1 and 2-3 (--first-image 2) joined: the same per-image PSNRs
    and means and CIs of every metric (to float32 rounding: batched kernels of 2 and of 4 images round differently),
    and a file that paired_psnr.py reads like a run's."""
    from benchmarks import common, experiments, paired_psnr

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(experiments, "RESULTS_DIR", tmp_path)
    prior = str(tiny_vae_prior(tmp_path / "vae.pt"))
    run = ["prilo_fig3", "--prior", prior, "--methods", "dpr", "dpr_mii", "--axis", "25", "--step-fraction", "0.02",
           "--threads", "1"]
    experiments.main([*run, "--images", "4", "--tag", "_all"])
    experiments.main([*run, "--images", "2", "--tag", "_a"])
    experiments.main([*run, "--images", "2", "--first-image", "2", "--tag", "_b"])
    part_b, part_a = (str(tmp_path / f"prilo_fig3_gaussian_{t}.json") for t in ("b", "a"))
    joined = concat_results.main([part_b, part_a, "--out", str(tmp_path / "joined")])  # any order
    whole = json.loads((tmp_path / "prilo_fig3_gaussian_all.json").read_text())
    assert joined["images"] == 4 and joined["first_image"] == 0 and len(joined["rows"]) == len(whole["rows"]) == 4
    parts = [json.loads(open(p).read())["rows"] for p in (part_a, part_b)]
    for i, (mine, theirs) in enumerate(zip(joined["rows"], whole["rows"])):
        assert mine["psnr_values"] == parts[0][i]["psnr_values"] + parts[1][i]["psnr_values"]
        assert mine["psnr_values"] == pytest.approx(theirs["psnr_values"], rel=1e-5)
        assert mine["truths"] == f"{parts[0][i]['truths']}+{parts[1][i]['truths']}"
        for key, value in theirs.items():
            if key.endswith(("_mean", "_ci95")):
                assert mine[key] == pytest.approx(value, rel=1e-5, nan_ok=True), key
    assert json.dumps(json.loads((tmp_path / "joined.json").read_text())["rows"]) == json.dumps(joined["rows"])
    assert (tmp_path / "joined.md").exists() and list(tmp_path.glob("joined_*_psnr.png"))
    differences = paired_psnr.main([str(tmp_path / "joined.json"), "DPR", str(tmp_path / "joined.json"), "DPR-MII"])
    assert differences and all(d["images"] == 4 for d in differences)


def _row(label, m=25, images=2, truths="t0", **extra):
    return {"label": label, "operator": "gaussian_pr", "m": m, "axis": ["operator", "m"], "images": images,
            "truths": truths, "prior": "p.pt", "seconds_per_image": 1.0, "measurement_error_mean": 1e-3, "psnr_mean": 20.0,
            "psnr_ci95": 1.0, "ssim_mean": 0.8, "ssim_ci95": 0.1, "psnr_values": [19.0, 21.0][:images], **extra}


def _results(path, rows, first_image=0, overrides=(), argv=("prilo_fig3",)):
    path.write_text(json.dumps({"experiment": path.stem, "complete": True, "rows": rows, "first_image": first_image,
                                "overrides": list(overrides), "step_fraction": 1.0, "quick": False, "argv": list(argv)}))
    return str(path)


@pytest.mark.parametrize("case", ["one file", "a gap", "an overlap", "other rows", "other overrides", "other settings",
                                  "other subcommand", "table rows", "out exists"])
def test_parts_that_do_not_join_are_refused_with_one_line_and_nothing_is_written(tmp_path, capsys, case):
    a = _results(tmp_path / "a.json", [_row("DPR")])
    b = {"a gap": lambda p: _results(p, [_row("DPR", truths="t1")], first_image=3),
         "an overlap": lambda p: _results(p, [_row("DPR", truths="t1")], first_image=1),
         "other rows": lambda p: _results(p, [_row("WF", truths="t1")], first_image=2),
         "other overrides": lambda p: _results(p, [_row("DPR", truths="t1")], 2, ["solver.lr=0.1"]),
         "other settings": lambda p: _results(p, [_row("DPR", truths="t1", prior="other.pt")], 2),
         "other subcommand": lambda p: _results(p, [_row("DPR", truths="t1")], 2, argv=["dpr_fig3"]),
         "table rows": lambda p: _results(p, [{k: v for k, v in _row("mii/full").items() if k not in ("axis", "m")}], 2),
         "out exists": lambda p: _results(p, [_row("DPR", truths="t1")], 2)}.get(case)
    b = b(tmp_path / "b.json") if b else None
    if case == "out exists":
        (tmp_path / "joined.json").write_text("a user's file")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(SystemExit) as exit_info:
        concat_results.main([a, *([b] if b else []), "--out", str(tmp_path / "joined")])
    assert exit_info.value.code != 0
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
