"""PRILO's learned initialization (LI, section 2.2): z_0 = E(y) + N(0, sigma² I) from a trained encoder.

An encoder file (written by ``python train.py model=encoder_li``, see
:mod:`lightning_modules.encoder`) records the prior and the operator it was trained for:
fingerprints (SHA-256) of the prior's weights and architecture, and of the operator's
parameters (its spec without ``seed`` and ``noise_std``, plus its buffers, i.e. the matrix A
itself; the Fourier operator has no random parts, so any seed fits). Using it with another
prior or operator is refused: the encoder must be retrained when A changes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from common.atomic import torch_save
from common.checkpoint import ENCODER_FORMAT, build, checkpoint_format, describe_format, load_weights, \
    read_checkpoint
from common.errors import UserInputError
from common.randomness import per_sample_normal
from operators import operator_state
from operators.base import ForwardOperator
from priors.base import LayeredPrior
from solvers.initialization import Initialization

#: operator spec entries that do not change A (the Fourier operator is deterministic; noise is not A)
OPERATOR_FREE_KEYS = ("seed", "noise_std")


def _digest(description: dict, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode())
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def prior_fingerprint(prior: LayeredPrior) -> str:
    """SHA-256 of the prior's architecture (``describe()``) and every tensor of its state dict."""
    return _digest(prior.describe(), prior.state_dict())


def operator_identity(operator: ForwardOperator) -> dict:
    """The operator's spec without the entries that leave A unchanged."""
    return {k: v for k, v in operator.spec().items() if k not in OPERATOR_FREE_KEYS}


def operator_fingerprint(operator: ForwardOperator) -> str:
    """SHA-256 of :func:`operator_identity` and the operator's buffers (random matrices, masks, supports)."""
    return _digest(operator_identity(operator), operator.state_dict())


def save_encoder(path: str | os.PathLike, encoder_config: dict, encoder: nn.Module, prior: LayeredPrior,
                 prior_path: str | os.PathLike, operator: ForwardOperator, extra: dict | None = None) -> Path:
    """Write the encoder (``_target_`` config + weights) with what it was trained for, atomically."""
    record = {
        "format": ENCODER_FORMAT,
        "encoder_config": dict(encoder_config),
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "prior": {"path": str(prior_path), "fingerprint": prior_fingerprint(prior), "describe": prior.describe()},
        "operator": {**operator_state(operator), "fingerprint": operator_fingerprint(operator)},
        "extra": dict(extra or {}),
    }
    return torch_save(record, path)


def read_encoder_record(path: str | os.PathLike) -> dict:
    record = read_checkpoint(path, "encoder checkpoint",
                             "train one with `python train.py model=encoder_li model.module.prior_checkpoint=PRIOR` "
                             "or pass init.checkpoint=PATH")
    if checkpoint_format(record) != "encoder":
        raise UserInputError(f"encoder checkpoint {path} is not an encoder file of `python train.py "
                             f"model=encoder_li` but {describe_format(record)} (a prior checkpoint belongs in "
                             f"prior.checkpoint, not init.checkpoint)")
    for key in ("prior", "operator"):
        if not isinstance(record.get(key), dict) or not isinstance(record[key].get("fingerprint"), str):
            raise UserInputError(f"encoder checkpoint {path} does not record the {key} it was trained for; "
                                 f"retrain it with `python train.py model=encoder_li`")
    return record


def load_encoder(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(encoder in eval mode, its record) from a file written by :func:`save_encoder`."""
    record = read_encoder_record(path)
    where = f"encoder checkpoint {path}"
    encoder = build(record.get("encoder_config"), "encoder", where)
    load_weights(encoder, record.get("state_dict"), where)
    return encoder.eval().requires_grad_(False), record


def check_compatible(record: dict, prior: LayeredPrior, operator: ForwardOperator, path) -> None:
    """Refuse (one-line ``UserInputError``) a prior or operator other than the encoder was trained for."""
    trained = record["prior"]
    fingerprint = prior_fingerprint(prior)
    if fingerprint != trained["fingerprint"]:
        d, t = prior.describe(), trained["describe"]
        raise UserInputError(
            f"encoder {path} was trained for prior {trained['path']} ({t['class']}, latent {t['latent_shape']}, "
            f"fingerprint {trained['fingerprint'][:12]}), not for the given prior ({d['class']}, latent "
            f"{d['latent_shape']}, fingerprint {fingerprint[:12]}); train an encoder for this prior: "
            f"python train.py model=encoder_li model.module.prior_checkpoint=<this prior>")
    stored = record["operator"]
    if operator_fingerprint(operator) != stored["fingerprint"]:
        was = {k: v for k, v in stored["spec"].items() if k not in OPERATOR_FREE_KEYS}
        now = operator_identity(operator)
        what = f"{was} but the configured operator is {now}" if was != now else \
            f"{was} with other parameters (its matrix/mask, drawn from operator.seed={stored['spec'].get('seed')})"
        raise UserInputError(
            f"encoder {path} was trained for operator {what}; an encoder must be retrained when the measurement "
            f"operator changes: python train.py model=encoder_li model.module.operator.<key>=<value>")


class LearnedInit(Initialization):
    """z_0 = E(y) + sigma ε per (image, restart), ε ~ N(0, I) from (seed, "li_perturbation", index, restart).

    The encoder is loaded at the first call (and cached, on the prior's device); every new
    (prior, operator) pair is checked against the encoder's record first.
    """

    name = "li"

    def __init__(self, checkpoint: str | os.PathLike, sigma: float = 0.05):
        sigma = float(sigma)
        if not math.isfinite(sigma) or sigma < 0:
            raise UserInputError(f"init.sigma must be >= 0, got {sigma}")
        self.checkpoint = Path(checkpoint)
        self.sigma = sigma
        self._encoder: nn.Module | None = None
        self._record: dict | None = None
        self._checked: tuple | None = None

    def encoder(self, device: torch.device | str = "cpu") -> nn.Module:
        if self._encoder is None:
            self._encoder, self._record = load_encoder(self.checkpoint)
        return self._encoder.to(device)

    def check(self, prior: LayeredPrior, operator: ForwardOperator) -> None:
        if self._checked is not None and self._checked[0] is prior and self._checked[1] is operator:
            return
        self.encoder()
        check_compatible(self._record, prior, operator, self.checkpoint)
        self._checked = (prior, operator)

    @torch.no_grad()
    def __call__(self, prior, operator, y, indices, seed, restarts):
        self.check(prior, operator)
        device = prior.device
        z = self.encoder(device)(y.to(device)).repeat_interleave(restarts, dim=0)
        if self.sigma > 0:
            z = z + self.sigma * per_sample_normal(prior.latent_shape, seed, "li_perturbation", indices, restarts,
                                                   device=device, dtype=z.dtype)
        return z
