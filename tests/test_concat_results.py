"""benchmarks/concat_results.py: runs of one sweep on consecutive test images joined into the run on all of them."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

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


def _tiny_stylegan2(path):
    from priors.io import save_prior
    from priors.stylegan2 import StyleGAN2Prior

    torch.manual_seed(0)
    prior = StyleGAN2Prior(size=32, channels=1, style_dim=16, n_mlp=2, max_channels=8)
    prior.fit_latent_statistics(num_samples=100)
    return save_prior({"prior_config": prior.config(), "state_dict": prior.state_dict(), "extra": {}}, path)


SWEEPS = {  # subcommand -> (its results file's stem, a tiny prior's maker, a cheap subset of its methods and points)
    "prilo_fig3": ("prilo_fig3_gaussian", tiny_vae_prior, ["--methods", "dpr", "dpr_mii", "--axis", "25"]),
    "ilo_small": ("ilo_small", _tiny_stylegan2, ["--methods", "csgm"]),  # task points and the oracle-bound row
    "prilo_table3": ("prilo_table3", tiny_vae_prior, ["--inits", "mii"]),  # a table's rows: no sweep axis
}


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", list(SWEEPS))
def test_runs_from_a_first_image_on_concatenate_to_the_run_on_all_images(subcommand, tmp_path, monkeypatch):
    """A sweep on images 0-3 in one run, and on 0-1 and 2-3 (--first-image 2) joined: the same per-image PSNRs
    and means and CIs of every metric up to float32 rounding (batched kernels of 2 and of 4 images round differently,
    and the steps carry it on: up to 1e-4 relative on the tiny StyleGAN2), and a file paired_psnr.py reads like a
    run's."""
    from benchmarks import common, experiments, paired_psnr

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(experiments, "RESULTS_DIR", tmp_path)
    stem, make_prior, subset = SWEEPS[subcommand]
    prior = str(make_prior(tmp_path / "prior.pt"))
    run = [subcommand, "--prior", prior, *subset, "--step-fraction", "0.02", "--threads", "1"]
    experiments.main([*run, "--images", "4", "--tag", "_all"])
    experiments.main([*run, "--images", "2", "--tag", "_a"])
    experiments.main([*run, "--images", "2", "--first-image", "2", "--tag", "_b"])
    part_b, part_a = (str(tmp_path / f"{stem}_{t}.json") for t in ("b", "a"))
    joined = concat_results.main([part_b, part_a, "--out", str(tmp_path / "joined")])  # any order
    whole = json.loads((tmp_path / f"{stem}_all.json").read_text())
    assert joined["images"] == 4 and joined["first_image"] == 0 and len(joined["rows"]) == len(whole["rows"]) > 1
    parts = [json.loads(Path(p).read_text())["rows"] for p in (part_a, part_b)]
    for i, (mine, theirs) in enumerate(zip(joined["rows"], whole["rows"])):
        assert mine["psnr_values"] == parts[0][i]["psnr_values"] + parts[1][i]["psnr_values"]
        assert mine["psnr_values"] == pytest.approx(theirs["psnr_values"], rel=1e-3)
        assert mine["truths"] == f"{parts[0][i]['truths']}+{parts[1][i]['truths']}"
        assert mine["truths_per_image"] == theirs["truths_per_image"] and len(set(mine["truths_per_image"])) == 4
        for key, value in theirs.items():
            if key.endswith(("_mean", "_ci95")):
                assert mine[key] == pytest.approx(value, rel=1e-3, abs=1e-6, nan_ok=True), key
    assert json.dumps(json.loads((tmp_path / "joined.json").read_text())["rows"]) == json.dumps(joined["rows"])
    assert (tmp_path / "joined.md").exists() and list(tmp_path.glob("joined_*.png"))
    label = joined["rows"][0]["label"]
    differences = paired_psnr.main([str(tmp_path / "joined.json"), label, str(tmp_path / "joined.json"), label])
    assert differences and all(d["images"] == 4 and d["psnr_difference_mean"] == 0 for d in differences)
    with_one_run = paired_psnr.main([str(tmp_path / f"{stem}_all.json"), label, str(tmp_path / "joined.json"), label])
    assert [d["images"] for d in with_one_run] == [d["images"] for d in differences]  # same images, per image
    part_vs_run = paired_psnr.main([str(tmp_path / f"{stem}_all.json"), label, part_b, label, "--common-images"])
    assert all(d["images"] == 2 and abs(d["psnr_difference_mean"]) < 1e-2 for d in part_vs_run)  # images 2-3


def _row(label, m=25, images=2, truths="t0", **extra):
    return {"label": label, "operator": "gaussian_pr", "m": m, "axis": ["operator", "m"], "images": images,
            "truths": truths, "prior": "p.pt", "seconds_per_image": 1.0, "measurement_error_mean": 1e-3,
            "psnr_mean": 20.0, "psnr_ci95": 1.0, "ssim_mean": 0.8, "ssim_ci95": 0.1, "mse_mean": 0.01,
            "mse_ci95": 0.001, "psnr_values": [19.0, 21.0][:images], **extra}


def test_parts_written_before_fingerprints_join_without_one(tmp_path):
    old = {k: v for k, v in _row("DPR", psnr_ci95=mean_ci95([19, 21])[1]).items() if k != "truths"}
    a, b = _results(tmp_path / "a.json", [old]), _results(tmp_path / "b.json", [old], first_image=2)
    row = concat_results.main([a, b, "--out", str(tmp_path / "joined")])["rows"][0]
    assert "truths" not in row and row["images"] == 4 and row["psnr_values"] == [19.0, 21.0, 19.0, 21.0]
    assert row["psnr_mean"] == pytest.approx(20.0) and row["psnr_ci95"] == pytest.approx(mean_ci95([19, 21, 19, 21])[1])


def test_an_old_part_joins_new_parts_and_pairs_with_the_same_images_split_otherwise(tmp_path):
    """Older files carry no per-image fingerprints: a join keeps the fingerprints all parts have and pairs by its
    whole-row one with joins of the same older part, however its newer images were split, never with other images."""
    ci = mean_ci95([19, 21])[1]
    old = _row("DPR", psnr_ci95=ci)
    new = {**_row("DPR", truths="t1", psnr_ci95=ci), "truths_per_image": ["i2", "i3"]}
    halves = [{**_row("DPR", images=1, truths=f"h{i}", psnr_ci95=float("nan"), psnr_values=[v]),
               "truths_per_image": [f"i{i + 2}"]} for i, v in enumerate([19.0, 21.0])]
    a, b = _results(tmp_path / "a.json", [old]), _results(tmp_path / "b.json", [new], first_image=2)
    c, d = (_results(tmp_path / f"{n}.json", [h], first_image=2 + i) for i, (n, h) in enumerate(zip("cd", halves)))
    whole = concat_results.main([a, b, "--out", str(tmp_path / "whole")])["rows"][0]
    split = concat_results.main([a, c, d, "--out", str(tmp_path / "split")])["rows"][0]
    assert "truths_per_image" not in whole and whole["images"] == 4 and whole["truths"].startswith("t0+")
    assert whole["psnr_ci95"] == pytest.approx(mean_ci95([19, 21, 19, 21])[1])
    assert whole["truths"] == split["truths"] and whole["psnr_values"] == split["psnr_values"]
    other = {**new, "truths_per_image": ["i2", "i9"]}
    assert concat_results.joined_truths([old, other]) != whole["truths"]
    assert concat_results.joined_truths([{**old, "truths": "t9"}, new]) != whole["truths"]


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
