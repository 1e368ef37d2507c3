"""The one reader of checkpoint files, and building objects from the configs stored in them.

Files are data. Every torch file the project reads goes through :func:`load_tensors`
(``torch.load(weights_only=True)``: tensors and plain containers only), and every checkpoint from a
user-supplied path through :func:`read_checkpoint` (one-line errors),
:func:`checkpoint_format` tells what kind of file it is, and a stored ``_target_`` config is
turned into an object only by :func:`build`, which accepts

* a ``_target_`` listed in :data:`BUILDABLE` (the project's own classes, by class path), and
* constructor arguments that are plain data (numbers, strings, bools, None, and lists or
  string-keyed dicts of those), with no Hydra keys (``_args_``, ``_partial_``, ``_recursive_``,
  a nested ``_target_``) and only names the constructor takes.

Anything else is refused with one ``UserInputError`` line before any import or call.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
from pathlib import Path

import torch

from common.errors import UserInputError

#: The classes a stored config may name, by kind and class path (the ``_target_`` our files record).
#: A new prior or encoder is loadable from files once its class path is listed here.
BUILDABLE: dict[str, tuple[str, ...]] = {
    "prior": (
        "priors.vae.VAE",
        "priors.stylegan2.StyleGAN2Prior",
        "priors.pggan.PGGANPrior",
        "priors.dcgan.DCGANPrior",
        "priors.random_relu.RandomReLUGenerator",
    ),
    "encoder": (
        "priors.encoders.MLPEncoder",
        "priors.encoders.ConvEncoder",
    ),
}

PRIOR_FORMAT = "genprior/prior-v1"
ENCODER_FORMAT = "genprior/encoder-v1"
#: a key only rosinality/progressive-gan-pytorch generators have
PGGAN_KEY = "progression.0.conv.0.conv.weight_orig"

#: what each format is, for messages that name a file passed in the wrong place
FORMAT_NAMES = {
    "prior": "a prior file of `python train.py`",
    "encoder": "an encoder file of `python train.py model=encoder_li` (it belongs in init.checkpoint)",
    "lightning": "a Lightning training checkpoint",
    "rosinality": "a rosinality StyleGAN2 checkpoint",
    "rosinality_pggan": "a rosinality progressive-gan-pytorch generator",
    "dcgan_tutorial": "a PyTorch-tutorial DCGAN generator",
    "measurements": "a measurement file of `python invert.py save_measurements=true` (it belongs in measurements=)",
    "operator": "an operator file",
}

_PLAIN = (bool, int, float, str, type(None))


def load_tensors(path: str | os.PathLike, mmap: bool = False):
    """``torch.load(path, weights_only=True)`` onto the CPU (``mmap``: tensors memory-mapped, not read):
    tensors and plain containers only. The project's only ``torch.load``; errors are the caller's to word."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def read_checkpoint(path: str | os.PathLike, what: str, missing_hint: str = "") -> dict:
    """The dict stored in a torch file, loaded with ``weights_only=True``; one-line errors otherwise."""
    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"{what} {path} is a directory, not a checkpoint file; pass the .pt/.ckpt file itself")
    if not path.is_file():
        raise UserInputError(f"{what} {path} does not exist" + (f"; {missing_hint}" if missing_hint else ""))
    try:
        from priors.pggan import PICKLED_GLOBALS, unpickled_state

        # rosinality's StyleGAN2 training checkpoints carry their argparse.Namespace under "args"; its PGGAN
        # train.py pickles the whole generator, read into inert stand-ins (priors.pggan)
        with torch.serialization.safe_globals([argparse.Namespace, *PICKLED_GLOBALS]):
            obj = unpickled_state(load_tensors(path))
    except Exception as err:  # noqa: BLE001 - any failure here means an unreadable (or unsafe) file
        raise UserInputError(f"{what} {path} could not be read ({type(err).__name__}); the file is truncated, "
                             f"corrupt, not a torch checkpoint, or holds objects other than tensors and plain data"
                             ) from None
    if not isinstance(obj, dict):
        raise UserInputError(f"{what} {path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


def checkpoint_format(obj: dict) -> str | None:
    """``"prior"``, ``"encoder"``, ``"lightning"``, ``"rosinality"``, ``"rosinality_pggan"``, ``"dcgan_tutorial"``,
    ``"measurements"``,
    ``"operator"`` or None."""
    fmt = obj.get("format")
    if fmt == PRIOR_FORMAT:
        return "prior"
    if fmt == ENCODER_FORMAT:
        return "encoder"
    if "g_ema" in obj or "style.1.weight" in obj:
        return "rosinality"
    if any(isinstance(part, dict) and PGGAN_KEY in part for part in (obj, obj.get("g_running"), obj.get("generator"))):
        return "rosinality_pggan"
    if "netG_state_dict" in obj or "main.0.weight" in obj:
        return "dcgan_tutorial"
    if isinstance(obj.get("state_dict"), dict) and "pytorch-lightning_version" in obj:
        return "lightning"
    if {"y", "index", "operator"} <= set(obj):
        return "measurements"
    if set(obj) == {"spec", "state_dict"}:
        return "operator"
    return None


def describe_format(obj: dict) -> str:
    fmt = checkpoint_format(obj)
    return FORMAT_NAMES[fmt] if fmt else f"a file of unknown format (keys: {sorted(map(str, obj))[:6]})"


# -- building from stored configs ----------------------------------------------------------------
def plain_data(value, where: str):
    """``value`` if it is plain data (lists/tuples become lists); ``UserInputError`` otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UserInputError(f"{where} is {value}; stored arguments must be finite numbers")
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise UserInputError(f"{where} has a non-string key {key!r}; stored arguments must be plain data")
            if key.startswith("_"):
                raise UserInputError(f"{where} holds the key {key!r}; stored arguments may not carry Hydra keys "
                                     f"(_target_, _args_, _partial_, ...)")
            out[key] = plain_data(v, f"{where}.{key}")
        return out
    raise UserInputError(f"{where} is a {type(value).__name__}; stored arguments must be numbers, strings, bools, "
                         f"None, or lists/dicts of those")


def buildable_class(target, kind: str, where: str) -> type:
    """The class a stored ``_target_`` names, if :data:`BUILDABLE` lists it for ``kind``."""
    allowed = BUILDABLE[kind]
    if not isinstance(target, str) or target not in allowed:
        raise UserInputError(f"{where} names {target!r} as its class; {kind}s are built from files only as one of "
                             f"{', '.join(allowed)} (new classes are listed in common.checkpoint.BUILDABLE)")
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build(config, kind: str, where: str):
    """An instance of an allowlisted class from a stored ``{"_target_": ..., **plain arguments}`` config."""
    if not isinstance(config, dict):
        raise UserInputError(f"{where} stores a {type(config).__name__} as its {kind} config, not a dict")
    hydra_keys = sorted(k for k in config if isinstance(k, str) and k.startswith("_") and k != "_target_")
    if hydra_keys:
        raise UserInputError(f"{where}: stored {kind} config has the key(s) {hydra_keys}; only _target_ and "
                             f"constructor arguments are allowed")
    cls = buildable_class(config.get("_target_"), kind, where)
    kwargs = {k: plain_data(v, f"{where}: argument {k}") for k, v in config.items() if k != "_target_"}
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise UserInputError(f"{where}: {cls.__name__} takes no argument(s) {unknown}; the stored config does "
                                 f"not fit this version of the code")
    try:
        return cls(**kwargs)
    except UserInputError:
        raise
    except Exception as err:  # noqa: BLE001 - a stored config the class rejects is a bad file
        detail = " ".join(str(err).split())[:200]
        raise UserInputError(f"{where}: its {cls.__name__} cannot be built from the stored arguments ({detail})"
                             ) from None


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights with NaN or Inf entries (a diverged training run, a damaged file)."""
    bad = [k for k, t in tensors.items()
           if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all()]
    if bad:
        raise UserInputError(f"{where} has NaN/Inf weights in {len(bad)} tensor(s) ({', '.join(bad[:3])}); its "
                             f"training diverged or the file is damaged: use an earlier checkpoint or retrain")


def load_weights(module: torch.nn.Module, state_dict, where: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the first mismatch, then :func:`check_finite`."""
    if not isinstance(state_dict, dict):
        raise UserInputError(f"{where} stores no state dict of weights")
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        first = lines[1] if len(lines) > 1 else (lines[0] if lines else type(err).__name__)
        raise UserInputError(f"{where} does not match its recorded architecture: {first[:300]}") from None
    check_finite(module.state_dict(), where)


def exportable(config: dict, kind: str, where: str) -> dict:
    """``config`` if its ``_target_`` can be loaded back from a file: checked before training, not at export."""
    buildable_class(config.get("_target_"), kind, where)
    return config


def check_resume_checkpoint(path, module: torch.nn.Module) -> None:
    """``ckpt_path`` must be a readable Lightning checkpoint whose weights fit ``module`` (same names and shapes)."""
    where = f"ckpt_path {path}"
    obj = read_checkpoint(path, "ckpt_path", "pass an existing Lightning checkpoint (<run dir>/checkpoints/last.ckpt) "
                                             "or null")
    if checkpoint_format(obj) != "lightning":
        raise UserInputError(f"{where} is {describe_format(obj)}, not a Lightning training checkpoint; resume from "
                             f"<run dir>/checkpoints/last.ckpt")
    excluded = tuple(getattr(module, "checkpoint_excluded_prefixes", ()))
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items() if not (excluded and k.startswith(excluded))}
    theirs = {k: tuple(v.shape) for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
    missing, unexpected = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    reshaped = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
    if missing or unexpected or reshaped:
        example = (f"{reshaped[0]} is {theirs[reshaped[0]]} there, {ours[reshaped[0]]} here" if reshaped else
                   f"{(missing or unexpected)[0]} is {'missing' if missing else 'unexpected'}")
        raise UserInputError(f"{where} was written by another model or configuration ({len(missing)} weights missing, "
                             f"{len(unexpected)} unexpected, {len(reshaped)} of another shape; e.g. {example}); "
                             f"resume with the model and model.* settings of the run that wrote it")
