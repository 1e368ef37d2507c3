"""Saving and loading priors: our exported files, Lightning checkpoints, rosinality StyleGAN2 and PGGAN files,
PyTorch-tutorial DCGAN files."""
from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

import torch
from hydra.utils import instantiate

from common.errors import UserInputError
from priors.base import LayeredPrior

PRIOR_FORMAT = "genprior/prior-v1"
#: a key only rosinality/progressive-gan-pytorch generators have
PGGAN_KEY = "progression.0.conv.0.conv.weight_orig"


def save_prior(payload: dict, path: str | os.PathLike) -> Path:
    """Write ``{"prior_config", "state_dict", "extra"}`` (from a module's ``export_prior``) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prior = instantiate(payload["prior_config"])
    prior.load_state_dict(payload["state_dict"])
    record = {"format": PRIOR_FORMAT, "describe": prior.describe(), **payload}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint dict, read with weights-only unpickling (a pickled rosinality PGGAN generator: its parameters)."""
    from priors.pggan import PICKLED_GLOBALS, unpickled_state

    path = Path(path)
    if not path.is_file():
        raise UserInputError(
            f"prior checkpoint {path} does not exist; train one with `python train.py` "
            f"(writes outputs/priors/<model>_<data>.pt) or pass prior.checkpoint=PATH"
        )
    try:
        # rosinality's StyleGAN2 training checkpoints carry their argparse.Namespace under "args"
        with torch.serialization.safe_globals([argparse.Namespace, *PICKLED_GLOBALS]):
            obj = unpickled_state(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # noqa: BLE001 - any failure here means an unreadable file
        raise UserInputError(f"prior checkpoint {path} could not be read ({type(err).__name__}); "
                             f"the file is corrupt or not a torch checkpoint") from None
    if not isinstance(obj, dict):
        raise UserInputError(f"prior checkpoint {path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


def prior_class(config, path) -> type:
    """The class a prior config from a file names; only the project's own priors are allowed."""
    target = config.get("_target_") if isinstance(config, dict) else None
    module, _, name = str(target).rpartition(".")
    cls = getattr(importlib.import_module(module), name, None) if module.split(".")[0] == "priors" else None
    if not (isinstance(cls, type) and issubclass(cls, LayeredPrior)):
        raise UserInputError(f"prior checkpoint {path} names {target!r} as its architecture; only the project's "
                             f"priors (LayeredPrior classes in priors/) are built from files")
    return cls


def _build(config: dict, state_dict: dict, path: Path) -> LayeredPrior:
    prior_class(config, path)
    try:
        prior = instantiate(config)
    except Exception as err:  # noqa: BLE001
        raise UserInputError(f"prior checkpoint {path} names an architecture that cannot be built: {err}") from None
    try:
        prior.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise UserInputError(f"prior checkpoint {path} does not match its architecture: {first}") from None
    return prior


def load_prior(path: str | os.PathLike, **overrides) -> LayeredPrior:
    """Load any supported prior checkpoint, frozen and in eval mode.

    * files written by :func:`save_prior` (``python train.py`` exports them),
    * Lightning checkpoints of our training modules (``hyper_parameters.prior`` + ``prior.*`` weights),
    * rosinality stylegan2-pytorch checkpoints (top-level ``g_ema``); ``overrides`` go to that loader,
    * rosinality progressive-gan-pytorch generator state dicts (bare or under ``g_running`` / ``generator``),
    * PyTorch-tutorial DCGAN generators (``netG_state_dict`` or its bare ``main.*`` state dict).
    """
    path = Path(path)
    obj = read_checkpoint(path)
    if obj.get("format") == PRIOR_FORMAT:
        prior = _build(obj["prior_config"], obj["state_dict"], path)
    elif "g_ema" in obj:
        from priors.stylegan2 import load_rosinality

        prior = load_rosinality(obj, **overrides)
    elif any(PGGAN_KEY in part for part in (obj, obj.get("g_running", {}), obj.get("generator", {}))):
        from priors.pggan import load_rosinality_pggan

        prior = load_rosinality_pggan(obj, **overrides)
    elif "netG_state_dict" in obj or "main.0.weight" in obj:
        from priors.dcgan import load_tutorial_dcgan

        prior = load_tutorial_dcgan(obj, f"prior checkpoint {path}")
    elif "state_dict" in obj and "prior" in obj.get("hyper_parameters", {}):
        weights = {k[len("prior."):]: v for k, v in obj["state_dict"].items() if k.startswith("prior.")}
        prior = _build(obj["hyper_parameters"]["prior"], weights, path)
    else:
        raise UserInputError(
            f"prior checkpoint {path} has an unknown format (keys: {sorted(obj)[:6]}); expected a file from "
            f"`python train.py`, a Lightning checkpoint of it, a rosinality StyleGAN2 / PGGAN or a PyTorch-tutorial "
            f"DCGAN checkpoint"
        )
    prior.eval().requires_grad_(False)
    return prior
