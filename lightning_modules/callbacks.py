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
