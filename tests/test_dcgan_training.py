"""model=dcgan / rtil_dcgan: the configs users train, a few steps, λ = 1 is vanilla, sample quality logged."""
from __future__ import annotations

import csv

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

from common.cli import CONF_DIR
from common.instantiate import instantiate
from lightning_modules.adversarial import AdversarialModule
from tests.cli import run_cli, run_inprocess

NARROW = ["model.module.prior.width=4", "model.module.num_samples=4"]
DATA = [{"image": torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(i)), "index": i} for i in range(12)]


def module_for(model: str, *overrides: str) -> AdversarialModule:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={model}", *NARROW, *overrides])
    torch.manual_seed(0)
    return instantiate(cfg.model.module)


def fit(module: AdversarialModule, iterations: int = 3) -> AdversarialModule:
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, max_epochs=1, limit_train_batches=iterations).fit(module, DataLoader(DATA, batch_size=4))
    return module


def test_configs_follow_the_default_data_and_the_paper_recipe():
    vanilla, rtil = module_for("dcgan"), module_for("rtil_dcgan")
    assert vanilla.prior.image_shape == (1, 28, 28) and vanilla.prior.num_layers == 3
    assert repr(vanilla.loss).startswith("BCE") and vanilla.hparams.betas == [0.5, 0.999] and vanilla.hparams.lr == 2e-4
    assert vanilla.members == [(0, 1.0)] and rtil.members == [(0, 0.5), (1, 0.25), (2, 0.25)]
    faces = module_for("rtil_dcgan", "data.image_size=64", "data.channels=3")
    assert faces.prior.image_shape == (3, 64, 64) and [k for k, _ in faces.members] == [0, 1, 2, 3, 4]


def test_few_steps_without_nans_and_lambda_one_is_vanilla():
    vanilla = fit(module_for("dcgan"))
    one = fit(module_for("rtil_dcgan", "model.module.rtil.lambda_=1.0"))
    for (name, p), q in zip(vanilla.state_dict().items(), one.state_dict().values()):
        assert torch.equal(p, q), name
    rtil = fit(module_for("rtil_dcgan"))
    assert int(rtil.iteration) == 3 and all(torch.isfinite(t).all() for t in rtil.state_dict().values())
    assert not torch.equal(rtil.generator.blocks[0][0].weight, vanilla.generator.blocks[0][0].weight)
    bn = rtil.prior.blocks[1][1]
    assert int(bn.num_batches_tracked) > 0 and torch.isfinite(bn.running_var).all()  # EMA prior carries BN statistics


def test_train_py_model_dcgan_exports_a_prior_and_logs_sample_quality(tmp_path, monkeypatch):
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path / "cache"))
    out, export = tmp_path / "run", tmp_path / "dcgan.pt"
    proc = run_inprocess("train.py", "model=rtil_dcgan", *NARROW, "trainer.max_steps=8", "data.batch_size=16",
                         "logger=csv", "sample_quality.every_n_steps=4", "sample_quality.num_samples=50",
                         "sample_quality.classifier.steps=20", "trainer.enable_progress_bar=false", f"hydra.run.dir={out}",
                         f"export_path={export}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from priors.io import load_prior

    prior = load_prior(export)
    assert type(prior).__name__ == "DCGANPrior" and prior.image_shape == (1, 28, 28)
    rows = [r for f in out.rglob("metrics.csv") for r in csv.DictReader(open(f)) if r.get("sample_quality/fd")]
    assert [int(r["step"]) for r in rows] == [4, 8] and all(float(r["sample_quality/fd"]) > 0 for r in rows)
    unlabelled = run_inprocess("train.py", "model=dcgan", "data=prior_samples", f"data.checkpoint={export}",
                               "data.channels=1", "data.image_size=28", "sample_quality.every_n_steps=4",
                               f"hydra.run.dir={tmp_path / 'bad'}", f"export_path={tmp_path / 'bad.pt'}", "logger=csv")
    assert unlabelled.returncode == 2 and "no class labels" in unlabelled.stderr
    assert len(unlabelled.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.pt").exists()


@pytest.mark.slow
def test_training_benchmark_quick_mode(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    proc = run_cli("benchmarks/dcgan_training.py", "--quick", "--models", "dcgan")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "dcgan_training_quick" / "dcgan_training.json").read_text())
    row = result["rows"][0]
    assert row["model"] == "dcgan" and row["iterations"] == 20 and [r["iteration"] for r in row["curve"]] == [10, 20]
    assert result["reference"]["real_test_digits"]["fd"] < result["reference"]["uniform_noise"]["fd"] / 50
    assert (tmp_path / "dcgan_training_quick" / "dcgan_training.png").stat().st_size > 0
