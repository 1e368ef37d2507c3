"""Callbacks shared by every training run."""
from __future__ import annotations

import shutil
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from priors.io import save_prior


class ExportPrior(Callback):
    """At the end of fit, write the module's prior (``export_prior()``) to ``run_path``, copy to ``latest_path``.

    The copy is where ``invert.py`` looks by default. Rank zero only.
    """

    def __init__(self, run_path: str, latest_path: str | None = None):
        self.run_path = Path(run_path)
        self.latest_path = Path(latest_path) if latest_path else None

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        payload = pl_module.export_prior()
        if not trainer.is_global_zero or payload is None:  # None: the module trains no prior (e.g. an encoder)
            return
        save_prior(payload, self.run_path)
        if self.latest_path is not None and self.latest_path.resolve() != self.run_path.resolve():
            self.latest_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.latest_path.with_name(self.latest_path.name + ".tmp")
            shutil.copyfile(self.run_path, tmp)
            tmp.replace(self.latest_path)
        print(f"prior written to {self.run_path}" + (f" and {self.latest_path}" if self.latest_path else ""))


class SampleQualityMonitor(Callback):
    """Logs ``sample_quality/fd`` and ``sample_quality/is`` of ``pl_module.prior`` (the exported generator,
    run in eval mode) every ``every_n_steps`` optimizer steps (``trainer.global_step``; a GAN iteration
    with the BCE loss is two) and at the end of fit; rank zero only.

    The classifier of the data (``evaluation.sample_quality``) is trained or loaded from its cache by
    :meth:`prepare`, which ``train.py`` calls before fitting (unlabelled data is refused there).
    ``history`` keeps ``{"step", "fd", "is", "seconds"}`` rows; ``seconds`` is the evaluation time, so
    benchmarks can take it out of training time.
    """

    def __init__(self, every_n_steps: int = 1000, num_samples: int = 1000, seed: int = 0, max_real: int | None = 10000,
                 classifier: dict | None = None):
        from common.errors import UserInputError

        for name, value, low in (("every_n_steps", every_n_steps, 1), ("num_samples", num_samples, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserInputError(f"sample_quality.{name} must be an integer >= {low}, got {value!r}")
        self.every_n_steps, self.num_samples, self.seed, self.max_real = every_n_steps, num_samples, seed, max_real
        self.classifier = dict(classifier or {})
        self.metric = None
        self.history: list[dict] = []
        self._last_step = -1

    def prepare(self, datamodule) -> None:
        from common.errors import UserInputError
        from evaluation.sample_quality import ClassifierRecipe, sample_quality_for

        try:
            recipe = ClassifierRecipe(**self.classifier)
        except TypeError as err:
            raise UserInputError(f"sample_quality.classifier: {err}") from None
        self.metric, self.record = sample_quality_for(datamodule, recipe, self.max_real)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.metric is None and trainer.is_global_zero:
            self.prepare(trainer.datamodule)

    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        import time

        if not trainer.is_global_zero or trainer.global_step == self._last_step:
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
        if trainer.global_step // self.every_n_steps > max(self._last_step, 0) // self.every_n_steps:
            self.evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.evaluate(trainer, pl_module)
