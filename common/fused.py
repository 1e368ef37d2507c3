"""Fused kernels for the solvers' per-step work outside the prior, with eager twins.

The l1 projection's Newton rounds and soft-threshold are a few elementwise operations and row
reductions over an optimised variable, at every step. Eager PyTorch makes one pass over memory
per operation; ``torch.compile`` (Inductor: C++/OpenMP on the CPU, Triton on GPUs) fuses a kernel
into one pass. A :class:`FusedKernel` pairs the function to compile with an eager twin that
computes the same values (to rounding) with in-place operations and scratch buffers, the fastest
eager form.

A call whose first tensor has fewer than :data:`MIN_NUMEL` elements runs the eager twin: there the
compiled kernel's fixed cost per call (guards, launch) eats most of what its fewer passes save,
and the savings would not repay the compilation (a few seconds per process). Compilation happens
on a kernel's first large call, once per dtype and device (shapes are dynamic; PyTorch caches the
generated code on disk). If it fails (no C++ compiler, an unsupported platform) one warning says
so and every kernel runs its eager twin from then on. Switch: :func:`set_enabled`,
``invert.py fused_kernels=false``, or the environment variable ``GENPRIOR_FUSED=0``; the tests run
eager by default and check the two against each other (tests/test_fused.py).
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable

import torch

ENV = "GENPRIOR_FUSED"
#: smallest first argument (elements) that runs compiled: the default invert.py run (512 rows of 500,
#: 256,000 elements) is slower end to end compiled, compilation included, while compiling pays at 1,024
#: rows of 500 (docs/RESULTS.md, "Inversion speed": benchmarks/fused_threshold.py, benchmarks/inversion_speed.py)
MIN_NUMEL = 2 ** 18
_enabled: bool | None = None  # None: from the environment (default on)
_broken: str | None = None  # why compilation failed, once it has


def set_enabled(enabled: bool | None) -> None:
    """Compile the kernels (True), run the eager twins (False), or follow ``GENPRIOR_FUSED`` (None)."""
    global _enabled
    _enabled = None if enabled is None else bool(enabled)


def enabled() -> bool:
    if _broken is not None:
        return False
    if _enabled is not None:
        return _enabled
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class FusedKernel:
    """``fn`` compiled with dynamic shapes where :func:`enabled` and the first argument has at least
    :data:`MIN_NUMEL` elements, else ``eager`` (same signature)."""

    def __init__(self, fn: Callable, eager: Callable):
        self.fn, self.eager = fn, eager
        self.__name__, self.__doc__ = fn.__name__, fn.__doc__
        self._compiled = None

    def __call__(self, *args):
        if args[0].numel() >= MIN_NUMEL and enabled():
            try:
                if self._compiled is None:
                    # Inductor's C++ build announces "No CUDA runtime is found" on CPU-only machines
                    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
                    self._compiled = torch.compile(self.fn, dynamic=True)
                return self._compiled(*args)
            except Exception as err:  # noqa: BLE001 - any compiler failure: fall back, say so once
                global _broken
                _broken = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                warnings.warn(f"torch.compile is not available here ({_broken[:300]}); the solvers' fused "
                              f"kernels run eagerly (slower; set {ENV}=0 to silence this)", stacklevel=2)
        return self.eager(*args)


def fused(eager: Callable) -> Callable[[Callable], FusedKernel]:
    """Decorator: ``@fused(eager=twin)`` over the function to compile."""
    return lambda fn: FusedKernel(fn, eager)
