"""The pre-Hydra config check accepts what works; resuming and method labels."""
import pytest
import torch

from common.cli import check_config, check_logger_login
from common.errors import UserInputError
from tests.bad_inputs import TINY_TRAIN, Case, run_entry


@pytest.mark.parametrize("config_name, argv", [
    ("invert", ["+trainer.profiler=simple"]),  # any Trainer argument
    ("invert", ["+solver.loss.lpips=0.1"]),  # inside a dict argument of a class
    ("invert", ["+logger.entity=me", "logger=wandb"]),  # WandbLogger passes **kwargs on to wandb.init
    ("invert", ["++seed=3", "operator=gaussian_pr", "operator.m=200"]),
    ("train", ["+model.module.num_logged_images=4", "+data.crop_size=20"]),  # a base-class argument
])
def test_valid_overrides_pass(config_name, argv):
    check_config(config_name, argv)


def test_wandb_online_accepts_a_login(tmp_path, monkeypatch):
    online = {"_target_": "lightning.pytorch.loggers.WandbLogger", "offline": False}
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(UserInputError, match="wandb login"):
        check_logger_login(online)
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    check_logger_login(online)
    (tmp_path / "netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "abc123")
    check_logger_login(online)


def test_method_names_label_ablations():
    from invert import method_name

    cfg = check_config("invert", ["solver.skip=[backproject,refine]"])
    assert method_name(cfg, True) == "prilo[skip=backproject,refine]-mii"
    assert method_name(check_config("invert", ["solver.ball=false"]), True) == "prilo[ball=false]-mii"
    assert method_name(check_config("invert", []), True) == "prilo-mii"
    assert method_name(check_config("invert", ["solver=hio"]), False) == "hio"


def test_training_resumes_from_its_own_checkpoint_only(tmp_path):
    """ckpt_path is checked (weights-only, same weights) and Lightning loads it weights-only."""
    first = tmp_path / "first"
    case = Case("train", (*TINY_TRAIN, f"export_path={tmp_path / 'a.pt'}"), "", "")
    assert run_entry(case, {}, first)[0] == 0
    last = first / "checkpoints" / "last.ckpt"
    resumed = Case("train", (*TINY_TRAIN, "trainer.max_epochs=2", f"ckpt_path={last}",
                             f"export_path={tmp_path / 'b.pt'}"), "", "")
    code, stderr = run_entry(resumed, {}, tmp_path / "second")
    assert code == 0, stderr[-2000:]
    epochs = [torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
              for d in (first, tmp_path / "second")]
    assert epochs[1] == epochs[0] + 1
    other = Case("train", (*TINY_TRAIN, "model.module.prior.hidden_dim=16", f"ckpt_path={last}"), "", "")
    code, stderr = run_entry(other, {}, tmp_path / "third")
    assert code == 2 and "another model or configuration" in stderr
