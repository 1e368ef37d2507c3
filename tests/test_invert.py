"""invert.py as users run it: report contract, resume, devices, file input, bad input.

In this process (tests.cli.run_inprocess: the command's own check and entry function) except where the
process matters: DDP (``slow``)."""
import csv
import json
import shutil

import pytest
import torch

from tests.cli import run_cli, run_inprocess, tiny_vae_prior

FAST_PRILO = ("solver.schedule=[{kind:init,steps:15,lr:0.1,radius:100},"
              "{kind:forward,layer:1,steps:10,lr:0.05,radius:5},"
              "{kind:backproject,layer:1,steps:10,lr:0.05,center:zero},{kind:refine,steps:10,lr:0.05,radius:100}]")
COLUMNS = ["index", "method", "psnr", "ssim", "lpips", "measurement_error", "seconds", "status",
           "psnr_aligned", "ssim_aligned"]  # the last two: oracle-aligned, Fourier phase retrieval only


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory):
    return tiny_vae_prior(tmp_path_factory.mktemp("prior") / "vae.pt")


def invert(out, prior, *extra, expect_ok=True, logger="csv", run=run_inprocess):
    mii = [] if "init=random" in extra else ["init.num_candidates=200"]
    proc = run("invert.py", f"prior.checkpoint={prior}", f"hydra.run.dir={out}", f"logger={logger}",
                   "trainer.enable_progress_bar=false", *mii, *extra)
    if expect_ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_invert_writes_the_report_contract(tmp_path, prior_file):
    out = tmp_path / "run"
    invert(out, prior_file, "num_images=5", "batch_size=2", "restarts=2", "seed=3", FAST_PRILO, logger="wandb")
    assert list((out / "wandb").glob("offline-run-*/files"))  # the W&B dashboard run (offline)
    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == COLUMNS
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3, 4]
    assert {r["method"] for r in rows} == {"prilo-mii"} and {r["status"] for r in rows} == {"ok"}
    assert all(float(r["psnr"]) > 0 and -1 <= float(r["ssim"]) <= 1 for r in rows)
    assert all(float(r["psnr_aligned"]) >= float(r["psnr"]) for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "num_images", "psnr_mean", "psnr_ci95", "ssim_mean", "ssim_ci95", "lpips_mean",
                "lpips_ci95", "seconds", "config", "psnr_aligned_mean", "ssim_aligned_ci95"):
        assert key in summary
    assert summary["num_images"] == 5 and summary["config"]["restarts"] == 2
    assert (out / "grid.png").stat().st_size > 0 and "PSNR aligned (oracle)" in (out / "summary.md").read_text()
    recon = torch.load(out / "reconstructions.pt")
    assert recon["x_hat"].shape == (5, 1, 28, 28) and recon["index"].tolist() == [0, 1, 2, 3, 4]


def test_classical_baseline_runs_through_the_same_command(tmp_path):
    out = tmp_path / "hio"
    proc = run_inprocess("invert.py", "solver=hio", "num_images=3", "restarts=2", "solver.iterations=30",
                   f"hydra.run.dir={out}", "logger=csv", "trainer.enable_progress_bar=false",
                   "prior.checkpoint=/nonexistent/not/needed.pt")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(out / "metrics.csv")
    assert len(rows) == 3 and rows[0]["method"] == "hio"


def test_resume_skips_finished_images_and_gives_the_same_report(tmp_path, prior_file):
    args = ("num_images=6", "batch_size=2", "restarts=2", FAST_PRILO)
    full = tmp_path / "full"
    invert(full, prior_file, *args)
    # an interrupted run: only the first batch finished, no report yet
    cut = tmp_path / "cut"
    shutil.copytree(full / "parts", cut / "parts")
    shutil.copy(full / "results_config.json", cut)
    for part in sorted((cut / "parts").glob("*.pt"))[1:]:
        part.unlink()
    proc = invert(cut, prior_file, *args)
    assert "2 of 6 images already solved" in proc.stdout
    a, b = read_rows(full / "metrics.csv"), read_rows(cut / "metrics.csv")
    for ra, rb in zip(a, b, strict=True):
        assert ra["index"] == rb["index"]
        assert float(ra["psnr"]) == pytest.approx(float(rb["psnr"]), abs=1e-3)


@pytest.mark.slow
def test_batch_size_and_process_count_do_not_change_results(tmp_path, prior_file):
    """Bit-identical per-image results (restarts=4: 4 rows per image, see README)."""
    common = ("num_images=4", "restarts=4", "init=random", FAST_PRILO)
    one = tmp_path / "b1"
    invert(one, prior_file, "batch_size=1", *common)
    four = tmp_path / "b4_2proc"
    invert(four, prior_file, "batch_size=2", "trainer.devices=2", "trainer.strategy=ddp_spawn",
           "trainer.accelerator=cpu", *common, run=run_cli)
    a, b = read_rows(one / "metrics.csv"), read_rows(four / "metrics.csv")
    assert [r["index"] for r in b] == ["0", "1", "2", "3"]  # every image exactly once
    for ra, rb in zip(a, b, strict=True):
        assert (ra["psnr"], ra["ssim"], ra["measurement_error"]) == (rb["psnr"], rb["ssim"], rb["measurement_error"])
    assert torch.equal(torch.load(one / "reconstructions.pt")["x_hat"], torch.load(four / "reconstructions.pt")["x_hat"])


def test_measurement_file_mode(tmp_path, prior_file):
    first = tmp_path / "measure"
    invert(first, prior_file, "num_images=3", "restarts=2", "save_measurements=true", "operator.noise_std=0.01",
           FAST_PRILO)
    recon = tmp_path / "from_file"
    invert(recon, prior_file, f"measurements={first / 'measurements.pt'}", "num_images=3", "restarts=2", FAST_PRILO)
    rows = read_rows(recon / "metrics.csv")
    assert len(rows) == 3 and all(r["psnr"] in ("", "nan") for r in rows)
    assert all(float(r["measurement_error"]) >= 0 for r in rows)
    assert len(list((recon / "reconstructions").glob("*.png"))) == 3


@pytest.mark.parametrize("override, needle", [
    ("prior.checkpoint=/no/such/file.pt", "does not exist"),
    ("solver.schedule=[{kind:forward,layer:9,steps:5,lr:0.1}]", "layer 9"),
    ("solver.schedule=[{kind:init,steps:-3,lr:0.1}]", "steps"),
    ("solver.schedule=[{kind:init,steps:3,lr:0.0}]", "lr"),
    ("solver.schedule=[{kind:forward,layer:1,steps:3,lr:0.1,radius:-2}]", "radius"),
    ("solver=nonexistent_solver", "nonexistent_solver"),
    ("num_images=0", "num_images"),
    ("fused_kernels=maybe", "fused_kernels must be true, false or null"),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, prior_file, override, needle):
    out = tmp_path / "bad"
    args = [f"prior.checkpoint={prior_file}", "num_images=2", override]
    proc = run_inprocess("invert.py", f"hydra.run.dir={out}", "logger=csv", *args)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], proc.stderr[-2000:]
    assert not (out / "metrics.csv").exists()


def test_corrupt_or_mismatched_prior_and_mismatched_measurements(tmp_path, prior_file):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    small = tiny_vae_prior(tmp_path / "small.pt", image_shape=(1, 8, 8))
    for prior, needle in ((corrupt, "could not be read"), (small, "(1, 8, 8)")):
        proc = invert(tmp_path / "x", prior, "num_images=1", expect_ok=False)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr[-2000:]
    out = tmp_path / "m"
    invert(out, prior_file, "num_images=1", "restarts=2", "save_measurements=true", FAST_PRILO)
    proc = invert(tmp_path / "y", prior_file, f"measurements={out / 'measurements.pt'}", "operator=gaussian_pr",
                  expect_ok=False)
    assert proc.returncode == 2 and "do not match" in proc.stderr
