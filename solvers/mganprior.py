"""mGANprior inversion (Gu et al. 2020; RTIL algorithm 2): N codes mixed at a split point with channel weights.

x̂ = g1(Σ_k g0(z^k) ⊙ α_k), G = g1 ∘ g0 split at ``layer``, α_k ∈ R^{C_layer} one weight per channel of
code k; the codes and the α are optimised jointly on the measurement loss (MSE, optional LPIPS
weight) for every image × restart row of the batch, by the generative engine: the solver declares
codes and α as its optimisation variables (:meth:`MultiCodeSolver.declare`). The codes of a row travel
as N consecutive batch rows through g0 (:mod:`priors.multicode`).

Initialisation (per (seed, index, restart) like every solver): the first code comes from the
solver's ``init`` (``random`` or ``mii``), the others from their own random streams
(``codes_init: independent``) or as copies of the first (``shared``); ``alpha_init``: ``uniform``
(every α_k = 1/N: the start image is then G(z^1) when the codes are shared), ``ones``, or explicit
values of shape (N,) (one per code, every channel) or (N, C_layer). With N = 1, unit channel weights
and ``optimize_alpha: false`` this is CSGM exactly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from common.errors import UserInputError
from common.precision import full
from common.randomness import sample_seed
from operators.base import ForwardOperator
from priors.base import LayeredPrior
from priors.multicode import check_multicode, combine_codes
from solvers.generative import GenerativeSolver
from solvers.initialization import Initialization, RandomInit
from solvers.schedule import Stage
from solvers.variables import Declaration, Variable

CODES_INITS = ("independent", "shared")
CODES, ALPHA = "codes", "alpha"


@dataclass
class _Codes:
    """Where an mGANprior solve stands: codes (rows, N, *latent) and channel weights (rows, N, C)."""

    codes: torch.Tensor
    alpha: torch.Tensor


class MultiCodeSolver(GenerativeSolver):
    """mGANprior: ``num_codes`` codes and their channel weights at split point ``layer``, ``steps`` steps at ``lr``.

    One stage on the generative engine (restarts, selection, batching, per-(seed, index) randomness
    as for every generative solver), declaring the codes and α as its variables.
    """

    def __init__(self, prior: LayeredPrior, num_codes: int = 20, layer: int = 4, steps: int = 2500, lr: float = 1.0,
                 optimizer: str = "sgd", init: Initialization | None = None, restarts: int = 1,
                 name: str = "mganprior", loss: dict | None = None, select: str = "final",
                 alpha_init="uniform", codes_init: str = "independent", optimize_alpha: bool = True,
                 holdout: float = 0.0, progress: bool = False):
        check_multicode(prior, num_codes, layer, "solver.num_codes / solver.layer")
        super().__init__(prior, [{"kind": "init", "steps": steps, "lr": lr}], init=init, restarts=restarts,
                         name=name, optimizer=optimizer, loss=loss, select=select, holdout=holdout, progress=progress)
        if codes_init not in CODES_INITS:
            raise UserInputError(f"solver.codes_init must be one of {', '.join(CODES_INITS)}, got {codes_init!r}")
        self.num_codes, self.layer, self.steps, self.lr = num_codes, layer, int(steps), float(lr)
        self.codes_init, self.optimize_alpha = codes_init, bool(optimize_alpha)
        self.channels = self._channels_at_split()
        self.alpha0 = self._initial_alpha(alpha_init)

    @torch.no_grad()
    def _channels_at_split(self) -> int:
        training = self.prior.training
        self.prior.eval()  # no batch-norm statistics are touched by the probe
        try:
            state = self.prior.to_layer(self.prior.sample_latent(1, torch.Generator().manual_seed(0)), self.layer)["state"]
        finally:
            self.prior.train(training)
        return state.shape[1]

    def _initial_alpha(self, alpha_init) -> torch.Tensor:
        """(N, C) initial channel weights."""
        n, c = self.num_codes, self.channels
        if isinstance(alpha_init, str):
            if alpha_init not in ("uniform", "ones"):
                raise UserInputError(f"solver.alpha_init must be 'uniform', 'ones' or values of shape ({n},) or "
                                     f"({n}, {c}), got {alpha_init!r}")
            return torch.full((n, c), 1.0 / n if alpha_init == "uniform" else 1.0)
        values = OmegaConf.to_container(alpha_init) if OmegaConf.is_config(alpha_init) else alpha_init
        try:
            alpha = torch.as_tensor(values, dtype=torch.float32)
        except (TypeError, ValueError):
            alpha = None
        if alpha is None or tuple(alpha.shape) not in ((n,), (n, c)) or not torch.isfinite(alpha).all():
            shape = "not a numeric array" if alpha is None else f"shape {tuple(alpha.shape)}"
            raise UserInputError(f"solver.alpha_init has {shape}; give finite values of shape ({n},) (one per code) "
                                 f"or ({n}, {c}) (codes x channels at split {self.layer}), or 'uniform' / 'ones'")
        return alpha[:, None].expand(n, c).clone() if alpha.dim() == 1 else alpha

    # -- the model -------------------------------------------------------------------------------
    def initial_codes(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int], seed: int) -> torch.Tensor:
        """(rows, N, *latent): the first code from ``init``, the others per ``codes_init``."""
        first = self.init(self.prior, operator, y, indices, seed, self.restarts)
        if self.codes_init == "shared":
            others = [first] * (self.num_codes - 1)
        else:
            random = RandomInit()
            others = [random(self.prior, operator, y, indices, sample_seed(seed, "mganprior_code", 0, k), self.restarts)
                      for k in range(1, self.num_codes)]
        return torch.stack([first, *others], dim=1)

    def image(self, codes: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """g1(Σ_k g0(z^k) ⊙ α_k) for codes (rows, N, *latent) and α (rows, N, C)."""
        rep = self.prior.to_layer(codes.flatten(0, 1), self.layer)
        return self.prior.from_layer(combine_codes(rep, alpha), self.layer)

    # -- what the engine optimises ---------------------------------------------------------------
    def start(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int], seed: int) -> _Codes:
        codes = self.initial_codes(operator, y, indices, seed).to(self.prior.device)
        return _Codes(codes, self.alpha0.to(codes.device).expand(codes.shape[0], -1, -1).clone())

    def declare(self, stage: Stage, pos: _Codes) -> Declaration:
        """The codes, and the channel weights unless ``optimize_alpha`` is off (then they stay fixed)."""
        variables = [Variable(CODES, pos.codes)]
        constants = {}
        if self.optimize_alpha:
            variables.append(Variable(ALPHA, pos.alpha))
        else:
            constants[ALPHA] = pos.alpha

        def image(values):
            return full(self.image(values[CODES], values[ALPHA]))

        def finish(done):
            return _Codes(done[CODES], done.get(ALPHA, pos.alpha))

        return Declaration(variables, image, finish, constants)

    def render(self, pos: _Codes) -> torch.Tensor:
        return self.image(pos.codes, pos.alpha)

    def latent(self, pos: _Codes) -> None:
        return None  # N codes, no single latent renders the image

    def label(self, stage: Stage) -> str:
        return f"{self.name}@{self.layer}"
