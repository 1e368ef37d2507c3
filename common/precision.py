"""Mixed precision (``trainer.precision=bf16-mixed`` / ``16-mixed``): the parts that stay in float32.

Lightning runs ``training_step`` and ``predict_step`` under ``torch.autocast``: convolutions and
matrix products of the priors, discriminators and encoders then run in bfloat16/float16. Some
computations must not: FFTs and complex arithmetic of the forward operators, measurement losses
and the solvers' optimised variables (Adam moments, l1-ball projection), and the gradient penalties
(R1, path length, WGAN-GP), whose input gradients are small enough to underflow in float16 and
whose norms lose most digits in bfloat16. Those run inside :func:`float32`, which switches
autocast off for the tensors' device type and casts half-precision tensors to float32.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch

HALF = (torch.bfloat16, torch.float16)


def full(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is half precision (bf16/fp16), else unchanged (no copy)."""
    return t.float() if t.dtype in HALF else t


def autocasting(device_type: str | torch.device) -> bool:
    """Whether autocast is on for ``device_type`` or the CPU."""
    kind = torch.device(device_type).type
    return torch.is_autocast_enabled(kind) or torch.is_autocast_enabled("cpu")


@contextlib.contextmanager
def float32(device_type: str | torch.device = "cuda"):
    """Autocast off for ``device_type`` (and the CPU, where bf16 autocast also runs) inside the block."""
    device_type = torch.device(device_type).type
    with contextlib.ExitStack() as stack:
        for kind in {device_type, "cpu"}:
            if torch.is_autocast_enabled(kind):
                stack.enter_context(torch.autocast(kind, enabled=False))
        yield


def uncached_autocast(device_type: str | torch.device):
    """The current autocast again, with its cast cache off (a no-op when autocast is off).

    Autocast caches the half-precision copy of every leaf tensor that requires grad until its
    context exits; an optimisation loop that updates its leaves in place inside one context would
    keep computing with the stale copies (Lightning's own autocast already has the cache off).
    """
    kind = torch.device(device_type).type
    if not torch.is_autocast_enabled(kind):
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.get_autocast_dtype(kind), cache_enabled=False)


def float32_method(method: Callable) -> Callable:
    """Decorator for ``method(self, x, *tensors)``: tensor arguments in float32, evaluated with autocast off."""

    @functools.wraps(method)
    def wrapper(self, x, *args, **kwargs):
        if not isinstance(x, torch.Tensor) or (x.dtype not in HALF and not autocasting(x.device)):
            return method(self, x, *args, **kwargs)
        with float32(x.device):
            args = [full(a) if isinstance(a, torch.Tensor) else a for a in args]
            return method(self, full(x), *args, **kwargs)

    wrapper.float32 = True
    return wrapper


def channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with its 4-d parameters and buffers in channels-last memory order (in place; returned).

    Convolutions then take and give NHWC activations (cuDNN's and oneDNN's fast layout for
    bf16/fp16 convolutions on tensor cores); values are unchanged up to summation order.
    """
    # Module.to(memory_format=...) refuses 5-d tensors (StyleGAN2's modulated weights); only 4-d ones change
    return module._apply(lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)
