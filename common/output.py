"""What the entry points print: each framework log line once, no adverts or known-harmless
warnings, progress bars only on a terminal, W&B's closing lines before the results table."""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings

#: start of warning messages that say nothing to a user of this project
QUIET_WARNINGS = (
    "`isinstance(treespec",  # Lightning's use of a deprecated torch pytree API
    "predict returned None",  # InversionModule writes parts and returns nothing, on purpose
)
#: start of log messages from frameworks that are adverts
ADVERTS = ("💡 Tip:",)
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(ADVERTS)


def quiet_frameworks() -> None:
    """Silence :data:`QUIET_WARNINGS` (here and, through ``PYTHONWARNINGS``, in spawned DDP workers),
    drop Lightning's adverts, and let Lightning's log lines reach only the handlers Hydra set up
    (console and ``<run dir>/<script>.log``) instead of also Lightning's own console handler."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message))
    inherited = [w for w in os.environ.get("PYTHONWARNINGS", "").split(",") if w]
    os.environ["PYTHONWARNINGS"] = ",".join(dict.fromkeys(inherited + [f"ignore:{m}" for m in QUIET_WARNINGS]))
    hydra_handlers = logging.getLogger().handlers
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if hydra_handlers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    drop = _DropAdverts()
    for handler in hydra_handlers:
        handler.addFilter(drop)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(drop)


def progress_bars(value) -> bool:
    """``trainer.enable_progress_bar``: true/false, or null for "only when stderr is a terminal"
    (a log file gets no carriage-return bars)."""
    return sys.stderr.isatty() if value is None else bool(value)


def make_logger(cfg):
    """The configured Lightning logger (False for none); W&B without the warning about the
    ``anonymous`` setting, which Lightning passes and wandb has deprecated."""
    from common.instantiate import instantiate

    if not cfg.get("logger"):
        return False
    logger = instantiate(cfg.logger)
    wandb_init = getattr(logger, "_wandb_init", None)
    if isinstance(wandb_init, dict) and wandb_init.get("anonymous") is None:
        wandb_init.pop("anonymous", None)
    return logger


def close_logger(logger) -> None:
    """End a W&B run now (its sync instructions are printed here, not after the results table)."""
    if logger and type(logger).__name__ == "WandbLogger" and getattr(logger, "_experiment", None) is not None:
        import wandb

        wandb.finish()
