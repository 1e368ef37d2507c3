"""The oracle bound (prior fitted to the ground truth) against the solvers, oracle-aligned metrics, and the
rule that tuning scripts never see the test split."""
import pytest
import torch

from common.errors import UserInputError
from evaluation.alignment import aligned_metrics
from evaluation.metrics import psnr
from evaluation.oracle_bound import RANGE, fit, output_spaces
from operators import FourierPhaseRetrieval, GaussianPhaseRetrieval
from tests.cli import spread_vae
from solvers.generative import GenerativeSolver
from solvers.initialization import MagnitudeInformedInit, RandomInit

SHAPE = (1, 12, 12)
PRILO = [{"kind": "init", "steps": 80, "lr": 0.1, "radius": 100},
         {"repeat": 2, "stages": [{"kind": "forward", "layer": 2, "steps": 40, "lr": 0.05, "radius": 5.0},
                                  {"kind": "backproject", "layer": 2, "steps": 40, "lr": 0.05, "center": "zero"},
                                  {"kind": "refine", "steps": 40, "lr": 0.05, "radius": 100}]}]
SOLVERS = {  # name -> (engine options, whether the output is G(z_0) (bounded by the range fit alone))
    "dpr": (dict(schedule=[{"kind": "init", "steps": 200, "lr": 0.1}], two_start=True, negation_check=True), True),
    "prilo_paper": (dict(schedule=PRILO, select="final"), True),
    "prilo": (dict(schedule=PRILO, select="best", two_start=True, negation_check=True), False),
}


@pytest.fixture(scope="module")
def prior():
    return spread_vae(SHAPE)


@pytest.fixture(scope="module")
def truth(prior):
    """Images near, not in, G's range."""
    with torch.no_grad():
        x = prior(prior.sample_latent(6, generator=torch.Generator().manual_seed(11)))
    return (x + 0.1 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)


def test_output_spaces_follow_the_solver_schedule():
    spaces = output_spaces({"schedule": PRILO}, num_layers=3)
    assert spaces == {RANGE: {"kind": "init", "radius": None},
                      "layer2": {"kind": "forward", "layer": 2, "radius": 5.0, "latent_radius": None,
                                 "optimize_noise": False}}
    assert list(output_spaces({"schedule": PRILO, "ball": False}, 3)["layer2"].items())[2] == ("radius", None)
    assert list(output_spaces({"schedule": SOLVERS["dpr"][0]["schedule"]}, 3)) == [RANGE]


def test_oracle_bound_is_above_every_solver(prior, truth):
    op = FourierPhaseRetrieval(SHAPE, seed=1)
    idx = list(range(len(truth)))
    fits = fit(prior, truth, idx, output_spaces({"schedule": PRILO}, 3), MagnitudeInformedInit(500, 250),
               restarts=2, steps=300, lr=0.05)
    bound = {name: psnr(x, truth) for name, x in fits.items()}
    assert torch.all(bound["layer2"] >= bound[RANGE] - 1e-4)  # the ball contains the range fit
    best = torch.maximum(bound[RANGE], bound["layer2"])
    for name, (options, in_range) in SOLVERS.items():
        result = GenerativeSolver(prior, init=RandomInit(), restarts=2, **options).solve(op, op(truth), idx, seed=2)
        aligned = aligned_metrics(op, result.x, truth)["psnr_aligned"]
        assert torch.all(aligned <= best), name
        if in_range:
            assert torch.all(aligned <= bound[RANGE]), name


def test_aligned_metrics_are_at_least_the_raw_ones_and_only_for_circular_fourier(prior, truth):
    op = FourierPhaseRetrieval(SHAPE, seed=1)
    shifted = torch.roll(truth.flip(-1, -2), shifts=(2, 3), dims=(-2, -1))  # a twin with the same magnitudes
    noisy = (truth + 0.2 * torch.rand(truth.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    for x_hat in (shifted, noisy, torch.cat([shifted[:3], noisy[3:]])):
        m = aligned_metrics(op, x_hat, truth)
        assert set(m) == {"psnr_aligned", "ssim_aligned"}
        assert torch.all(m["psnr_aligned"] >= psnr(x_hat, truth))
    assert torch.all(aligned_metrics(op, shifted, truth)["psnr_aligned"] >= 60)  # the twin is the digit itself
    assert aligned_metrics(FourierPhaseRetrieval(SHAPE, oversampling=2), shifted, truth) == {}
    assert aligned_metrics(GaussianPhaseRetrieval(SHAPE, m=20), shifted, truth) == {}


@pytest.mark.parametrize("script", ["benchmarks.prilo_trials"])
def test_tuning_scripts_refuse_the_test_split(script, capsys):
    import importlib

    main = importlib.import_module(script).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--split", "test"])
    assert exit_info.value.code == 2 and "validation split only" in capsys.readouterr().err
    from benchmarks.common import tuning_images

    with pytest.raises(UserInputError, match="validation split only"):
        tuning_images("test")


def test_oracle_bound_command_writes_a_report_resumes_and_refuses_other_settings_and_classical_solvers(tmp_path):
    import csv
    import json
    import os

    from tests.cli import run_inprocess, tiny_vae_prior

    prior = tiny_vae_prior(tmp_path / "vae.pt")
    out = tmp_path / "bound"
    proc = run_inprocess("evaluation/oracle_bound.py", f"prior.checkpoint={prior}", f"hydra.run.dir={out}",
                         "num_images=3", "batch_size=2", "restarts=2", "oracle.steps=20", "init.num_candidates=50")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["index"] for r in rows] == ["0", "1", "2"]
    assert all(float(r["psnr"]) == max(float(r[f"psnr_{s}"]) for s in ("range", "layer1", "layer2")) for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "oracle-bound" and "psnr_range_ci95" in summary
    fitted = (out / "metrics.csv").read_text().splitlines()[1:]

    args = (f"prior.checkpoint={prior}", f"hydra.run.dir={out}", "batch_size=2", "restarts=2", "init.num_candidates=50")
    more = run_inprocess("evaluation/oracle_bound.py", *args, "num_images=4", "oracle.steps=20")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "3 of 4 images already solved" in more.stdout
    assert (out / "metrics.csv").read_text().splitlines()[1:4] == fitted  # kept, not refitted
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 4
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    other = run_inprocess("evaluation/oracle_bound.py", *args, "num_images=4", "oracle.steps=10")
    assert other.returncode == 2 and "oracle.steps" in other.stderr and "new hydra.run.dir" in other.stderr
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before

    old = tmp_path / "old"  # a bound written before runs were resumable: a report, no parts or identity
    old.mkdir()
    (old / "summary.json").write_text("{}")
    refused = run_inprocess("evaluation/oracle_bound.py", f"prior.checkpoint={prior}", f"hydra.run.dir={old}",
                            "num_images=1", "oracle.steps=20")
    assert refused.returncode == 2 and "without a results_config.json" in refused.stderr and sorted(os.listdir(old)) == ["summary.json"]

    bad = run_inprocess("evaluation/oracle_bound.py", "solver=hio", f"hydra.run.dir={tmp_path / 'bad'}", "num_images=1")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "generative" in bad.stderr
    assert not (tmp_path / "bad" / "metrics.csv").exists()
