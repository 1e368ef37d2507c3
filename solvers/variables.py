"""What a generative solver optimises, as data: declared variables and the image they render.

A solver stage (or a whole method, like mGANprior) hands the engine a :class:`Declaration`: its
:class:`Variable` s (name, start value, constraint, gradient noise, learning rate), the tensors it
keeps fixed, and how those render the image. The engine (:mod:`solvers.generative`) optimises
whatever is declared: the same loop, restarts, selection, batching and per-(seed, index)
randomness for CSGM's latent, ILO's intermediate states, StyleGAN2 noise maps and mGANprior's
codes and channel weights. Which entries of a prior's representation may be variables is the
prior's own declaration (:meth:`priors.base.LayeredPrior.variable_roles`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from common.errors import UserInputError
from common.precision import full
from solvers.projection import L1Ball
from solvers.sphere import SphereProjection

CENTERS = ("start", "zero")


@dataclass
class Variable:
    """One optimised tensor, batch first (one row per image × restart).

    ``radius``: kept in the l1 ball of that radius around ``center`` (``"start"``: the start value,
    ``"zero"``), None for no ball; ``spherical``: kept on the sphere it starts on (per row and W+
    row / channel, :mod:`solvers.sphere`); ``gradient_noise``: receives the solver's per-step
    gradient noise; ``lr``: its learning rate (None: the stage's); ``negatable``: DPR's negation
    check may replace it by its negation.
    """

    name: str
    start: torch.Tensor
    radius: float | None = None
    center: str = "start"
    spherical: bool = False
    gradient_noise: bool = True
    lr: float | None = None
    negatable: bool = False

    def __post_init__(self):
        if self.center not in CENTERS:
            raise UserInputError(f"variable {self.name}: center must be one of {', '.join(CENTERS)}, got {self.center!r}")
        if self.radius is not None and not self.radius > 0:
            raise UserInputError(f"variable {self.name}: radius must be positive or None, got {self.radius!r}")
        if self.lr is not None and not self.lr > 0:
            raise UserInputError(f"variable {self.name}: lr must be positive or None, got {self.lr!r}")


@dataclass
class Declaration:
    """What one stage optimises and how its image is made.

    ``image(values)`` renders the batch from ``{**constants, **variables}`` (name → tensor); the
    engine also calls it on a doubled batch for the negation check, with every constant and
    variable doubled. ``residual(values)``, when given, is the per-row loss the stage minimises
    instead of the measurement loss (PRILO's back-projection); ``penalty(values)`` is added to the
    measurement loss per row (geocross). ``finish(values)`` gives the solver's position after the
    stage from the variables' final values (detached).
    """

    variables: list[Variable]
    image: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    finish: Callable[[dict[str, torch.Tensor]], object]
    constants: dict[str, torch.Tensor] = field(default_factory=dict)
    residual: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
    penalty: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None

    def __post_init__(self):
        names = [v.name for v in self.variables]
        if not names:
            raise UserInputError("a stage declares no optimisation variables; nothing would be optimised")
        clash = sorted(set(n for n in names if names.count(n) > 1) | (set(names) & set(self.constants)))
        if clash:
            raise UserInputError(f"variables {clash} are declared twice (or also as constants); names must be unique")


class Leaves:
    """The declared variables as optimisable leaf tensors (float32, ``rows`` rows), with their constraints."""

    def __init__(self, declared: list[Variable], rows: int):
        self.declared = list(declared)
        self.values: dict[str, torch.Tensor] = {}
        for var in self.declared:
            v = full(var.start.detach())  # optimised in float32 even when the prior runs under autocast
            self.values[var.name] = v.expand(rows, *v.shape[1:]).clone().requires_grad_(True)
        self.balls = {}
        for var in self.declared:
            if var.radius is not None:
                v = self.values[var.name]
                center = torch.zeros_like(v) if var.center == "zero" else v.detach().clone()
                self.balls[var.name] = L1Ball(center, var.radius)
        self.sphere = None

    def start_sphere(self) -> None:
        """Fix the spheres of the spherical variables at their current norms."""
        spherical = [self.values[v.name] for v in self.declared if v.spherical]
        self.sphere = SphereProjection(spherical) if spherical else None

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser groups: the variables at their own learning rate or the stage's ``lr``, one group per
        rate (a fused optimiser updates each group in one multi-tensor kernel)."""
        groups: dict[float, list[torch.Tensor]] = {}
        for v in self.declared:
            groups.setdefault(lr if v.lr is None else v.lr, []).append(self.values[v.name])
        return [{"params": params, "lr": rate} for rate, params in groups.items()]

    @torch.no_grad()
    def project_(self) -> None:
        """Spheres first, then balls (official ILO's order: its spherical optimizer, then its projections)."""
        if self.sphere is not None:
            self.sphere.project_()
        for name, ball in self.balls.items():
            ball.project_(self.values[name])

    def detached(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.values.items()}
