"""One engine for CSGM, DPR, ILO and PRILO: a stage schedule run on a layered prior.

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
from common.randomness import TableNormal, sample_keys
from operators.base import ForwardOperator
from priors.base import LayeredPrior, Representation
from solvers.base import SolveResult, select_best_restart
from solvers.initialization import Initialization, RandomInit, random_noise_maps
from solvers.lr_schedule import lr_factor
from solvers.projection import L1Ball
from solvers.regularizers import geocross
from solvers.schedule import LATENT_KINDS, Stage, parse_schedule
from solvers.sphere import SphereProjection

NOISE_PREFIX = "noise."


@dataclass
class _Position:
    """Where the optimisation stands: z_0, optionally a representation at ``layer``, noise maps."""

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


def _optimizer(kind: str, params: list, lr: float) -> torch.optim.Optimizer:
    """Adam or SGD, with the fused (one-kernel) update where torch has it for the parameters' device."""
    cls = torch.optim.Adam if kind == "adam" else torch.optim.SGD
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return cls(params, lr=lr, fused=fused or None)


class GenerativeSolver:
    """Run ``schedule`` (see :mod:`solvers.schedule`) for every image and restart, keep the lowest error.

    ``gradient_noise``: ``{eta, gamma}`` adds u_k ~ N(0, eta / (1 + k)^gamma) to every gradient
    (k counts steps within a stage). ``two_start`` (DPR's image experiments) runs every
    initial latent and its negation; ``negation_check`` (DPR algorithm 1) replaces z by -z
    before a latent step whenever that lowers the objective. ``loss`` weights the measurement
    terms: ``mse`` (squared error summed over measurement entries), ``mse_mean`` (its mean over
    the entries), ``lpips`` (only for image-shaped measurements) and ``geocross``
    (:func:`solvers.regularizers.geocross` of z_0 in init/refine stages). ``select``: ``final``
    keeps each run's last output, ``best`` the iterate with the lowest measurement error over all
    measurement-fitting steps (PRILO's rule, its figure 7), including forward-stage outputs in
    the extended range, ``best_last_stage`` the lowest over the last stage (official ILO).
    ``noise_init``: StyleGAN2 noise maps start from the prior's fixed maps (``fixed``) or from
    fresh N(0, 1) draws per (image, restart) (``random``, official ILO). ``skip``/``ball`` are the
    ablation switches of PRILO table 3.
    """

    requires_prior = True

    def __init__(self, prior: LayeredPrior, schedule: Sequence, init: Initialization | None = None,
                 restarts: int = 1, name: str = "generative", optimizer: str = "adam",
                 gradient_noise: dict | None = None, two_start: bool = False, negation_check: bool = False,
                 loss: dict | None = None, select: str = "final", skip: Sequence[str] = (), ball: bool = True,
                 stage_defaults: dict | None = None, noise_init: str = "fixed", progress: bool = False):
        if restarts < 1:
            raise UserInputError(f"restarts must be >= 1, got {restarts}")
        if optimizer not in ("adam", "sgd"):
            raise UserInputError(f"solver.optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        if select not in ("final", "best", "best_last_stage"):
            raise UserInputError(f"solver.select must be 'final', 'best' or 'best_last_stage', got {select!r}")
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
        self.progress = progress

    # -- the measurement objective -------------------------------------------------------------
    def _objective(self, x: torch.Tensor, operator: ForwardOperator, y: torch.Tensor):
        """(loss per row, measurement MSE per row)."""
        mse = operator.measurement_error(x, y)
        loss = (self.mse_weight * y[0].numel() + self.mse_mean_weight) * mse
        if self.lpips_weight:
            from evaluation.metrics import lpips_loss

            pred = operator(x)
            if pred.dim() != 4 or pred.shape[1] not in (1, 3):
                raise UserInputError(f"an LPIPS loss needs image-shaped measurements; operator {operator.name} "
                                     f"gives {tuple(pred.shape[1:])}; set solver.loss.lpips=0")
            loss = loss + self.lpips_weight * lpips_loss(pred, y)
        return loss, mse

    # -- rendering from a position ----------------------------------------------------------------
    def _rep_at_zero(self, z0: torch.Tensor, noise: dict) -> Representation:
        rep = self.prior.initial_representation(z0)
        rep.update(noise)
        return rep

    def _render(self, pos: _Position) -> torch.Tensor:
        if pos.rep is None:
            return self.prior.from_layer(self._rep_at_zero(pos.z0, pos.noise), 0)
        return self.prior.from_layer(pos.rep, pos.layer)

    def _start_rep(self, pos: _Position, layer: int) -> Representation:
        """Representation at ``layer`` to start a forward stage from (ILO: advance the current one)."""
        if pos.rep is not None and pos.layer <= layer:
            return self.prior.run(pos.rep, pos.layer, layer)
        return self.prior.run(self._rep_at_zero(pos.z0, pos.noise), 0, layer)

    # -- one stage ---------------------------------------------------------------------------
    def _variables(self, stage: Stage, pos: _Position) -> tuple[dict, dict, Representation]:
        """(variables name → tensor, their ball {name: (center, radius)}, constant rep parts)."""
        n = pos.z0.shape[0]
        if stage.kind == "forward":
            rep = {k: v.detach() for k, v in self._start_rep(pos, stage.layer).items()}
            names = ["state"] + (["latent"] if "latent" in rep else [])
            radii = {"state": stage.radius, "latent": stage.latent_radius}
        else:
            rep = {k: v.detach() for k, v in self._rep_at_zero(pos.z0, pos.noise).items()}
            rep["z0"] = pos.z0.detach()
            names, radii = ["z0"], {"z0": stage.radius}
        if stage.optimize_noise and stage.kind != "backproject":
            names += [k for k in rep if k.startswith(NOISE_PREFIX)
                      and (stage.noise_maps is None or int(k[len(NOISE_PREFIX):]) < stage.noise_maps)]
        variables = {}
        for k in names:
            v = rep.pop(k).detach()
            variables[k] = v.expand(n, *v.shape[1:]).clone().requires_grad_(True)
        rep = {k: v.expand(n, *v.shape[1:]) for k, v in rep.items()}
        balls = {}
        for k in names:
            r = radii.get(k)
            if r is not None:
                center = torch.zeros_like(variables[k]) if stage.center == "zero" else variables[k].detach().clone()
                balls[k] = L1Ball(center, r)
        return variables, balls, rep

    def _image(self, stage: Stage, variables: dict, const: Representation) -> torch.Tensor:
        if stage.kind == "forward":
            return self.prior.from_layer({**const, **variables}, stage.layer)
        rep = self.prior.initial_representation(variables["z0"])
        rep.update({k: v for k, v in const.items() if k.startswith(NOISE_PREFIX)})
        rep.update({k: v for k, v in variables.items() if k.startswith(NOISE_PREFIX)})
        return self.prior.from_layer(rep, 0)

    def _run_stage(self, index: int, stage: Stage, pos: _Position, operator: ForwardOperator, y: torch.Tensor,
                   keys: torch.Tensor, best: _BestIterate | None) -> list[float]:
        variables, balls, const = self._variables(stage, pos)
        target = None
        if stage.kind == "backproject":
            target = {k: v.detach() for k, v in pos.rep.items() if k in ("state", "latent")}
        params = list(variables.values())
        opt = _optimizer(self.optimizer, params, stage.lr)
        sphere = SphereProjection([v for k, v in variables.items() if k != "state"]) if stage.spherical else None
        noises = [TableNormal(keys, v.shape[1:]) for v in params] if self.noise_eta > 0 else []
        # each step's window offsets for every variable, hashed once for the stage
        offsets = [noise.offsets([((index * 64 + j) << 24) + k for k in range(stage.steps)])
                   for j, noise in enumerate(noises)]
        per_row = []  # per step, each row's objective (detached): the curve is reduced after the loop
        for k in range(stage.steps):
            if self.negation_check and stage.kind in LATENT_KINDS:
                self._negate_where_better(stage, variables, const, operator, y, opt)
            opt.zero_grad(set_to_none=True)
            if target is not None:
                rep = self.prior.to_layer(variables["z0"], stage.layer)
                loss = sum((rep[t] - target[t]).flatten(1).pow(2).sum(1) for t in target)
                per_row.append(loss.detach())
            else:
                x = self._image(stage, variables, const)
                loss, mse = self._objective(x, operator, y)
                if self.geocross_weight and "z0" in variables:
                    loss = loss + self.geocross_weight * geocross(variables["z0"])
                per_row.append(mse.detach())
            loss.sum().backward()
            if best is not None and target is None:
                best.update(x, mse)
            sigma = (self.noise_eta / (1 + k) ** self.noise_gamma) ** 0.5
            for v, noise, steps in zip(params, noises, offsets):
                noise.add_(v.grad, steps[k], alpha=sigma)
            if stage.lr_schedule != "constant":
                opt.param_groups[0]["lr"] = stage.lr * lr_factor(stage.lr_schedule, k / stage.steps)
            opt.step()
            if sphere is not None:
                sphere.project_()
            with torch.no_grad():
                for name, ball in balls.items():
                    ball.project_(variables[name])
        self._update_position(stage, pos, variables, const)
        return _mean_over_finite_rows(torch.stack(per_row)).tolist() if per_row else []

    @torch.no_grad()
    def _negate_where_better(self, stage, variables, const, operator, y, opt) -> None:
        z = variables["z0"]
        both = {**variables, "z0": torch.cat([z, -z])}
        const2 = {k: torch.cat([v, v]) for k, v in const.items()}
        loss, _ = self._objective(self._image(stage, both, const2), operator, torch.cat([y, y]))
        flip = loss[z.shape[0]:] < loss[: z.shape[0]]
        if bool(flip.any()):
            sign = torch.where(flip, -1.0, 1.0).to(z.dtype).view(-1, *([1] * (z.dim() - 1)))
            z.mul_(sign)
            state = opt.state.get(z, {})
            if "exp_avg" in state:  # keep Adam's first moment consistent with the flipped iterate
                state["exp_avg"].mul_(sign)

    @staticmethod
    def _update_position(stage: Stage, pos: _Position, variables: dict, const: Representation) -> None:
        done = {k: v.detach() for k, v in variables.items()}
        pos.noise.update({k: v for k, v in done.items() if k.startswith(NOISE_PREFIX)})
        if stage.kind == "forward":
            pos.rep = {**const, **done}
            pos.layer = stage.layer
        else:
            pos.z0, pos.rep, pos.layer = done["z0"], None, 0

    # -- the whole solve ---------------------------------------------------------------------
    def solve(self, operator: ForwardOperator, y: torch.Tensor, indices: Sequence[int], seed: int) -> SolveResult:
        prior = self.prior
        device = prior.device
        operator = operator.to(device)
        y = y.to(device)
        operator.check_measurements(y)
        z0 = self.init(prior, operator, y, indices, seed, self.restarts).to(device)
        runs = self.restarts
        if self.two_start:
            z0 = torch.stack([z0, -z0], dim=1).flatten(0, 1)
            runs *= 2
        y_runs = y.repeat_interleave(runs, dim=0)
        keys = sample_keys(seed, "gradient_noise", indices, runs, device=device)
        noise = random_noise_maps(prior, seed, indices, runs) if self.noise_init == "random" else {}
        pos = _Position(z0=z0, noise={k: v.to(device) for k, v in noise.items()})
        history: dict[str, list[float]] = {}
        best = _BestIterate() if self.select != "final" else None
        last = len(self.stages) - 1
        with torch.enable_grad():
            for i, stage in enumerate(tqdm(self.stages, desc=self.name, leave=False, disable=not self.progress)):
                tracked = best if self.select == "best" or i == last else None
                history[f"{i:02d}_{stage.label}"] = self._run_stage(i, stage, pos, operator, y_runs, keys, tracked)
        with torch.no_grad():  # the last iterate (after its final update) is a candidate too
            final = _BestIterate() if best is None else best
            x_last = self._render(pos)
            final.update(x_last, operator.measurement_error(x_last, y_runs))
        pick = select_best_restart(final.err, runs)
        err = final.err[pick]
        return SolveResult(x=final.x[pick].clamp(0, 1), measurement_error=err, failed=~torch.isfinite(err),
                           latent=pos.z0[pick] if pos.rep is None else None, history=history)
