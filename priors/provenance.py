"""How long a prior was trained: recorded at export, read and reported when ``invert.py`` loads it."""
from __future__ import annotations

import os
from pathlib import Path


def training_record(trainer, planned: dict) -> dict:
    """Epochs and optimizer steps done (Lightning's ``global_step``: with manual optimisation every
    optimizer's step counts), what the config planned, and the limits that shorten a run."""
    limit = trainer.limit_train_batches
    return {"epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
            "planned_epochs": planned.get("max_epochs"), "planned_steps": planned.get("max_steps"),
            "limit_train_batches": None if limit is None else float(limit), "fast_dev_run": bool(trainer.fast_dev_run)}


def short_training(record: dict) -> str | None:
    """Why a training record falls short of its plan (None when it does not)."""
    if record.get("fast_dev_run"):
        return "a fast_dev_run"
    epochs, planned_epochs = record.get("epochs"), record.get("planned_epochs")
    if planned_epochs not in (None, -1) and epochs is not None and epochs < planned_epochs:
        return f"{epochs} of the {planned_epochs} epochs its model config plans"
    steps, planned_steps = record.get("steps"), record.get("planned_steps")
    if planned_steps not in (None, -1) and steps is not None and steps < planned_steps:
        return f"{steps} of the {planned_steps} steps its model config plans"
    limit = record.get("limit_train_batches")
    if limit is not None and limit != 1.0:
        return f"limit_train_batches={limit:g} of every epoch"
    return None


def read_training_record(path: str | os.PathLike) -> dict | None:
    """The training record of a prior file (exported by train.py, or a Lightning checkpoint's
    epoch/step); None when the file has none. Tensors are memory-mapped, not read."""
    from common.checkpoint import load_tensors

    try:
        obj = load_tensors(path, mmap=True)
    except Exception:  # noqa: BLE001 - rosinality files and the like: no record
        return None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("training"), dict):
        return obj["training"]
    if "global_step" in obj and "epoch" in obj:  # a Lightning checkpoint: the epoch in progress when saved
        return {"epochs": int(obj["epoch"]), "steps": int(obj["global_step"])}
    return None


def prior_report(path: str | os.PathLike, prior) -> tuple[str, str | None]:
    """(the line invert.py prints about the prior it loaded, a warning when it was trained short)."""
    record = read_training_record(path)
    if record is None:
        trained = "training length not recorded"
    else:
        epochs, steps = record["epochs"], record["steps"]
        trained = f"trained {epochs} epoch{'s' * (epochs != 1)}, {steps} optimizer step{'s' * (steps != 1)}"
    described = ", ".join(f"{k} {v}" for k, v in prior.describe().items())
    line = f"prior: {Path(path)} ({trained}): {described}"
    reason = None if record is None else short_training(record)
    warning = None if reason is None else (
        f"warning: prior {Path(path)} was trained for {reason} (a smoke run?); its results are not those of a "
        f"trained prior: train it fully or pass another prior.checkpoint")
    return line, warning
