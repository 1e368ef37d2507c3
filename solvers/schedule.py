"""Stage schedules as data: PRILO's appendix G tables, ILO rounds and CSGM are lists of stages.

A schedule config is a list whose items are either a stage or a block
``{repeat: R, stages: [...]}`` (repeated R times, e.g. PRILO's per-layer repetitions).
Stage kinds:

* ``init``: optimise the latent z_0 on the measurement loss (CSGM, DPR, ILO/PRILO's initial step);
* ``forward``: optimise the representation at ``layer`` (its ``"state"`` within ``radius``,
  a travelling ``"latent"`` within ``latent_radius``) on the measurement loss (ILO / PRILO step A);
* ``backproject``: optimise z_0 so that G_1^layer(z_0) matches the optimised representation (step B);
* ``refine``: optimise z_0 again on the measurement loss, starting from the back-projection (step C).

Each l1 ball is centred on the variable's value at the start of the stage (``center: start``)
or on zero (``center: zero``, PRILO's B_s(0) for back-projection); ``radius: null`` means no ball.
Official ILO's ingredients (docs/STYLEGAN2.md): ``lr_schedule`` (:mod:`solvers.lr_schedule`),
``spherical`` (z_0 / W+ rows and noise maps kept on their starting spheres, :mod:`solvers.sphere`)
and ``noise_maps: n`` (optimise only the noise maps ``noise.0`` … ``noise.{n-1}``; null: all).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from common.errors import UserInputError
from solvers.lr_schedule import SCHEDULES

KINDS = ("init", "forward", "backproject", "refine")
#: kinds optimised on the measurement loss at split point 0
LATENT_KINDS = ("init", "refine")


@dataclass(frozen=True)
class Stage:
    kind: str
    steps: int
    lr: float
    layer: int = 0
    radius: float | None = None
    latent_radius: float | None = None
    center: str = "start"
    optimize_noise: bool = False
    noise_maps: int | None = None
    lr_schedule: str = "constant"
    spherical: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind}@{self.layer}" if self.kind in ("forward", "backproject") else self.kind


def _stage(item: dict, defaults: dict, where: str) -> Stage:
    fields = {**defaults, **item}
    unknown = set(fields) - set(Stage.__dataclass_fields__)
    if unknown:
        raise UserInputError(f"{where}: unknown stage option(s) {sorted(unknown)}; allowed: {sorted(Stage.__dataclass_fields__)}")
    stage = Stage(**fields)
    if stage.kind not in KINDS:
        raise UserInputError(f"{where}: unknown stage kind {stage.kind!r}; use one of {', '.join(KINDS)}")
    if not (isinstance(stage.steps, int) and stage.steps > 0):
        raise UserInputError(f"{where}: steps must be a positive integer, got {stage.steps!r}")
    if not stage.lr > 0:
        raise UserInputError(f"{where}: lr must be positive, got {stage.lr!r}")
    for name in ("radius", "latent_radius"):
        value = getattr(stage, name)
        if value is not None and not value > 0:
            raise UserInputError(f"{where}: {name} must be positive or null (no ball), got {value!r}")
    if stage.center not in ("start", "zero"):
        raise UserInputError(f"{where}: center must be 'start' or 'zero', got {stage.center!r}")
    if stage.lr_schedule not in SCHEDULES:
        raise UserInputError(f"{where}: lr_schedule must be one of {', '.join(SCHEDULES)}, got {stage.lr_schedule!r}")
    if stage.noise_maps is not None and not (isinstance(stage.noise_maps, int) and stage.noise_maps >= 0):
        raise UserInputError(f"{where}: noise_maps must be a count >= 0 or null (all), got {stage.noise_maps!r}")
    if stage.kind in ("forward", "backproject") and stage.layer < 1:
        raise UserInputError(f"{where}: a {stage.kind} stage needs layer >= 1, got {stage.layer}")
    return stage


def parse_schedule(items: Iterable, defaults: dict | None = None, skip: Iterable[str] = (), ball: bool = True,
                   num_layers: int | None = None) -> list[Stage]:
    """Expand blocks, drop skipped kinds (ablations), optionally remove every ball, validate."""
    defaults = dict(defaults or {})
    skip = set(skip)
    if skip - set(KINDS):
        raise UserInputError(f"solver.skip names unknown stage kinds {sorted(skip - set(KINDS))}; use {', '.join(KINDS)}")
    stages: list[Stage] = []
    for n, item in enumerate(items):
        item = dict(item)
        if "stages" in item:
            repeat = item.pop("repeat", 1)
            if set(item) != {"stages"} or not (isinstance(repeat, int) and repeat > 0):
                raise UserInputError(f"schedule item {n}: a block is {{repeat: positive int, stages: [...]}}")
            block = [_stage(dict(s), defaults, f"schedule item {n}.{m}") for m, s in enumerate(item["stages"])]
            stages.extend(block * repeat)
        else:
            stages.append(_stage(item, defaults, f"schedule item {n}"))
    if not stages:
        raise UserInputError("solver.schedule is empty; give at least one stage, e.g. "
                             "solver.schedule=[{kind:init,steps:300,lr:0.1}]")
    if num_layers is not None:
        for s in stages:
            if s.layer >= num_layers:
                raise UserInputError(
                    f"stage {s.label} names layer {s.layer}, but the prior's intermediate split points are "
                    f"1..{num_layers - 1}; fix solver.schedule"
                )
    stages = [s for s in stages if s.kind not in skip]
    if not stages:
        raise UserInputError(f"solver.skip={sorted(skip)} removes every stage of solver.schedule; "
                             f"nothing is left to run")
    if not ball:
        stages = [replace(s, radius=None, latent_radius=None) for s in stages]
    return stages
