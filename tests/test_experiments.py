"""The experiment presets (conf/experiment), their driver (benchmarks/experiments.py) and DPR's random ReLU generator."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from benchmarks.common import compose_experiment, experiment_sweep, mcnemar_exact, scale_steps, wilson_ci95
from common.cli import CONF_DIR, check_config
from common.errors import UserInputError
from evaluation.metrics import relative_error
from priors.stylegan2 import StyleGAN2Prior
from operators import GaussianPhaseRetrieval
from priors.random_relu import RandomReLUGenerator
from solvers.generative import GenerativeSolver
from solvers.initialization import RandomInit
from tests.cli import tiny_vae_prior

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def test_every_experiment_is_a_preset_and_there_are_the_papers_ones():
    assert {"prilo_table1_mnist", "prilo_table1_fmnist", "prilo_table3", "prilo_fig3_gaussian", "dpr_fig2",
            "dpr_fig3", "ilo_small", "ilo_small_dcgan", "rtil_figs"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_resolves_with_every_sweep_value(name, tmp_path):
    cfg = check_config("invert", [f"+experiment={name}", f"hydra.run.dir={tmp_path / 'run'}"])
    for key in cfg:  # every interpolation resolves (hydra's own job-time keys aside)
        if key != "hydra":
            OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
    assert cfg.hydra.sweep.dir and cfg.hydra.runtime.choices.experiment == name
    assert (CONF_DIR / "experiment" / f"{name}.yaml").read_text().startswith("# @package _global_")
    sweep = experiment_sweep(name)
    assert sweep, f"{name} has no multirun sweep"
    for key, values in sweep.items():
        for value in values:  # each swept value on its own composes too (e.g. +ablation=..., operator=...)
            OmegaConf.to_container(compose_experiment(name, f"{key}={value}").operator, resolve=True)


def test_each_rtil_figure_sweeps_the_priors_it_trains_and_mganprior_mixes_where_rtil_trained_the_mixing():
    from benchmarks.experiments import RTIL_FIGURES

    for name, figure in RTIL_FIGURES.items():
        files = experiment_sweep(figure.preset)["prior.checkpoint"]
        assert [Path(f).name for f in files] == [f"{m}_mnist_embedded.pt" for m in figure.models], name
        if figure.method == "mGANprior":  # the split the multi-code family was trained at is the one inverted
            train = check_config("train", [f"model={figure.rtil}", *figure.train_overrides.get(figure.rtil, ())])
            assert list(train.model.module.rtil.layers) == [compose_experiment(figure.preset).solver.layer], name
            assert train.model.module.rtil.family == "multicode" and train.data.image_size == compose_experiment(
                figure.preset).data.get("image_size", train.data.image_size), name


def test_table3_ablation_rows_set_the_solver_switches():
    rows = {a: compose_experiment("prilo_table3", f"+ablation={a}").solver for a in experiment_sweep("prilo_table3")["+ablation"]}
    assert list(rows["only_init"].skip) == ["forward", "backproject", "refine"] and rows["only_init"].two_start is False
    assert list(rows["only_a"].skip) == ["backproject", "refine"] and list(rows["a_and_b"].skip) == ["refine"]
    assert rows["no_ball"].ball is False and list(rows["no_ball"].skip) == []
    assert rows["full"].ball is True and list(rows["full"].skip) == [] and rows["full"].two_start is True


def test_scale_steps_and_wilson_interval():
    cfg = compose_experiment("prilo_table3").solver
    scale_steps(cfg, 0.1)
    assert cfg.schedule[0].steps == 15 and cfg.schedule[2].stages[0].steps == 30
    p, low, high = wilson_ci95(0, 25)
    assert p == 0 and low == pytest.approx(0, abs=1e-12) and 0.1 < high < 0.15  # a run of failures still has an upper bound
    p, low, high = wilson_ci95(25, 25)
    assert p == 1 and high == pytest.approx(1) and 0.85 < low < 0.9


def test_mcnemar_exact_is_the_two_sided_binomial_test_of_the_discordant_pairs():
    assert mcnemar_exact(8, 1) == pytest.approx(2 * (1 + 9) / 2 ** 9)  # 2 P(X <= 1), X ~ B(9, 1/2)
    assert mcnemar_exact(1, 8) == mcnemar_exact(8, 1)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0  # capped at 1
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)


def test_dpr_fig2_table_pairs_the_same_instances_with_and_without_the_check(tmp_path, monkeypatch, capsys):
    """Instance i is solved from the same A, generator and start both ways: the table counts the instances one
    of them solves alone and tests them (McNemar), per m/n and pooled; --collect-only prints it from the file."""
    from argparse import Namespace

    from benchmarks import experiments

    def row(check, errors, ratio=0.05):
        return {"ratio": ratio, "m": int(ratio * 1000), "negation_check": check, "relative_errors": errors}

    rows = [row(True, [1e-7, 1e-7, 1e-7, 0.5]), row(False, [1e-7, 0.9, 0.8, 1e-7]),
            row(True, [1e-7] * 4, 0.1), row(False, [1e-7] * 4, 0.1)]
    lines = experiments.dpr_fig2_table(rows, 1e-3).splitlines()
    assert lines[2].split(" | ")[2:6] == ["3/4 (75%, CI 30%–95%)", "2/4 (50%, CI 15%–85%)", "2 / 1", "1"]
    assert lines[4].split(" | ")[2:6] == ["7/8 (88%, CI 53%–98%)", "6/8 (75%, CI 41%–93%)", "2 / 1", "1"]
    monkeypatch.setattr(experiments, "RESULTS_DIR", tmp_path)
    (tmp_path / "dpr_fig2_t.json").write_text(json.dumps({"rows": rows}))
    args = Namespace(tag="_t", quick=False, collect_only=True, step_fraction=1.0, override=[], images=None, axis=None)
    experiments.dpr_fig2(args)
    assert "| all | – | 7/8" in capsys.readouterr().out and sorted(p.name for p in tmp_path.iterdir()) == ["dpr_fig2_t.json"]


def test_dpr_fig2_instances_do_not_depend_on_the_number_of_instances():
    """The first k instances of an N-instance run are a k-instance run's: the same A, generator, z0 and DPR result."""
    from benchmarks import experiments
    from invert import build_solver

    cfg = compose_experiment("dpr_fig2", "operator.ratio=0.05", "generator.hidden_dim=40", "generator.output_dim=60",
                             "operator.input_shape=[1,1,60]", "solver.schedule.0.steps=30")
    runs = {}
    for n in (2, 5):
        prior, operator, x = experiments.dpr_fig2_instances(cfg, n)
        result = build_solver(cfg, prior, operator).solve(operator, operator(x), list(range(n)), seed=0)
        runs[n] = (operator.A, x, result.x)
    assert torch.equal(runs[5][0][:2], runs[2][0]) and torch.equal(runs[5][1][:2], runs[2][1])
    assert len({float(v.norm()) for v in runs[5][1]}) == 5  # five different instances
    torch.testing.assert_close(runs[5][2][:2], runs[2][2], rtol=1e-4, atol=1e-6)


def test_random_relu_generator_is_seeded_layered_and_loadable(tmp_path):
    from priors.io import load_prior, save_prior

    g = RandomReLUGenerator(latent_dim=3, hidden_dim=20, output_dim=50, seed=4)
    z = g.sample_latent(5, generator=torch.Generator().manual_seed(0))
    x = g(z)
    assert x.shape == (5, 1, 1, 50) and (x >= 0).all() and x.max() < 1
    assert torch.equal(g.from_layer(g.to_layer(z, 1), 1), x)
    assert torch.allclose(g(2 * z), 2 * x, rtol=1e-5, atol=1e-7)  # positively homogeneous
    assert torch.equal(RandomReLUGenerator(3, 20, 50, seed=4).W2, g.W2)
    assert not torch.equal(RandomReLUGenerator(3, 20, 50, seed=5).W2, g.W2)
    config = {"_target_": "priors.random_relu.RandomReLUGenerator", "latent_dim": 3, "hidden_dim": 20, "output_dim": 50,
              "seed": 4}
    path = save_prior({"prior_config": config, "state_dict": g.state_dict(), "extra": {}}, tmp_path / "relu.pt")
    assert torch.equal(load_prior(path)(z), x)
    with pytest.raises(UserInputError, match="latent_dim"):
        RandomReLUGenerator(latent_dim=0)


def test_dpr_recovers_a_random_relu_signal_from_enough_measurements():
    g = RandomReLUGenerator(latent_dim=4, hidden_dim=50, output_dim=200, seed=1).requires_grad_(False)
    x = g(g.sample_latent(2, generator=torch.Generator().manual_seed(2)))
    op = GaussianPhaseRetrieval(g.image_shape, ratio=0.3, seed=1)
    solver = GenerativeSolver(g, [{"kind": "init", "steps": 600, "lr": 0.05, "radius": None}], RandomInit(),
                              restarts=2, negation_check=True)
    err = relative_error(solver.solve(op, op(x), [0, 1], seed=0).x, x)
    assert (err <= 1e-3).all(), err


@pytest.fixture(scope="module")
def quick_priors(tmp_path_factory) -> dict[str, Path]:
    """Tiny prior files of each family the experiments load: vae, dcgan, stylegan2, pggan."""
    from priors.dcgan import DCGANPrior
    from priors.io import save_prior
    from priors.pggan import PGGANPrior

    folder = tmp_path_factory.mktemp("quick_priors")
    torch.manual_seed(0)
    dcgan_config = {"_target_": "priors.dcgan.DCGANPrior", "size": 28, "channels": 1, "latent_dim": 8, "width": 4}
    dcgan = save_prior({"prior_config": dcgan_config, "state_dict": DCGANPrior(28, 1, 8, 4).state_dict(), "extra": {}},
                       folder / "dcgan.pt")
    torch.manual_seed(0)
    stylegan = StyleGAN2Prior(size=32, channels=1, style_dim=16, n_mlp=2, max_channels=8)
    stylegan.fit_latent_statistics(num_samples=100)
    stylegan = save_prior({"prior_config": stylegan.config(), "state_dict": stylegan.state_dict(), "extra": {}},
                          folder / "stylegan2.pt")
    torch.manual_seed(0)
    pggan = PGGANPrior(size=32, channels=1, latent_dim=8, widths=[4, 4, 4, 4])
    pggan = save_prior({"prior_config": pggan.config(), "state_dict": pggan.state_dict(), "extra": {}}, folder / "pggan.pt")
    return {"vae": tiny_vae_prior(folder / "vae.pt"), "dcgan": dcgan, "stylegan2": stylegan, "pggan": pggan}


def quick_commands(priors: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """Each run's experiments.py arguments (before --quick), by run name."""
    vae, dcgan, stylegan, pggan = (str(priors[k]) for k in ("vae", "dcgan", "stylegan2", "pggan"))
    return {"dpr_fig2": ["dpr_fig2"], "prilo_fig3": ["prilo_fig3", "--prior", vae],
            "dpr_fig3": ["dpr_fig3", "--prior", vae],
            "prilo_table3": ["prilo_table3", "--prior", vae, "--inits", "mii"],
            "ilo_small_dcgan": ["ilo_small", "--dcgan", "--prior", dcgan],
            "ilo_small": ["ilo_small", "--prior", stylegan],
            "rtil_figs": ["rtil_figs", "--priors", f"dcgan={dcgan}", f"rtil_dcgan={dcgan}", f"rtil_mgan_dcgan={dcgan}",
                          f"stylegan2_small={stylegan}", f"rtil_stylegan2_small={stylegan}", f"pggan={pggan}",
                          f"rtil_mgan_pggan={pggan}"],
            "rtil_mgan_recipe": ["rtil_mgan_recipe"],
            "mgan_lr": ["mgan_lr", "--prior", dcgan],
            "mgan_lr_pggan": ["mgan_lr", "--figures", "5-pggan", "--prior", pggan],
            "ilo_l1_radius": ["ilo_l1_radius", "--prior", stylegan],
            "prilo_table1": ["prilo_table1", "--prior", vae, "--out", str(out / "table1"),
                             "--override", "data=mnist_embedded"]}


QUICK_RUNS = quick_commands(dict.fromkeys(("vae", "dcgan", "stylegan2", "pggan"), ""), Path())  # the runs, by name


def test_every_subcommand_has_a_quick_run():
    from benchmarks import experiments

    assert {command[0] for command in QUICK_RUNS.values()} == set(experiments.SUBCOMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(QUICK_RUNS))
def test_experiment_runs_in_quick_mode(name, quick_priors, tmp_path, monkeypatch):
    """The subcommand's --quick (tiny priors, 2 images, 1% of the steps) writes its JSON, table and plot."""
    from benchmarks import experiments

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    command = quick_commands(quick_priors, tmp_path)[name]
    exp = experiments.main([command[0], "--quick", "--threads", "1", *command[1:]])
    payload = json.loads(exp.out_path().read_text())
    assert payload["complete"] and payload["quick"] and payload["rows"]
    assert "|" in payload["markdown"]
    assert all(len(r["truths"]) == 16 and len(r["truths_per_image"]) == r["images"]  # pairable rows
               for r in payload["rows"] if "psnr_values" in r)
    assert list(Path(tmp_path).glob(f"{exp.name}*.png"))
    if name == "rtil_figs":  # the same file as vanilla and RTIL prior: paired differences are exactly zero
        for figure, models in {"rtil_figs": {"dcgan", "rtil_dcgan"}, "rtil_figs_mgan": {"dcgan", "rtil_mgan_dcgan"},
                               "rtil_figs_stylegan2": {"stylegan2_small", "rtil_stylegan2_small"},
                               "rtil_figs_mgan_pggan": {"pggan", "rtil_mgan_pggan"}}.items():
            result = json.loads((tmp_path / f"{figure}_quick.json").read_text())
            assert result["paired_differences"] and all(
                d["psnr_rtil_minus_vanilla_mean"] == 0 for d in result["paired_differences"]), figure
            assert set(result["prior_quality"]) == models and (tmp_path / f"{figure}_samples.png").exists()
            assert any(r["operator"] == "oracle" for r in result["rows"]), figure
    if name == "ilo_small":  # StyleGAN2 on real digits: the prior's oracle bound per space beside CSGM and ILO
        bound = next(r for r in payload["rows"] if r["operator"] == "oracle")
        assert {"psnr_range_mean", "psnr_layer1_mean"} <= set(bound)
        # the official ILO schedule has 150 steps, CSGM 1000: ILO is also run with CSGM's step count
        assert {r["label"] for r in payload["rows"]} >= {"CSGM", "ILO", "ILO, 1000 steps"}
        assert any(r["label"].startswith("ILO-l1") for r in payload["rows"])  # and with its l1 balls
    if name == "prilo_fig3":  # PRILO-MII by our rules and by the paper's, at the same starts and schedule
        assert [r["label"] for r in payload["rows"]] == ["DPR", "DPR-MII", "PRILO-MII", "PRILO-MII (paper rule)", "WF"]
    if name == "ilo_small_dcgan":  # CSGM with its steps split over starts runs only when asked for
        assert {r["label"] for r in payload["rows"]} == {"CSGM", "ILO"}
    if name == "mgan_lr_pggan":  # the PGGAN figure's own preset, on its 32x32 validation digits
        assert payload["preset"] == "rtil_figs_mgan_pggan" and exp.name.startswith("mgan_lr_pggan")
    if name.startswith("mgan_lr"):  # tuned on validation digits by the measurement error alone
        assert payload["split"] == "val" and payload["chosen"] == min(
            payload["rows"], key=lambda r: r["measurement_error_mean"])["lr"]
    if name == "ilo_l1_radius":  # tuned on validation digits, the highest mean PSNR over the CS ratios
        assert payload["split"] == "val" and all(r["split"] == "val" for r in payload["rows"])
        best = max(payload["rows"], key=lambda r: r["psnr_mean"])  # one ratio in quick mode
        assert payload["chosen"] == best["fraction"]
    if name == "rtil_mgan_recipe":  # tuned on validation digits, the chosen recipe is an RTIL one
        assert payload["split"] == "val" and all(r["split"] == "val" for r in payload["rows"])
        assert payload["chosen"] in payload["prior_quality"] and "vanilla" not in payload["chosen"]
    if name == "prilo_table1":  # tabulated again from the run folders, nothing rerun
        table1 = experiments.main([*command, "--quick", "--collect-only"])
        labels = [r["label"] for r in json.loads(table1.out_path().read_text())["rows"]]
        assert labels[0] == "oracle bound" and "DPR" in labels


@pytest.mark.slow
def test_quick_runs_of_named_methods_and_refused_options(quick_priors, tmp_path, monkeypatch):
    from benchmarks import experiments

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    runs = quick_commands(quick_priors, tmp_path)
    solved, solve = [], experiments.Experiment.solve
    monkeypatch.setattr(experiments.Experiment, "solve", lambda self, cfg, *a, **k: solved.append(cfg) or solve(self, cfg, *a, **k))
    starts = experiments.main([*runs["ilo_small_dcgan"], "--quick", "--threads", "1",
                               "--methods", "csgm_starts", "--tag", "_starts"])
    rows = json.loads(starts.out_path().read_text())["rows"]  # 4 starts x 250 of CSGM's 1000 steps, one kept
    assert [r["label"] for r in rows] == ["CSGM, best of 4 starts x 250 steps"]
    assert [(c.solver.name, c.restarts, c.solver.schedule[0].steps) for c in solved] == [("csgm", 4, round(250 * 0.01))]
    solved.clear()  # prilo_fig3 --methods: only the named rules run, the paper's = solver=prilo_paper
    paper = experiments.main([*runs["prilo_fig3"], "--quick", "--threads", "1", "--methods", "prilo_mii_paper",
                              "--tag", "_paper"])
    assert [r["label"] for r in json.loads(paper.out_path().read_text())["rows"]] == ["PRILO-MII (paper rule)"]
    assert [(c.solver.name, c.solver.select, c.solver.two_start, c.init.name) for c in solved] == [
        ("prilo_paper", "final", False, "mii")]
    solved.clear()  # an override that a method's own settings would replace is refused before anything runs
    with pytest.raises(SystemExit):
        experiments.main([*runs["ilo_small_dcgan"], "--quick", "--methods", "csgm", "csgm_starts",
                          "--override", "restarts=2"])
    assert solved == []
    with pytest.raises(SystemExit):
        experiments.main(["dpr_fig2", "--images", "0"])
    with pytest.raises(SystemExit):  # a prior file for a model no figure uses
        experiments.main(["rtil_figs", "--quick", "--priors", f"vae={quick_priors['dcgan']}"])
    with pytest.raises(SystemExit):  # ilo_small's methods are csgm, ilo, ilo_equal_compute, ilo_l1
        experiments.main(["ilo_small", "--quick", "--prior", str(quick_priors["stylegan2"]), "--methods", "ilo_l2"])
    with pytest.raises(SystemExit):  # the tag becomes part of file names
        experiments.main(["mgan_lr", "--quick", "--tag", "../x"])


@pytest.mark.parametrize("argv, message", [  # each would be ignored by that subcommand, or names no method
    (["dpr_fig3", "--quick", "--methods", "wf", "--prior", "p.pt"], "dpr_fig3 does not read it"),
    (["prilo_fig3", "--quick", "--collect-only"], "prilo_fig3 does not read it"),  # it would run the whole sweep
    (["ilo_small", "--quick", "--dataset", "fmnist"], "an option of prilo_table1"),
    (["dpr_fig2", "--quick", "--prior", "p.pt"], "dpr_fig2 does not read it"),
    (["prilo_fig3", "--quick", "--methods", "prilo", "--prior", "p.pt"], "not a method of this run"),
    (["prilo_table1", "--quick", "--first-image", "64"], "prilo_table1 does not read it"),  # invert.py rows from 0
    (["prilo_fig3", "--quick", "--first-image", "-1"], "--first-image must be >= 0"),
    (["mgan_lr", "--quick", "--figures", "4", "--prior", "p.pt"], "one mGANprior figure at a time"),  # ILO's figure
    (["mgan_lr", "--quick", "--figures", "5", "5-pggan"], "one mGANprior figure at a time"),
])
def test_an_option_the_subcommand_would_ignore_is_refused_before_anything_runs(argv, message, tmp_path, capsys,
                                                                                monkeypatch):
    from benchmarks import experiments

    monkeypatch.setattr(experiments, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # p.pt does not exist: refused before any prior is read
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(argv)
    assert exit_info.value.code != 0 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_images_past_the_end_of_the_test_split_are_refused_before_the_prior_is_read(tmp_path, capsys, monkeypatch):
    from benchmarks import experiments

    monkeypatch.setattr(experiments, "RESULTS_DIR", tmp_path)
    monkeypatch.chdir(tmp_path)  # p.pt does not exist
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["prilo_fig3", "--images", "2", "--first-image", "100000", "--prior", "p.pt"])
    assert exit_info.value.code != 0 and "lower --images or --first-image" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_a_task_sweep_refuses_an_override_of_any_tasks_axis_before_loading_or_solving_anything(tmp_path):
    from argparse import Namespace

    from benchmarks import experiments

    args = Namespace(tag="", quick=False, images=2, step_fraction=1.0, override=["operator.observed_ratio=0.3"])
    exp = experiments.Experiment("ilo_small_dcgan", args)
    with pytest.raises(UserInputError, match="operator.observed_ratio"):  # inpainting's axis, the second task
        experiments._task_sweep(exp, {"CSGM": ["solver=csgm"]}, ["cs_circulant", "inpainting"],
                                str(tmp_path / "no_prior.pt"), None, None)


@pytest.mark.parametrize("preset, override, data, prior", [
    ("prilo_fig3_gaussian", [], "mnist_embedded", "outputs/priors/vae_mnist_embedded.pt"),
    ("prilo_fig3_gaussian", ["data=mnist", "data.root=/some/mnist"], "mnist", "outputs/priors/vae_mnist.pt"),
    ("prilo_fig3_gaussian", ["data=fashion_mnist"], "fashion_mnist", "outputs/priors/vae_fashion_mnist.pt"),
    ("dpr_fig3", [], "mnist_embedded", "outputs/priors/vae_dpr_mnist_embedded.pt"),  # the preset's own model
    ("dpr_fig3", ["data=mnist", "data.root=/some/mnist"], "mnist", "outputs/priors/vae_dpr_mnist.pt"),
])
def test_the_test_images_and_default_prior_follow_an_override_of_the_data(preset, override, data, prior):
    """``--override data=D`` composes every point for D, so the images and the default prior must be D's too
    (they came from the preset's data before, silently pairing D's configs with the preset's digits)."""
    from argparse import Namespace

    from benchmarks import experiments

    exp = experiments.Experiment(preset, Namespace(tag="", step_fraction=1.0, override=override))
    assert experiments._data_choice(exp) == data
    assert experiments._default_prior(exp) == prior
    assert exp.config().data == compose_experiment(preset, *override).data


def test_a_stopped_run_keeps_the_last_complete_result(tmp_path, monkeypatch):
    """Rows are saved as they come, beside the published JSON, which only a complete run replaces."""
    from argparse import Namespace

    from benchmarks import common, experiments

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(experiments, "RESULTS_DIR", tmp_path)
    published = tmp_path / "dpr_fig2.json"
    published.write_text('{"complete": true, "rows": ["earlier"]}')
    args = Namespace(tag="", quick=False, images=3, first_image=0, step_fraction=1.0, override=[])
    exp = experiments.Experiment("dpr_fig2", args)
    exp.add({"label": "DPR", "psnr_mean": 20.0})
    partial = tmp_path / "dpr_fig2.partial.json"
    assert json.loads(published.read_text())["rows"] == ["earlier"]
    assert json.loads(partial.read_text())["rows"][0]["label"] == "DPR"
    exp.save(complete=True)
    result = json.loads(published.read_text())
    assert result["complete"] and result["rows"][0]["label"] == "DPR" and not partial.exists()


def test_instance_banks_equal_their_instances_solved_one_by_one():
    from operators.gaussian import GaussianPhaseRetrievalBank

    bank = RandomReLUGenerator(3, 20, 50, seed=7, instances=3).requires_grad_(False)
    ops = GaussianPhaseRetrievalBank((1, 1, 50), 3, ratio=0.4, seed=7)
    z = bank.sample_latent(6, generator=torch.Generator().manual_seed(0))  # two rows per instance
    for b in range(6):
        single, op = RandomReLUGenerator(3, 20, 50, seed=7 + b % 3), GaussianPhaseRetrieval((1, 1, 50), ratio=0.4, seed=7 + b % 3)
        assert torch.allclose(bank(z)[b], single(z[b:b + 1])[0], atol=1e-6)
        assert torch.allclose(ops(bank(z))[b], op(single(z[b:b + 1]))[0], atol=1e-5)
        v = torch.randn(6, op.m)
        assert torch.allclose(ops.adjoint(v)[b], op.adjoint(v[b:b + 1])[0], atol=1e-5)
    with pytest.raises(ValueError, match="does not split"):
        bank(z[:4])


def test_paired_psnr_pairs_rows_by_task_point_and_refuses_unpaired_runs(tmp_path):
    from benchmarks import paired_psnr

    def rows(label, offset, images=4):
        return [{"label": label, "operator": op, "ratio": ratio, "psnr_values": [10.0 + i + offset for i in range(images)],
                 "psnr_mean": 11.5 + offset, "psnr_ci95": 2.4}
                for op, ratio in (("inpainting", 0.1), ("super_resolution", 4))] + [
                {"label": "oracle bound", "operator": "oracle", "ratio": None, "psnr_values": [40.0] * images}]

    base, other = tmp_path / "a.json", tmp_path / "b.json"
    base.write_text(json.dumps({"rows": rows("v: ILO", 0.0)}))
    other.write_text(json.dumps({"rows": rows("r: ILO", -1.5)}))
    differences = paired_psnr.main([str(base), "v: ILO", str(other), "r: ILO", "--plot", str(tmp_path / "pair")])
    assert [(d["operator"], d["ratio"]) for d in differences] == [("inpainting", 0.1), ("super_resolution", 4)]
    assert {p.name for p in tmp_path.glob("pair_*.png")} == {"pair_inpainting.png", "pair_super_resolution.png"}
    assert all(d["psnr_difference_mean"] == pytest.approx(-1.5) and d["psnr_difference_ci95"] == pytest.approx(0)
               and d["better"] == 0 and d["images"] == 4 for d in differences)
    other.write_text(json.dumps({"rows": rows("r: ILO", 0.0, images=3)}))
    for argv in ([str(base), "v: ILO", str(other), "r: ILO"],  # different numbers of images: nothing to pair
                 [str(base), "v: CSGM", str(other), "r: ILO"]):  # no such label
        with pytest.raises(SystemExit):
            paired_psnr.main(argv)
    fingerprinted = [{**r, "truths": "a"} for r in rows("v: ILO", 0.0)]
    base.write_text(json.dumps({"rows": fingerprinted}))
    other.write_text(json.dumps({"rows": [{**r, "truths": "b"} for r in rows("r: ILO", 0.0)]}))  # other images, same count
    with pytest.raises(SystemExit):
        paired_psnr.main([str(base), "v: ILO", str(other), "r: ILO"])
    other.write_text(json.dumps({"rows": [{**r, "label": "r: ILO"} for r in fingerprinted]}))
    assert len(paired_psnr.main([str(base), "v: ILO", str(other), "r: ILO"])) == 2
    per_image = [{**r, "truths_per_image": ["i0", "i1", "i2", "i3"]} for r in fingerprinted]
    base.write_text(json.dumps({"rows": per_image}))
    joined = [{**r, "label": "r: ILO", "truths": "a0+a1"} for r in per_image]  # a run joined from parts
    other.write_text(json.dumps({"rows": joined}))
    assert len(paired_psnr.main([str(base), "v: ILO", str(other), "r: ILO"])) == 2  # per-image fingerprints agree
    other.write_text(json.dumps({"rows": [{**r, "truths_per_image": ["i0", "i1", "i3", "i2"]} for r in joined]}))
    with pytest.raises(SystemExit):  # the same whole-row fingerprint does not rescue other images
        paired_psnr.main([str(base), "v: ILO", str(other), "r: ILO"])


def test_paired_psnr_pairs_runs_on_the_images_both_solved(tmp_path, capsys):
    """--common-images: a 4-image run from image 0 and a 2-image part from image 2 pair on images 2-3; the cut
    keeps each image's own PSNR and fingerprint, and nothing is paired across other images."""
    from benchmarks import paired_psnr

    def results(path, label, first, values, fingerprints):
        row = {"label": label, "operator": "inpainting", "ratio": 0.1, "images": len(values), "psnr_values": values,
               "psnr_mean": sum(values) / len(values), "psnr_ci95": 1.0, "ssim_mean": 0.5, "ssim_ci95": 0.1,
               "measurement_error_mean": 1e-3, "truths": "whole", "truths_per_image": fingerprints}
        path.write_text(json.dumps({"first_image": first, "rows": [row]}))
        return str(path)

    run = results(tmp_path / "run.json", "ILO", 0, [10.0, 11.0, 12.0, 13.0], ["a", "b", "c", "d"])
    part = results(tmp_path / "part.json", "ILO", 2, [14.0, 13.0], ["c", "d"])
    with pytest.raises(SystemExit):  # without the flag, runs on other images do not pair
        paired_psnr.main([run, "ILO", part, "ILO"])
    capsys.readouterr()
    (d,) = paired_psnr.main([run, "ILO", part, "ILO", "--common-images", "--plot", str(tmp_path / "p")])
    assert (d["images"], d["better"]) == (2, 1) and d["psnr_difference_mean"] == pytest.approx(1.0)
    out = capsys.readouterr().out
    assert "test images 2-3" in out and "| – / 1.00e-03 |" in out  # the run's error is of other images too, the part's not
    assert (tmp_path / "p_inpainting.png").exists()
    elsewhere = results(tmp_path / "elsewhere.json", "ILO", 4, [14.0, 13.0], ["e", "f"])
    other_images = results(tmp_path / "other.json", "ILO", 2, [14.0, 13.0], ["c", "x"])
    for second in (elsewhere, other_images):  # no common image; other ground truths on the common ones
        with pytest.raises(SystemExit):
            paired_psnr.main([run, "ILO", second, "ILO", "--common-images"])
        assert capsys.readouterr().err.strip().count("\n") == 0


def test_paired_psnr_pairs_the_rows_of_a_table_as_one_point(tmp_path, capsys):
    """PRILO table 3's rows have a label and no sweep axis: each pairs as a single point over its images."""
    from benchmarks import paired_psnr

    path = tmp_path / "table3.json"
    path.write_text(json.dumps({"rows": [
        {"label": label, "init": "mii", "ablation": label.split("/")[1], "truths": "t", "psnr_mean": 0.0,
         "psnr_values": [20.0 + offset * i for i in range(4)]} for label, offset in (("mii/full", 1.0), ("mii/only_a", 2.0))]}))
    (difference,) = paired_psnr.main([str(path), "mii/full", str(path), "mii/only_a"])
    assert difference["psnr_difference_mean"] == pytest.approx(1.5) and (difference["better"], difference["images"]) == (3, 4)
    assert "| all images | +1.50 ± " in capsys.readouterr().out
    with pytest.raises(SystemExit):  # nothing to draw against
        paired_psnr.main([str(path), "mii/full", str(path), "mii/only_a", "--plot", str(tmp_path / "p")])
    rows = json.loads(path.read_text())["rows"]
    path.write_text(json.dumps({"rows": rows + rows[:1]}))  # two rows of one label, nothing to tell them apart
    with pytest.raises(SystemExit):
        paired_psnr.main([str(path), "mii/full", str(path), "mii/only_a"])


def test_truth_digest_names_the_images_and_their_order():
    from benchmarks.experiments import truth_digest

    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert truth_digest(x) == truth_digest(x.clone().double()) and len(truth_digest(x)) == 16
    assert len({truth_digest(x), truth_digest(x.flip(0)), truth_digest(x[:2]), truth_digest(x + 1e-6)}) == 4


def test_paired_psnr_pairs_measurement_sweeps_by_operator_and_m(tmp_path, capsys):
    """Rows of prilo_fig3 / dpr_fig3 name their point by ``axis`` = (operator, m), not by a task ratio."""
    from benchmarks import paired_psnr

    def rows(label, offset):
        return [{"label": label, "operator": op, "m": m, "axis": ["operator", "m"], "psnr_mean": 10.0 + offset,
                 "psnr_ci95": 1.0, "psnr_values": [9.0 + offset + (m == 50) * i for i in range(3)]}
                for op in ("gaussian_pr", "complex_gaussian_pr") for m in (25, 50)]

    path = tmp_path / "fig3.json"
    path.write_text(json.dumps({"rows": rows("DPR-MII", 0.0) + rows("PRILO-MII", 2.0)}))
    differences = paired_psnr.main([str(path), "DPR-MII", str(path), "PRILO-MII", "--plot", str(tmp_path / "p")])
    assert [(d["operator"], d["m"]) for d in differences] == [(op, m) for op in ("gaussian_pr", "complex_gaussian_pr")
                                                              for m in (25, 50)]
    assert all(d["psnr_difference_mean"] == pytest.approx(2.0) and d["better"] == 3 for d in differences)
    assert "| task | m | PSNR difference (dB)" in capsys.readouterr().out
    assert {p.name for p in tmp_path.glob("p_*.png")} == {"p_gaussian_pr.png", "p_complex_gaussian_pr.png"}


def test_table1_figure_draws_methods_as_categories_and_each_oracle_bound_as_a_reference(tmp_path, monkeypatch):
    from benchmarks import experiments

    bound = {"label": "oracle bound", "psnr_mean": 30.0, "psnr_ci95": 0.3, "psnr_aligned_mean": None,
             **{f"psnr_{s}_{k}": v for s, m in (("range", 25.0), ("layer1", 28.0), ("layer2", 30.0))
                for k, v in (("mean", m), ("ci95", 0.2))}}
    methods = [{"label": "DPR", "psnr_mean": 14.0, "psnr_ci95": 0.4, "psnr_aligned_mean": 22.0,
                "psnr_aligned_ci95": 0.3, "paper_psnr": 24.0},
               {"label": "HIO", "psnr_mean": 7.5, "psnr_ci95": 0.1, "psnr_aligned_mean": 80.0, "psnr_aligned_ci95": 2.0}]
    seen = {}
    monkeypatch.setattr(experiments, "plot_categories", lambda *a, **k: seen.update(args=a) or a[2])
    experiments.plot_table1([bound, *methods], tmp_path / "t1.png", "t")
    series, categories, _, _, _, references = seen["args"]
    assert categories == ["DPR", "HIO"]
    assert references == {"oracle bound: range": (25.0, 0.2), "oracle bound: layer1": (28.0, 0.2),
                          "oracle bound: layer2": (30.0, 0.2)}
    assert series["paper"]["y"] == [24.0, None] and series["PSNR aligned (oracle)"]["y"] == [22.0, 80.0]
    monkeypatch.undo()
    path = experiments.plot_table1([bound, *methods], tmp_path / "t1.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
