"""Train a generative prior: ``python train.py model=M data=D trainer.devices=N logger=L``.

Writes Lightning checkpoints and logs to the Hydra run directory, and the trained prior
to ``<run dir>/prior.pt`` and ``export_path`` (where ``invert.py`` looks by default); an existing
export is kept (the new one gets a versioned name) unless ``overwrite=true``.
"""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from common.cli import check_overrides
from common.errors import UserInputError, exit_on_user_error
from common.help import handle_help
from common.runs import register_resolvers

register_resolvers()


@exit_on_user_error
def train(cfg: DictConfig) -> Path:
    import lightning.pytorch as pl
    from hydra.core.hydra_config import HydraConfig

    from common.checkpoint import check_resume_checkpoint
    from common.cli import check_seed
    from common.instantiate import instantiate, instantiate_collection, instantiate_trainer
    from common.output import make_logger, progress_bars, quiet_frameworks
    from lightning_modules.callbacks import prepare_callbacks

    check_seed(cfg.seed)
    if not isinstance(cfg.get("overwrite"), bool):
        raise UserInputError(f"overwrite must be true or false, got {cfg.get('overwrite')!r}")
    quiet_frameworks()
    cfg.trainer.enable_progress_bar = progress_bars(cfg.trainer.get("enable_progress_bar"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # fail on a missing or empty dataset before any run directory is filled
    module = instantiate(cfg.model.module)
    data_shape, model_shape = tuple(datamodule.image_shape), tuple(module.prior.image_shape)
    if data_shape != model_shape:
        raise UserInputError(
            f"dataset images are {data_shape} (C, H, W) but model {cfg.model.name} generates {model_shape}; "
            f"set data.image_size/data.channels to match the model"
        )
    if cfg.ckpt_path is not None:
        check_resume_checkpoint(cfg.ckpt_path, module)
    callbacks = instantiate_collection(cfg.get("callbacks"))  # conf/callbacks/
    prepare_callbacks(callbacks, datamodule)  # e.g. the sample-quality classifier; unlabelled data is refused here
    logger = make_logger(cfg)
    trainer = instantiate_trainer(cfg.trainer, logger=logger, callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    return run_dir / "prior.pt"


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    handle_help("train", __doc__)
    check_overrides("train")
    main()
