"""Hydra instantiation that lets a ``UserInputError`` through as itself (not wrapped by Hydra)."""
from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from common.errors import UserInputError


def instantiate(config, **kwargs):
    try:
        return hydra_instantiate(config, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, UserInputError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def instantiate_named(node, **kwargs):
    """Instantiate a config whose ``name`` key labels runs and reports rather than being an argument."""
    config = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    config.pop("name", None)
    return instantiate(config, **kwargs, _convert_="all")


def instantiate_collection(node) -> list:
    """The objects of a node whose entries are ``_target_`` configs (e.g. ``callbacks``), in order;
    null entries are skipped, so ``callbacks.NAME=null`` and ``~callbacks.NAME`` both remove one."""
    if not node:
        return []
    objects = []
    for name, config in node.items():
        if config is None:
            continue
        if not isinstance(config, DictConfig) or "_target_" not in config:
            raise UserInputError(f"{name} must be a config with a _target_ (a class to build), got {config!r}")
        objects.append(instantiate(config))
    return objects


def instantiate_trainer(config, **kwargs):
    """The Lightning ``Trainer``; its refusals of ``trainer.*`` values (max_epochs=-5, accelerator=gpu without
    a GPU, unknown strategy or precision, ...) become one-line ``UserInputError`` s."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, (ValueError, TypeError)) or type(cause).__name__ == "MisconfigurationException":
            raise UserInputError(f"trainer: {' '.join(str(cause).split())[:300]} (check the trainer.* overrides)"
                                 ) from None
        raise
