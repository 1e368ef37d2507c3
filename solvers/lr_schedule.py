"""Learning-rate schedules within a stage, as factors of the stage's ``lr`` at progress t = k / steps.

* ``constant``: 1.
* ``cosine``: the StyleGAN2 projector's ramp that ILO uses (``get_lr`` in ilo_stylegan.py):
  linear warm-up over the first ``rampup`` = 5% of the steps (0 at the first step), cosine
  decay to 0 over the last ``rampdown`` = 75%.
"""
from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, t: float, rampdown: float = 0.75, rampup: float = 0.05) -> float:
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        ramp = min(1.0, (1.0 - t) / rampdown)
        return (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / rampup)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
