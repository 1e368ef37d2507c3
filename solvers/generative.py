"""One engine for CSGM, DPR, ILO, PRILO and mGANprior: a stage schedule run on a layered prior.

A solver says what each stage optimises by a :class:`solvers.variables.Declaration` (:meth:`declare`:
variables, constraints, the image they render); the engine loop (:meth:`_optimize`) optimises
whatever is declared. The layered methods here declare the prior's optimisable representation
entries at a stage's split point; :mod:`solvers.mganprior` declares codes and channel weights.

All restarts of all images run in one batch (image-major: row = image * restarts + restart).
Each row's variables are separate tensor rows, and Adam/SGD and the l1-ball projection act
row-wise, so a row's trajectory does not depend on the other rows in the batch; a row that
diverges (NaN) is reported as failed without touching the others. Per-step gradient noise
(PRILO eq. 10) comes from :class:`common.randomness.TableNormal`, keyed per row.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from common.errors import UserInputError
from common.precision import full, uncached_autocast
from common.randomness import TableNormal, sample_keys
from operators.base import ForwardOperator
from operators.subset import MeasurementSubset, held_out_entries
from priors.base import LATENT, NOISE, NOISE_PREFIX, STATE, LayeredPrior, Representation
from solvers.base import SolveResult, Solver, select_best_restart
from solvers.initialization import Initialization, RandomInit, random_noise_maps
from solvers.lr_schedule import lr_factor
from solvers.regularizers import geocross
from solvers.schedule import LATENT_KINDS, Stage, parse_schedule
from solvers.variables import Declaration, Leaves, Variable


@dataclass
class _Position:
    """Where a layered solve stands between stages: z_0, optionally a representation at ``layer``, noise maps."""

    z0: torch.Tensor
    layer: int = 0
    rep: Representation | None = None
    noise: dict[str, torch.Tensor] = field(default_factory=dict)


class _BestIterate:
    """Per row, the image with the lowest measurement error seen so far (selection never uses ground truth).

    :meth:`update` takes over the storage of the image it is given (no copy when every row
    improved, the usual case), so the caller must not reuse that tensor, and must call it after
    the backward pass that needed it.
    """

    def __init__(self):
        self.x = self.err = None

    @torch.no_grad()
    def update(self, x: torch.Tensor, err: torch.Tensor) -> None:
        x, err = x.detach(), err.nan_to_num(nan=float("inf"), posinf=float("inf"), neginf=float("inf"))
        if self.x is not None:
            kept = (err >= self.err).nonzero().squeeze(1)  # rows whose earlier image stays the best
            if len(kept):
                x.index_copy_(0, kept, self.x.index_select(0, kept))
            err = torch.minimum(err, self.err)
        self.x, self.err = x, err


def _mean_over_finite_rows(values: torch.Tensor) -> torch.Tensor:
    """(steps, rows) → per step, the mean over the rows that have not failed (NaN if all have)."""
    finite = torch.isfinite(values)
    return torch.where(finite, values, 0).sum(1) / finite.sum(1)


def _optimizer(kind: str, groups: list[dict]) -> torch.optim.Optimizer:
    """Adam or SGD, with the fused (one-kernel) update where torch has it for the parameters' device."""
    cls = torch.optim.Adam if kind == "adam" else torch.optim.SGD
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    return cls(groups, fused=fused or None)


class GenerativeSolver(Solver):
    """Run ``schedule`` (see :mod:`solvers.schedule`) for every image and restart, keep the lowest error.

    ``gradient_noise``: ``{eta, gamma}`` adds u_k ~ N(0, eta / (1 + k)^gamma) to every gradient
    (k counts steps within a stage).

    ``restarts`` is the number of starts (optimisation runs) per image, whatever else is on:
    ``two_start`` (DPR's image experiments) makes them pairs, ``restarts / 2`` initial latents
    from ``init`` and their negations (so ``restarts`` must be even); ``negation_check`` (DPR
    algorithm 1) replaces z by -z before a latent step whenever that lowers the objective, inside
    an l1 ball by negating the ball's centre too (the ball is symmetric under z -> -z), and adds
    no start. ``loss`` weights the measurement terms: ``mse`` (squared error summed over
    measurement entries), ``mse_mean`` (its mean over the entries), ``lpips`` (only for
    image-shaped measurements) and ``geocross`` (:func:`solvers.regularizers.geocross` of z_0 in
    init/refine stages). ``select``: ``final`` keeps each run's last output: for a schedule ending
    in a latent stage (PRILO's refinement) that is the paper's rule x* = G(z_0*), and ``latent``
    is that z_0*; ``best`` keeps the iterate with the lowest measurement error over all
    measurement-fitting steps (ours, after PRILO's figure 7), including forward-stage outputs in
    the extended range, which need not be G of any latent (``latent`` is then None);
    ``best_last_stage`` the lowest over the last stage (official ILO). ``noise_init``: StyleGAN2
    noise maps start from the prior's fixed maps (``fixed``) or from fresh N(0, 1) draws per
    (image, restart) (``random``, official ILO). ``skip``/``ball`` are the ablation switches of
    PRILO table 3. ``holdout`` (default 0, off): fit all but this fraction of the measurements
    and judge iterates (``select``) and restarts by the error on the held-out rest, which no step
    has fitted, so that an iterate over-fitted to few measurements is not kept
    (:mod:`operators.subset`; Gaussian operators only).
    """

    requires_prior = True

    def __init__(self, prior: LayeredPrior, schedule: Sequence, init: Initialization | None = None,
                 restarts: int = 1, name: str = "generative", optimizer: str = "adam",
                 gradient_noise: dict | None = None, two_start: bool = False, negation_check: bool = False,
                 loss: dict | None = None, select: str = "final", skip: Sequence[str] = (), ball: bool = True,
                 stage_defaults: dict | None = None, noise_init: str = "fixed", holdout: float = 0.0,
                 progress: bool = False):
        if restarts < 1:
            raise UserInputError(f"restarts must be >= 1, got {restarts}")
        if two_start and restarts % 2:
            raise UserInputError(f"two_start runs every initial latent and its negation, so restarts (the number of "
                                 f"starts per image) must be even, got {restarts}; set restarts=2k or solver.two_start=false")
        if optimizer not in ("adam", "sgd"):
            raise UserInputError(f"solver.optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        if select not in ("final", "best", "best_last_stage"):
            raise UserInputError(f"solver.select must be 'final', 'best' or 'best_last_stage', got {select!r}")
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 1:
            raise UserInputError(f"solver.holdout must be a fraction in [0, 1) of the measurements, got {holdout!r}")
        if noise_init not in ("fixed", "random"):
            raise UserInputError(f"solver.noise_init must be 'fixed' or 'random', got {noise_init!r}")
        self.prior = prior
        self.stages = parse_schedule(schedule, stage_defaults, skip, ball, prior.num_layers)
        for prev, stage in zip([None, *self.stages], self.stages):
            if stage.kind == "backproject" and (prev is None or prev.kind != "forward" or prev.layer != stage.layer):
                raise UserInputError(f"a backproject stage at layer {stage.layer} must follow a forward stage at "
                                     f"the same layer; fix solver.schedule")
        self.init = init or RandomInit()
        self.restarts = int(restarts)
        self.name = name
        self.optimizer = optimizer
        noise = dict(gradient_noise or {})
        self.noise_eta, self.noise_gamma = float(noise.get("eta", 0.0)), float(noise.get("gamma", 0.55))
        self.two_start = bool(two_start)
        self.negation_check = bool(negation_check)
        weights = dict(loss or {"mse": 1.0})
        if set(weights) - {"mse", "mse_mean", "lpips", "geocross"}:
            raise UserInputError(f"solver.loss supports mse, mse_mean, lpips and geocross weights, got {sorted(weights)}")
        self.mse_weight, self.lpips_weight = float(weights.get("mse", 0.0)), float(weights.get("lpips", 0.0))
        self.mse_mean_weight, self.geocross_weight = float(weights.get("mse_mean", 0.0)), float(weights.get("geocross", 0.0))
        self.select = select
        self.noise_init = noise_init
        self.holdout = float(holdout)
        self._subset: tuple[tuple | None, MeasurementSubset | None] = (None, None)  # (operator id, seed) -> its fitted part
        self.progress = progress

    def check_setup(self, operator: ForwardOperator) -> None:
        self.init.check(self.prior, operator)
        if self.holdout:
            held_out_entries(operator, self.holdout, seed=0)  # refuses operators whose entries cannot be held out

    # -- the measurement objective -------------------------------------------------------------
    def _objective(self, x: torch.Tensor, operator: ForwardOperator, y: torch.Tensor, y_all: torch.Tensor | None = None):
        """(loss per row, fitted measurement MSE per row, held-out MSE per row or None). ``y_all``: every measurement
        of a held-out run (``operator`` is then its MeasurementSubset; both errors come from one forward)."""
        mse, held = (operator.measurement_error(x, y), None) if y_all is None else operator.errors(x, y_all)
        loss = (self.mse_weight * y[0].numel() + self.mse_mean_weight) * mse
        if self.lpips_weight:
            from evaluation.metrics import lpips_loss

            pred = operator(x)
            if pred.dim() != 4 or pred.shape[1] not in (1, 3):
                raise UserInputError(f"an LPIPS loss needs image-shaped measurements; operator {operator.name} "
                                     f"gives {tuple(pred.shape[1:])}; set solver.loss.lpips=0")
            loss = loss + self.lpips_weight * lpips_loss(pred, y)
        return loss, mse, held

    # -- what the layered methods optimise (override these four for another parametrisation) ------
    def start(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int], seed: int) -> _Position:
        """The position before the first stage: z_0 per (image, restart) from ``init``, the noise maps."""
        prior, runs = self.prior, self.restarts
        if self.two_start:
            z0 = full(self.init(prior, operator, y, indices, seed, runs // 2).to(prior.device))
            z0 = torch.stack([z0, -z0], dim=1).flatten(0, 1)
        else:
            z0 = full(self.init(prior, operator, y, indices, seed, runs).to(prior.device))
        noise = random_noise_maps(prior, seed, indices, runs) if self.noise_init == "random" else {}
        return _Position(z0=z0, noise={k: v.to(prior.device) for k, v in noise.items()})

    def declare(self, stage: Stage, pos: _Position) -> Declaration:
        """The stage's variables: the entries of the representation at its split point (0 for latent
        kinds) that the prior declares optimisable (:meth:`LayeredPrior.variable_roles`), constrained
        by the stage's options; a back-projection fits z_0 to the representation reached."""
        layer = stage.layer if stage.kind == "forward" else 0
        rep = {k: v.detach() for k, v in (self._start_rep(pos, layer) if layer else self._rep_at_zero(pos)).items()}
        roles = self.prior.variable_roles(rep)
        names = [k for role in (STATE, LATENT) for k in roles if roles[k] == role]
        if stage.optimize_noise and stage.kind != "backproject":
            names += [k for k in roles if roles[k] == NOISE
                      and (stage.noise_maps is None or int(k[len(NOISE_PREFIX):]) < stage.noise_maps)]
        radii = {STATE: stage.radius, LATENT: stage.latent_radius}
        negatable = self.negation_check and stage.kind in LATENT_KINDS
        variables = [Variable(k, rep.pop(k), radius=radii.get(roles[k]), center=stage.center,
                              spherical=stage.spherical and (layer == 0 or roles[k] != STATE),
                              negatable=negatable and roles[k] == STATE) for k in names]
        n = pos.z0.shape[0]
        constants = {k: v.expand(n, *v.shape[1:]) for k, v in rep.items()}

        def image(values):
            return full(self.prior.from_layer(values, layer))

        def finish(done):
            noise = {**pos.noise, **{k: v for k, v in done.items() if roles[k] == NOISE}}
            if layer:
                return _Position(z0=pos.z0, layer=layer, rep={**constants, **done}, noise=noise)
            return _Position(z0=done[STATE], noise=noise)

        residual = penalty = None
        if stage.kind == "backproject":
            target_roles = self.prior.variable_roles(pos.rep)
            target = {k: full(v.detach()) for k, v in pos.rep.items() if target_roles.get(k) in (STATE, LATENT)}

            def residual(values):
                reached = self.prior.run(values, 0, stage.layer)
                return sum((full(reached[t]) - target[t]).flatten(1).pow(2).sum(1) for t in target)
        elif layer == 0 and self.geocross_weight:
            def penalty(values):
                return self.geocross_weight * geocross(values[STATE])
        return Declaration(variables, image, finish, constants, residual, penalty)

    def render(self, pos: _Position) -> torch.Tensor:
        if pos.rep is None:
            return self.prior.from_layer(self._rep_at_zero(pos), 0)
        return self.prior.from_layer(pos.rep, pos.layer)

    def latent(self, pos: _Position) -> torch.Tensor | None:
        """The latent whose image a position renders (None when it renders an extended-range state)."""
        return pos.z0 if pos.rep is None else None

    def label(self, stage: Stage) -> str:
        return stage.label

    def _rep_at_zero(self, pos: _Position) -> Representation:
        rep = self.prior.initial_representation(pos.z0)
        rep.update(pos.noise)
        return rep

    def _start_rep(self, pos: _Position, layer: int) -> Representation:
        """Representation at ``layer`` to start a forward stage from (ILO: advance the current one)."""
        if pos.rep is not None and pos.layer <= layer:
            return self.prior.run(pos.rep, pos.layer, layer)
        return self.prior.run(self._rep_at_zero(pos), 0, layer)

    # -- the engine: optimise what a stage declares ----------------------------------------------
    def _optimize(self, index: int, stage: Stage, decl: Declaration, operator: ForwardOperator, y: torch.Tensor,
                  keys: torch.Tensor, best: _BestIterate | None, y_all: torch.Tensor | None = None
                  ) -> tuple[object, list[float]]:
        """Run ``stage.steps`` steps on the declared variables; (the position after it, its curve). ``best`` tracks
        the iterates by their fitted measurement error, or with ``y_all`` (a held-out run) by the held-out one."""
        leaves = Leaves(decl.variables, y.shape[0])
        opt = _optimizer(self.optimizer, leaves.param_groups(stage.lr))
        base_lrs = [group["lr"] for group in opt.param_groups]
        leaves.start_sphere()
        noisy = [(j, leaves.values[v.name]) for j, v in enumerate(decl.variables) if v.gradient_noise]
        noises = [(v, TableNormal(keys, v.shape[1:])) for _, v in noisy] if self.noise_eta > 0 else []
        # each step's window offsets for every variable, hashed once for the stage
        offsets = [noise.offsets([((index * 64 + j) << 24) + k for k in range(stage.steps)])
                   for (j, _), (_, noise) in zip(noisy, noises)]
        negatable = [v.name for v in decl.variables if v.negatable]
        per_row = []  # per step, each row's objective (detached): the curve is reduced after the loop
        for k in range(stage.steps):
            if negatable:
                self._negate_where_better(decl, leaves, negatable, operator, y, opt)
            opt.zero_grad(set_to_none=True)
            values = {**decl.constants, **leaves.values}
            if decl.residual is not None:
                loss = decl.residual(values)
                per_row.append(loss.detach())
            else:
                x = decl.image(values)
                loss, mse, held = self._objective(x, operator, y, y_all if best is not None else None)
                if decl.penalty is not None:
                    loss = loss + decl.penalty(values)
                per_row.append(mse.detach())
            loss.sum().backward()
            if best is not None and decl.residual is None:
                best.update(x, (mse if held is None else held).detach())
            sigma = (self.noise_eta / (1 + k) ** self.noise_gamma) ** 0.5
            for (v, noise), steps in zip(noises, offsets):
                noise.add_(v.grad, steps[k], alpha=sigma)
            if stage.lr_schedule != "constant":
                factor = lr_factor(stage.lr_schedule, k / stage.steps)
                for group, lr in zip(opt.param_groups, base_lrs):
                    group["lr"] = lr * factor
            opt.step()
            leaves.project_()
        curve = _mean_over_finite_rows(torch.stack(per_row)).tolist() if per_row else []
        return decl.finish(leaves.detached()), curve

    @torch.no_grad()
    def _negate_where_better(self, decl: Declaration, leaves: Leaves, negatable: list[str], operator, y, opt) -> None:
        """DPR's check: z -> -z per row where that lowers the objective (every other input unchanged);
        a ball around c moves to -c with it, so that the projection keeps the flipped iterate
        (||-z - (-c)||_1 = ||z - c||_1)."""
        rows = y.shape[0]
        both = {k: torch.cat([v, -v]) if k in negatable else torch.cat([v, v]) for k, v in leaves.values.items()}
        doubled = {k: torch.cat([v, v]) for k, v in decl.constants.items()}
        loss, *_ = self._objective(decl.image({**doubled, **both}), operator, torch.cat([y, y]))
        flip = loss[rows:] < loss[:rows]
        if not bool(flip.any()):
            return
        for name in negatable:
            z = leaves.values[name]
            sign = torch.where(flip, -1.0, 1.0).to(z.dtype).view(-1, *([1] * (z.dim() - 1)))
            z.mul_(sign)
            if name in leaves.balls:
                leaves.balls[name].center.mul_(sign)
            state = opt.state.get(z, {})
            if "exp_avg" in state:  # keep Adam's first moment consistent with the flipped iterate
                state["exp_avg"].mul_(sign)

    # -- the whole solve ---------------------------------------------------------------------
    def _measurement_subset(self, operator: ForwardOperator, seed: int) -> MeasurementSubset:
        """The fitted part of ``operator``'s measurements, one object per (operator, seed): batch after batch, an
        initialisation's per-operator cache (MII's candidate measurements) stays valid."""
        key = (id(operator), seed)
        if self._subset[0] != key:
            self._subset = (key, MeasurementSubset(operator, ~held_out_entries(operator, self.holdout, seed)))
        return self._subset[1].to(self.prior.device)

    def solve(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int], seed: int) -> SolveResult:
        """With ``holdout`` > 0 the solver fits all but a held-out fraction of the measurements (the same entries
        for every image, drawn from ``seed``) and judges iterates and restarts by their error on the held-out ones."""
        device = self.prior.device
        operator = operator.to(device)
        y = y.to(device)
        operator.check_measurements(y)
        runs = self.restarts
        y_runs = y.repeat_interleave(runs, dim=0)
        fitted = self._measurement_subset(operator, seed) if self.holdout else operator
        y_fit = fitted.restrict(y) if self.holdout else y
        y_all = y_runs if self.holdout else None  # a held-out run judges candidates on every measurement's error
        pos = self.start(fitted, y_fit, indices, seed)
        y_fit_runs = y_fit.repeat_interleave(runs, dim=0)
        keys = sample_keys(seed, "gradient_noise", indices, runs, device=device)
        history: dict[str, list[float]] = {}
        best = _BestIterate() if self.select != "final" else None
        last = len(self.stages) - 1
        with torch.enable_grad(), uncached_autocast(device):  # the variables change in place every step
            for i, stage in enumerate(tqdm(self.stages, desc=self.name, leave=False, disable=not self.progress)):
                tracked = best if self.select == "best" or i == last else None
                pos, history[f"{i:02d}_{self.label(stage)}"] = self._optimize(
                    i, stage, self.declare(stage, pos), fitted, y_fit_runs, keys, tracked, y_all)
        with torch.no_grad():  # the last iterate (after its final update) is a candidate too
            final = _BestIterate() if best is None else best
            x_last = full(self.render(pos))
            final.update(x_last, fitted.errors(x_last, y_all)[1] if self.holdout
                         else operator.measurement_error(x_last, y_runs))
            pick = select_best_restart(final.err, runs)
            err = final.err[pick]
            if self.holdout:  # report the kept image's error on every measurement, as without a holdout
                err = torch.where(torch.isfinite(err), operator.measurement_error(final.x[pick], y), err)
        latent = self.latent(pos) if best is None else None
        return SolveResult(x=final.x[pick].clamp(0, 1), measurement_error=err, failed=~torch.isfinite(err),
                           latent=None if latent is None else latent[pick], history=history)
