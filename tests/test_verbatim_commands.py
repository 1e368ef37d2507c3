"""Every model's and every solver's command as a new user types it, on the default data, for a step or two.

``python train.py model=M`` and ``python invert.py solver=S`` run in this process in a fresh working
directory (so the default ``outputs/priors/...`` paths are those of a fresh clone), with only the run
length, batch, logger and (training) the network widths changed. A new file in conf/model or conf/solver is covered by being there. The two-process form
(``trainer.devices=2``) is tests/test_train.py's design-card test.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from common.cli import CONF_DIR
from priors.io import load_prior, save_prior
from tests.cli import run_inprocess, tiny_vae_prior


def _run(script: str, argv: list[str], edit=None) -> tuple[int, str, str]:
    proc = run_inprocess(f"{script}.py", *argv, edit=edit)
    return proc.returncode, proc.stdout, proc.stderr

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
SOLVERS = sorted(p.stem for p in (CONF_DIR / "solver").glob("*.yaml"))
SHORT_TRAIN = ["trainer.max_steps=2", "data.batch_size=4", "logger=csv", "trainer.enable_progress_bar=false"]
#: what the export message says will load a model's prior by default
USED_BY = {"vae": "invert.py",
           "stylegan2": "invert.py solver=ilo_stylegan|ilo_stylegan_l1|ilo_stylegan_mse|prilo_mii_stylegan|prilo_stylegan",
           "pggan": "invert.py solver=mganprior", "dcgan": "invert.py solver=ilo_dcgan|prilo_dcgan"}
#: the resolution each model brings to the 28x28 default digits
RESOLUTION = {"stylegan2": 32, "stylegan2_small": 32, "rtil_stylegan2": 32, "rtil_stylegan2_small": 32, "pggan": 32, "rtil_pggan": 32, "rtil_mgan_pggan": 32}


def expected_prior(solver: str) -> str:
    """The prior a solver is made for, by family name."""
    for family, prior in (("stylegan", "stylegan2"), ("dcgan", "dcgan"), ("mganprior", "pggan")):
        if family in solver:
            return prior
    return "vae"


def tiny_priors(folder: Path) -> None:
    """Small priors at the paths ``python train.py model=M`` exports to on the default data."""
    from priors.dcgan import DCGANPrior
    from priors.pggan import PGGANPrior
    from priors.stylegan2 import StyleGAN2Prior

    tiny_vae_prior(folder / "vae_mnist_embedded.pt")
    torch.manual_seed(0)
    for name, prior in (("stylegan2", StyleGAN2Prior(size=32, channels=1, style_dim=16, n_mlp=1, max_channels=4)),
                        ("dcgan", DCGANPrior(size=28, channels=1, latent_dim=8, width=4)),
                        ("pggan", PGGANPrior(size=32, channels=1, latent_dim=8, max_channels=4))):
        save_prior({"prior_config": prior.config(), "state_dict": prior.state_dict(), "extra": {}},
                   folder / f"{name}_mnist_embedded.pt")


@pytest.fixture(scope="module")
def fresh_clone_with_priors(tmp_path_factory):
    root = tmp_path_factory.mktemp("clone")
    tiny_priors(root / "outputs" / "priors")
    return root


def narrow(cfg) -> None:
    """Narrow networks (the widths the model configs name): the data, resolution and code path stay."""
    with open_dict(cfg):
        module = cfg.model.module
        for key, value in (("max_channels", 4), ("width", 4), ("hidden_dim", 32), ("style_dim", 16), ("n_mlp", 1),
                           ("latent_dim", 8)):
            if key in module.get("prior", {}):
                module.prior[key] = value
        for net in ("encoder", "critic"):
            if "hidden" in module.get(net, {}):
                module[net].hidden = [16]


@pytest.mark.parametrize("model", MODELS)
def test_train_model_runs_on_the_default_data(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "priors").mkdir(parents=True)
    if model == "encoder_li":
        tiny_vae_prior(tmp_path / "outputs" / "priors" / "vae_mnist_embedded.pt")  # the prior it is trained for
    before = set((tmp_path / "outputs" / "priors").iterdir())
    code, out, err = _run("train", [f"model={model}", *SHORT_TRAIN, f"hydra.run.dir={tmp_path / 'run'}"],
                                    edit=narrow)
    assert code == 0, err[-3000:]
    size = RESOLUTION.get(model, 28)
    exported = set((tmp_path / "outputs" / "priors").iterdir()) - before
    if model == "encoder_li":  # trains an encoder for the prior, no prior
        assert not exported and (tmp_path / "outputs" / "encoders" / "encoder_li_mnist_embedded.pt").is_file()
        return
    assert exported == {tmp_path / "outputs" / "priors" / f"{model}_mnist_embedded.pt"}
    assert load_prior(exported.pop()).image_shape == (1, size, size)
    if model in USED_BY:
        assert f"prior written to outputs/priors/{model}_mnist_embedded.pt; {USED_BY[model]} now uses it" in out


def test_a_model_brings_its_resolution_and_the_users_size_wins():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert compose("train", overrides=["model=rtil_stylegan2"]).data.image_size == 32
        assert compose("train", overrides=["model=stylegan2", "data.image_size=64"]).data.image_size == 64
        assert compose("train", overrides=["model=pggan", "data=celeba"]).data.image_size == 32  # stated in its config
        assert compose("invert", overrides=["solver=ilo_stylegan", "data.image_size=64"]).data.image_size == 64
        assert compose("invert", overrides=["solver=ilo_stylegan", "prior=vae"]).data.image_size == 28


def shorten(cfg) -> None:
    """A step or two of every stage, loop and candidate search; the solver's structure stays."""
    with open_dict(cfg):
        for key, value in (("steps", 1), ("iterations", 2), ("power_iterations", 2)):
            if key in cfg.solver:
                cfg.solver[key] = value
        if "stage_defaults" in cfg.solver and "steps" in cfg.solver.stage_defaults:
            cfg.solver.stage_defaults.steps = 1
        for entry in cfg.solver.get("schedule", []):
            for stage in entry.get("stages", [entry]):
                if "steps" in stage:
                    stage.steps = 1
        if "num_candidates" in cfg.init:
            cfg.init.num_candidates = 4


@pytest.mark.parametrize("solver", SOLVERS)
def test_invert_solver_runs_with_its_defaults(solver, fresh_clone_with_priors, tmp_path, monkeypatch):
    monkeypatch.chdir(fresh_clone_with_priors)
    out_dir = tmp_path / "run"
    argv = [f"solver={solver}", "num_images=1", "batch_size=1", "restarts=2", "logger=csv",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={out_dir}"]
    code, out, err = _run("invert", argv, edit=shorten)
    assert code == 0, err[-3000:]
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["num_images"] == 1 and summary["method"].startswith(summary["config"]["solver"]["name"])
    x_hat = torch.load(out_dir / "reconstructions.pt")["x_hat"]
    if summary["config"]["solver"]["_target_"].startswith("solvers.classical"):
        assert "prior file" not in out and x_hat.shape == (1, 1, 28, 28)
        return
    prior = expected_prior(solver)
    path = f"outputs/priors/{prior}_mnist_embedded.pt"
    assert f"prior file: {path} (" in out and f"conf/prior/{prior}.yaml)" in out
    assert x_hat.shape == (1, *load_prior(path).image_shape)


@pytest.mark.parametrize("script, argv, command", [
    ("invert", ["solver=ilo_stylegan"], "`python train.py model=stylegan2`"),
    ("invert", ["solver=mganprior", "data.image_size=64", "data.batch_size=8"],
     "`python train.py model=pggan data.image_size=64`"),
    ("invert", [], "`python train.py model=vae`"),
    ("train", ["model=encoder_li"], "`python train.py model=vae`"),
])
def test_a_missing_default_prior_names_the_command_that_writes_it(script, argv, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(script, [*argv, "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and command in lines[0], err
    assert not (tmp_path / "outputs").exists()
