"""Callbacks shared by every training run (``conf/callbacks/``, instantiated by ``train.py``)."""
from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from common.artifacts import publish
from priors.io import save_prior
from priors.provenance import training_record


def planned_length() -> dict:
    """``max_epochs``/``max_steps`` that this run's config plans without its ``trainer`` overrides
    (e.g. 100 epochs for the default VAE even when run with ``trainer.max_epochs=1``)."""
    import contextlib

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from common.cli import CONF_DIR

    hydra_cfg = HydraConfig.get()
    kept = [o for o in hydra_cfg.overrides.task if not o.lstrip("+~").startswith("trainer")]
    outside_app = not GlobalHydra.instance().is_initialized()
    context = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3") if outside_app else None
    with context or contextlib.nullcontext():
        trainer = compose(config_name=hydra_cfg.job.config_name, overrides=kept).trainer
    return {"max_epochs": trainer.get("max_epochs"), "max_steps": trainer.get("max_steps")}


def published_message(what: str, written: Path, destination: Path, kept: bool, overwrite: bool,
                      consumer: str, consumer_default: Path | None, use_key: str) -> str:
    """What was written and what ``consumer`` (e.g. "invert.py") will now use."""
    default = consumer_default is not None and destination.resolve() == consumer_default.resolve()
    if kept:
        kept_note = f"{consumer} keeps using it by default" if default else "it is unchanged"
        return (f"{what} written to {written}; {destination} already held a {what} and was kept ({kept_note}; "
                f"overwrite=true replaces it); use the new {what} with {use_key}={written}")
    replaced = " (replacing the earlier one: overwrite=true)" if overwrite else ""
    use = f"{consumer} now uses it by default" if default else f"use it with {use_key}={written}"
    return f"{what} written to {written}{replaced}; {use}"


class ExportPrior(Callback):
    """At the end of fit, write the module's prior (``export_prior()``) with its training record to
    ``run_path`` and publish a copy at ``export_path`` (where ``invert.py`` looks by default),
    neither replacing an existing file unless ``overwrite`` (:func:`common.artifacts.publish`). Rank zero only.

    ``planned`` (the training length the record compares with) and ``invert_users`` (who in
    ``invert.py`` loads ``export_path`` by default, named in the message) are read from the Hydra run that builds the
    callback when not given (built in the launching process, so DDP ranks get them too)."""

    def __init__(self, run_path: str, export_path: str | None = None, overwrite: bool = False,
                 planned: dict | None = None, invert_users: str | None = None):
        from hydra.core.hydra_config import HydraConfig

        from common.prior_choice import invert_users as who_loads

        in_hydra_run = HydraConfig.initialized()
        if planned is None and in_hydra_run:
            planned = planned_length()
        if invert_users is None and in_hydra_run and export_path:
            invert_users = who_loads(export_path, HydraConfig.get().runtime.choices.data)
        self.run_path = Path(run_path)
        self.export_path = Path(export_path) if export_path else None
        self.overwrite = bool(overwrite)
        self.planned = dict(planned or {})
        self.invert_users = invert_users  # who loads export_path by default (common.prior_choice.invert_users)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        payload = pl_module.export_prior()
        if not trainer.is_global_zero or payload is None:  # None: the module trains no prior (e.g. an encoder)
            return
        payload = {**payload, "training": training_record(trainer, self.planned)}
        tmp = save_prior(payload, self.run_path.with_name(f".{self.run_path.name}.new"))
        try:
            run_written, _ = publish(tmp, self.run_path)
        finally:
            tmp.unlink()
        print(f"prior written to {run_written}")
        if self.export_path is not None and self.export_path.resolve() != self.run_path.resolve():
            written, kept = publish(run_written, self.export_path, self.overwrite)
            print(published_message("prior", written, self.export_path, kept, self.overwrite,
                                    self.invert_users or "invert.py", self.export_path if self.invert_users else None,
                                    "prior.checkpoint"))


class ValidateFinalEpoch(Callback):
    """Validates the last of ``max_epochs`` epochs even when ``max_epochs`` is not a multiple of
    ``check_val_every_n_epoch``: Lightning skips it, so e.g. a 3-epoch run under the default of 5 would log
    no validation metric at all. The configured interval is back in place once fit ends. A run cut short by
    ``max_steps`` or ``max_time`` is not covered."""

    def __init__(self) -> None:
        self.configured_interval: int | None = None  # the trainer's own, while the last epoch runs at 1

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (trainer.check_val_every_n_epoch is not None and trainer.max_epochs is not None
                and trainer.current_epoch == trainer.max_epochs - 1):
            self.configured_interval = trainer.check_val_every_n_epoch
            trainer.check_val_every_n_epoch = 1

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.configured_interval is not None:
            trainer.check_val_every_n_epoch, self.configured_interval = self.configured_interval, None


def prepare_callbacks(callbacks: list[Callback], datamodule) -> None:
    """Give the callbacks that need the training data before fit (:class:`SampleQualityMonitor`) the
    datamodule, so that data they cannot work with is refused before anything is written."""
    for callback in callbacks:
        if isinstance(callback, SampleQualityMonitor):
            callback.prepare(datamodule)


class SampleQualityMonitor(Callback):
    """Logs ``sample_quality/fd`` and ``sample_quality/is`` of ``pl_module.prior`` (the exported generator,
    run in eval mode) every ``every_n_steps`` optimizer steps (``trainer.global_step``; a GAN iteration
    with the BCE loss is two) and at the end of fit; rank zero only. ``every_n_steps=None``: off (it does nothing).

    The classifier of the data (``evaluation.sample_quality``) is trained or loaded from its cache by
    :meth:`prepare`, which ``train.py`` calls before fitting (unlabelled data is refused there).
    ``history`` keeps ``{"step", "fd", "is", "seconds"}`` rows; ``seconds`` is the evaluation time, so
    benchmarks can take it out of training time.
    """

    def __init__(self, every_n_steps: int | None = 1000, num_samples: int = 1000, seed: int = 0,
                 max_real: int | None = 10000, classifier: dict | None = None):
        from common.errors import UserInputError

        for name, value, low in (("every_n_steps", every_n_steps, 1), ("num_samples", num_samples, 2)):
            if name == "every_n_steps" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                off = " (null: off)" if name == "every_n_steps" else ""
                raise UserInputError(f"sample_quality.{name} must be an integer >= {low}{off}, got {value!r}")
        self.every_n_steps, self.num_samples, self.seed, self.max_real = every_n_steps, num_samples, seed, max_real
        self.classifier = dict(classifier or {})
        self.metric = None
        self.history: list[dict] = []
        self._last_step = -1

    def prepare(self, datamodule) -> None:
        if self.every_n_steps is None:
            return
        from common.errors import UserInputError
        from evaluation.sample_quality import ClassifierRecipe, sample_quality_for

        try:
            recipe = ClassifierRecipe(**self.classifier)
        except TypeError as err:
            raise UserInputError(f"sample_quality.classifier: {err}") from None
        self.metric, self.record = sample_quality_for(datamodule, recipe, self.max_real)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_steps is not None and self.metric is None and trainer.is_global_zero:
            self.prepare(trainer.datamodule)

    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        import time

        if self.every_n_steps is None or not trainer.is_global_zero or trainer.global_step == self._last_step:
            return
        start = time.perf_counter()
        prior, training = pl_module.prior, pl_module.prior.training
        prior.eval()
        scores = self.metric.to(pl_module.device).of_prior(prior, self.num_samples, self.seed)
        prior.train(training)
        self._last_step = trainer.global_step
        row = {"step": trainer.global_step, "fd": scores["fd"], "is": scores["is"],
               "seconds": time.perf_counter() - start}
        self.history.append(row)
        for logger in trainer.loggers:
            logger.log_metrics({"sample_quality/fd": row["fd"], "sample_quality/is": row["is"]}, step=row["step"])

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args) -> None:
        if self.every_n_steps is not None and trainer.global_step // self.every_n_steps > max(self._last_step, 0) // self.every_n_steps:
            self.evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.evaluate(trainer, pl_module)
