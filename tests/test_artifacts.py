"""Never lose work: exports keep earlier files, priors say how long they were trained."""
from pathlib import Path

import pytest

from common.artifacts import publish
from common.prior_choice import default_prior_path, invert_users
from lightning_modules.callbacks import published_message
from priors.io import load_prior
from priors.provenance import prior_report, short_training
from tests.cli import run_inprocess, tiny_vae_prior


def test_publish_keeps_an_existing_file_unless_overwrite(tmp_path):
    src, dst = tmp_path / "new.pt", tmp_path / "out" / "prior.pt"
    src.write_bytes(b"first")
    assert publish(src, dst) == (dst, False)
    src.write_bytes(b"second")
    assert publish(src, dst) == (tmp_path / "out" / "prior.v2.pt", True)
    src.write_bytes(b"third")
    assert publish(src, dst) == (tmp_path / "out" / "prior.v3.pt", True)
    assert dst.read_bytes() == b"first" and (tmp_path / "out" / "prior.v2.pt").read_bytes() == b"second"
    src.write_bytes(b"fourth")
    assert publish(src, dst, overwrite=True) == (dst, False) and dst.read_bytes() == b"fourth"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["prior.pt", "prior.v2.pt", "prior.v3.pt"]  # no temp left


def test_messages_say_what_was_written_and_what_invert_uses(tmp_path):
    default = default_prior_path("vae", "mnist_embedded")
    assert default == Path("outputs/priors/vae_mnist_embedded.pt")
    assert invert_users(default, "mnist_embedded") == "invert.py"  # the default solver's prior
    dcgan = "outputs/priors/dcgan_mnist_embedded.pt"
    assert invert_users(dcgan, "mnist_embedded") == "invert.py solver=ilo_dcgan|prilo_dcgan"
    assert invert_users("outputs/priors/rtil_dcgan_mnist_embedded.pt", "mnist_embedded") is None
    kept = published_message("prior", default.with_name("vae_mnist_embedded.v2.pt"), default, True, False,
                             "invert.py", default, "prior.checkpoint")
    assert "was kept (invert.py keeps using it by default" in kept
    assert kept.endswith("prior.checkpoint=outputs/priors/vae_mnist_embedded.v2.pt")
    fresh = published_message("prior", default, default, False, False, "invert.py", default, "prior.checkpoint")
    assert fresh.endswith("invert.py now uses it by default")
    elsewhere = published_message("prior", tmp_path / "p.pt", tmp_path / "p.pt", False, False, "invert.py", default,
                                  "prior.checkpoint")
    assert elsewhere.endswith(f"use it with prior.checkpoint={tmp_path / 'p.pt'}")


@pytest.mark.parametrize("record, reason", [
    ({"epochs": 100, "steps": 6300, "planned_epochs": 100, "planned_steps": -1}, None),
    ({"epochs": 1, "steps": 63, "planned_epochs": 100, "planned_steps": -1}, "1 of the 100 epochs"),
    ({"epochs": 3, "steps": 9, "planned_epochs": -1, "planned_steps": 10}, "9 of the 10 steps"),
    ({"epochs": 100, "steps": 300, "planned_epochs": 100, "limit_train_batches": 3.0}, "limit_train_batches=3"),
    ({"epochs": 1, "steps": 1, "fast_dev_run": True}, "fast_dev_run"),
])
def test_short_training_is_recognised(record, reason):
    found = short_training(record)
    assert (found is None) if reason is None else (reason in found)


def test_prior_report_without_a_record(tmp_path):
    path = tiny_vae_prior(tmp_path / "p.pt")
    line, warning = prior_report(path, load_prior(path))
    assert line.startswith(f"prior: {path} (training length not recorded): class VAE") and warning is None


def test_a_smoke_training_keeps_the_earlier_prior_and_says_so(tmp_path):
    export = tiny_vae_prior(tmp_path / "priors" / "vae.pt")  # stands for the full export
    before = export.read_bytes()
    proc = run_inprocess("train.py", "model.module.prior.hidden_dim=32", "model.module.prior.latent_dim=8",
                         "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                         "trainer.enable_progress_bar=false", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}",
                         f"export_path={export}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = export.with_name("vae.v2.pt")
    assert export.read_bytes() == before and new.is_file()
    assert f"{export} already held a prior and was kept" in proc.stdout
    assert f"prior.checkpoint={new}" in proc.stdout
    line, warning = prior_report(new, load_prior(new))
    assert "trained 1 epoch, 2 optimizer steps" in line
    assert warning is not None and "1 of the 100 epochs its model config plans (a smoke run?)" in warning
