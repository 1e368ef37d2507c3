"""The training callbacks as a config group (conf/callbacks/): what train.py builds, and how users change it."""
import pytest
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from omegaconf import OmegaConf, open_dict

from common.cli import check_config
from common.errors import UserInputError
from common.instantiate import instantiate_collection
from lightning_modules.callbacks import ExportPrior, SampleQualityMonitor, ValidateFinalEpoch


def build(tmp_path, *argv):
    """The callbacks of ``python train.py hydra.run.dir=<tmp_path> *argv``, built as train.py builds them."""
    from hydra.core.hydra_config import HydraConfig

    cfg = check_config("train", [f"hydra.run.dir={tmp_path}", *argv])
    for node in (cfg, cfg.hydra, cfg.hydra.runtime):
        OmegaConf.set_readonly(node, False)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    try:
        return instantiate_collection(cfg.callbacks)
    finally:
        HydraConfig.instance().cfg = None


def test_default_callbacks_checkpoint_export_and_an_idle_sample_quality_monitor(tmp_path):
    checkpoint, export, monitor, final = build(tmp_path, f"export_path={tmp_path / 'p.pt'}", "trainer.max_epochs=1")
    assert isinstance(checkpoint, ModelCheckpoint) and checkpoint.dirpath == str(tmp_path / "checkpoints")
    assert checkpoint.save_last is True
    assert isinstance(export, ExportPrior) and export.run_path == tmp_path / "prior.pt"
    assert export.export_path == tmp_path / "p.pt" and export.overwrite is False
    assert export.planned == {"max_epochs": 100, "max_steps": -1}  # the model's plan, not the trainer override
    assert export.invert_users is None  # p.pt is no solver's default prior
    _, default_export, _, _ = build(tmp_path)
    assert default_export.invert_users == "invert.py"  # the default solver loads the default export
    assert isinstance(monitor, SampleQualityMonitor) and monitor.every_n_steps is None  # off by default
    monitor.prepare(None)  # off: needs no data
    assert isinstance(final, ValidateFinalEpoch)


def test_users_add_remove_and_change_callbacks(tmp_path):
    on = build(tmp_path, "sample_quality.every_n_steps=5", "overwrite=true")
    assert on[2].every_n_steps == 5 and on[1].overwrite is True
    without_monitor = build(tmp_path, "~callbacks.sample_quality")
    assert [type(c) for c in without_monitor] == [ModelCheckpoint, ExportPrior, ValidateFinalEpoch]
    added = build(tmp_path, "+callbacks.lr_monitor={_target_: lightning.pytorch.callbacks.LearningRateMonitor}",
                  "callbacks.model_checkpoint.save_last=false", "callbacks.export_prior=null")
    assert [type(c) for c in added] == [ModelCheckpoint, SampleQualityMonitor, ValidateFinalEpoch,
                                        LearningRateMonitor]
    assert added[0].save_last is False
    assert build(tmp_path, "callbacks=none") == []


@pytest.mark.parametrize("override, needle", [
    ("+callbacks.x=3", "+callbacks.x: an entry of callbacks must be a config with a _target_"),
    ("+callbacks.model_checkpoint.every_n_epoch=2", "ModelCheckpoint takes no argument 'every_n_epoch'; did you mean "
                                                   "every_n_epochs?"),
    ("callbacks=nonesuch", "Could not find 'callbacks/nonesuch'"),
    ("sample_quality.every_n_steps=0", "sample_quality.every_n_steps must be an integer >= 1 (null: off), got 0"),
])
def test_bad_callback_overrides_are_one_line(tmp_path, override, needle):
    with pytest.raises(UserInputError, match=None) as err:
        build(tmp_path, override)
    assert needle in str(err.value)
