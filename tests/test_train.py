"""train.py as users run it: VAE training, export, DDP, logging, bad input.

In this process (tests.cli.run_inprocess: the command's own check and entry function) except DDP (``slow``)."""
import pytest
import torch

from priors.io import load_prior
from tests.cli import run_cli, run_inprocess

TINY = ("model.module.prior.hidden_dim=32", "model.module.prior.latent_dim=8", "trainer.max_epochs=1",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.check_val_every_n_epoch=1",
        "trainer.enable_progress_bar=false")


def test_train_vae_exports_a_loadable_prior(tmp_path):
    out, export = tmp_path / "run", tmp_path / "priors" / "vae.pt"
    proc = run_inprocess("train.py", *TINY, "logger=csv", f"hydra.run.dir={out}", f"export_path={export}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    prior = load_prior(export)
    assert prior.image_shape == (1, 28, 28) and prior.latent_shape == (8,)
    assert torch.equal(load_prior(out / "prior.pt").decoder[0].weight, prior.decoder[0].weight)
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert load_prior(out / "checkpoints" / "last.ckpt").num_layers == 3  # Lightning checkpoints load too
    metrics = (out / "csv" / "metrics.csv").read_text()
    assert "train/recon" in metrics and "val/kl" in metrics
    assert list((out / "csv" / "images").glob("val_samples*.png"))


def test_train_with_wandb_offline_and_dpr_variant(tmp_path):
    out = tmp_path / "wb"
    proc = run_inprocess("train.py", "model=vae_dpr", *TINY, "logger=wandb", f"hydra.run.dir={out}",
                   f"export_path={tmp_path / 'p.pt'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((out / "wandb").glob("offline-run-*"))
    assert load_prior(tmp_path / "p.pt").latent_shape == (8,)  # the TINY override wins over vae_dpr's 20


def test_last_epoch_is_validated_when_not_a_multiple_of_the_interval(tmp_path):
    """A 2-epoch run under check_val_every_n_epoch=5 (Lightning alone would validate never) logs validation
    once, for its last epoch."""
    import csv

    out = tmp_path / "run"
    short = [o for o in TINY if not o.startswith(("trainer.max_epochs", "trainer.check_val"))]
    proc = run_inprocess("train.py", *short, "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=5",
                         "logger=csv", f"hydra.run.dir={out}", f"export_path={tmp_path / 'p.pt'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "csv" / "metrics.csv") as file:
        validated = {row["epoch"] for row in csv.DictReader(file) if row.get("val/kl")}
    assert validated == {"1"}


def test_final_epoch_validation_leaves_the_configured_interval_in_place_after_fit(tmp_path):
    """The last epoch validates, and a later fit or validate call on the same trainer sees the interval it was
    configured with."""
    from lightning import Trainer
    from lightning.pytorch.demos.boring_classes import BoringModel

    from lightning_modules.callbacks import ValidateFinalEpoch

    class CountValidations(BoringModel):
        def __init__(self):
            super().__init__()
            self.validated_epochs = []

        def on_validation_epoch_end(self):
            if not self.trainer.sanity_checking:
                self.validated_epochs.append(self.current_epoch)

    model = CountValidations()
    trainer = Trainer(max_epochs=3, check_val_every_n_epoch=5, callbacks=[ValidateFinalEpoch()], logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(model)
    assert model.validated_epochs == [2]
    assert trainer.check_val_every_n_epoch == 5


@pytest.mark.slow
def test_design_card_command_trains_on_two_cpu_processes(tmp_path):
    """`python train.py model=rtil_stylegan2 trainer.devices=2` on a CPU machine: two DDP processes (the
    subprocess launcher re-runs the command), the default data at the model's 32x32, the default run
    directory and export, from a fresh working directory. Only the network width and run length are cut."""
    small = ("model.module.prior.style_dim=16", "model.module.prior.n_mlp=1", "model.module.prior.max_channels=4")
    proc = run_cli("train.py", "model=rtil_stylegan2", "trainer.devices=2", *small, "trainer.max_steps=2",
                   "data.batch_size=4", "logger=csv", "trainer.enable_progress_bar=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    assert load_prior(tmp_path / "outputs/priors/rtil_stylegan2_mnist_embedded.pt").image_shape == (1, 32, 32)
    runs = list((tmp_path / "outputs/train/rtil_stylegan2_mnist_embedded").iterdir())
    assert len(runs) == 1 and (runs[0] / "prior.pt").is_file()  # both ranks in one run directory


@pytest.mark.parametrize("override, needle", [
    ("model=no_such_model", "no_such_model"),
    ("trainer.no_such_option=1", "no_such_option"),
    ("data=mnist", "data.root"),
    ("data=image_folder", "image"),
    ("ckpt_path=/no/such.ckpt", "ckpt_path"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, override, needle):
    out = tmp_path / "bad"
    proc = run_inprocess("train.py", *TINY, "logger=csv", f"hydra.run.dir={out}",
                         f"export_path={tmp_path / 'x.pt'}", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "x.pt").exists()
