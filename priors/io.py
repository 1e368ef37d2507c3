"""Saving and loading priors: our exported files, Lightning checkpoints, rosinality StyleGAN2 and PGGAN files,
PyTorch-tutorial DCGAN files.

Reading goes through :mod:`common.checkpoint` (weights-only loading, allowlisted classes).
"""
from __future__ import annotations

import os
from pathlib import Path

from common.atomic import torch_save
from common.checkpoint import PRIOR_FORMAT, build, check_finite, checkpoint_format, describe_format, \
    load_weights, read_checkpoint
from common.errors import UserInputError
from priors.base import LayeredPrior

__all__ = ["PRIOR_FORMAT", "save_prior", "load_prior"]

MISSING_HINT = ("train one with `python train.py` (writes outputs/priors/<model>_<data>.pt) "
                "or pass prior.checkpoint=PATH")


def _build(config, state_dict, where: str) -> LayeredPrior:
    prior = build(config, "prior", where)
    load_weights(prior, state_dict, where)
    return prior


def save_prior(payload: dict, path: str | os.PathLike) -> Path:
    """Write ``{"prior_config", "state_dict", "extra"}`` (from a module's ``export_prior``) atomically.

    The prior is rebuilt from the stored config first, so only files that :func:`load_prior` accepts are written.
    """
    path = Path(path)
    prior = _build(payload["prior_config"], payload["state_dict"], f"prior to be written to {path}")
    record = {"format": PRIOR_FORMAT, "describe": prior.describe(), **payload}
    return torch_save(record, path)


def load_prior(path: str | os.PathLike, **overrides) -> LayeredPrior:
    """Load any supported prior checkpoint, frozen and in eval mode.

    * files written by :func:`save_prior` (``python train.py`` exports them),
    * Lightning checkpoints of our training modules (``hyper_parameters.prior`` + ``prior.*`` weights),
    * rosinality stylegan2-pytorch checkpoints (top-level ``g_ema``); ``overrides`` go to that loader,
    * rosinality progressive-gan-pytorch generators (pickled, bare or under ``g_running`` / ``generator``),
    * PyTorch-tutorial DCGAN generators (``netG_state_dict`` or its bare ``main.*`` state dict).

    Refused with one line: unreadable files, other formats, classes outside
    :data:`common.checkpoint.BUILDABLE`, arguments that are not plain data, NaN/Inf weights.
    """
    path = Path(path)
    where = f"prior checkpoint {path}"
    obj = read_checkpoint(path, "prior checkpoint", MISSING_HINT)
    fmt = checkpoint_format(obj)
    if fmt == "prior":
        prior = _build(obj.get("prior_config"), obj.get("state_dict"), where)
    elif fmt == "rosinality":
        from priors.stylegan2 import load_rosinality

        try:
            prior = load_rosinality(obj, **overrides)
        except (AttributeError, TypeError, KeyError, IndexError, RuntimeError) as err:  # entries that are no tensors
            raise UserInputError(f"{where} is not a usable rosinality StyleGAN2 checkpoint ({type(err).__name__}: "
                                 f"{' '.join(str(err).split())[:150]})") from None
        check_finite(prior.state_dict(), where)
    elif fmt == "rosinality_pggan":
        from priors.pggan import load_rosinality_pggan

        prior = load_rosinality_pggan(obj, **overrides)
        check_finite(prior.state_dict(), where)
    elif fmt == "dcgan_tutorial":
        from priors.dcgan import load_tutorial_dcgan

        prior = load_tutorial_dcgan(obj, where)
        check_finite(prior.state_dict(), where)
    elif fmt == "lightning" and isinstance(obj.get("hyper_parameters"), dict) and "prior" in obj["hyper_parameters"]:
        weights = {k[len("prior."):]: v for k, v in obj["state_dict"].items() if k.startswith("prior.")}
        prior = _build(obj["hyper_parameters"]["prior"], weights, where)
    else:
        raise UserInputError(
            f"{where} is {describe_format(obj)}, not a prior; expected a file from `python train.py`, "
            f"a Lightning checkpoint of it, a rosinality StyleGAN2 / PGGAN or a PyTorch-tutorial DCGAN checkpoint")
    prior.eval().requires_grad_(False)
    return prior
