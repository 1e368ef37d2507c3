"""Oracle alignment for the trivial ambiguities of Fourier phase retrieval.

Without oversampling, |F x| (2-D DFT) does not change under circular translation
x[n] -> x[n - t], conjugate reflection x[n] -> x[-n mod N] (both axes) and the global
sign x -> -x. A reconstruction is therefore only defined up to these maps.
:func:`align_to_reference` picks, per image, the one that brings x_hat closest (MSE)
to the ground truth x. It uses the ground truth, so metrics after alignment are an
*oracle* evaluation: report them as such, next to the unaligned ones.

Since every candidate has the norm of x_hat, minimising ||s T(x_hat) - x||^2 means
maximising s <T(x_hat), x>; the correlations with all shifts come from one FFT each:
c[t] = sum_n x_hat[n - t] x[n] = IFFT(conj(X_hat) X), and for the reflection
c_flip[t] = sum_n x_hat[t - n] x[n] = IFFT(X_hat X). Channels share one transform.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FourierAlignment:
    """Per image: ``shift`` (N, 2) rows/cols t, ``flipped`` (N,) bool, ``sign`` (N,) +-1."""

    shift: torch.Tensor
    flipped: torch.Tensor
    sign: torch.Tensor


def find_alignment(x_hat: torch.Tensor, x: torch.Tensor) -> FourierAlignment:
    """The translation/reflection/sign of each x_hat closest to x; both (N, C, H, W)."""
    if x_hat.ndim != 4 or x_hat.shape != x.shape:
        raise ValueError(f"expected two (N, C, H, W) batches of the same shape, got {tuple(x_hat.shape)} "
                         f"and {tuple(x.shape)}")
    n, _, h, w = x.shape
    spec_hat = torch.fft.fft2(x_hat.detach().double())
    spec = torch.fft.fft2(x.detach().double().to(x_hat.device))
    corr = torch.fft.ifft2(spec_hat.conj() * spec).real.sum(1).flatten(1)  # (N, H*W)
    corr_flip = torch.fft.ifft2(spec_hat * spec).real.sum(1).flatten(1)
    # candidate order (no flip, +), (no flip, -), (flip, +), (flip, -): ties keep the first
    scores = torch.stack([corr, -corr, corr_flip, -corr_flip], dim=1).flatten(1)
    best = scores.argmax(dim=1)
    candidate, t = best // (h * w), best % (h * w)
    return FourierAlignment(
        shift=torch.stack([t // w, t % w], dim=1),
        flipped=candidate >= 2,
        sign=1 - 2 * (candidate % 2),
    )


def apply_alignment(x_hat: torch.Tensor, alignment: FourierAlignment) -> torch.Tensor:
    """out[n] = sign * x_hat[(n - t) mod N], or sign * x_hat[(t - n) mod N] if flipped."""
    n, _, h, w = x_hat.shape
    direction = (1 - 2 * alignment.flipped.long())[:, None]  # +1 / -1 per image
    rows = (direction * (torch.arange(h, device=x_hat.device)[None] - alignment.shift[:, :1])) % h  # (N, H)
    cols = (direction * (torch.arange(w, device=x_hat.device)[None] - alignment.shift[:, 1:])) % w  # (N, W)
    batch = torch.arange(n, device=x_hat.device)[:, None, None]
    out = x_hat[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (N, H, W, C) -> NCHW
    return out * alignment.sign.to(x_hat.dtype)[:, None, None, None]


def align_to_reference(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x_hat moved by its best circular shift, reflection and sign with respect to x (oracle)."""
    return apply_alignment(x_hat, find_alignment(x_hat, x))


#: report columns of the oracle-aligned metrics (ground truth used; never used to select anything)
ALIGNED_COLUMNS = ("psnr_aligned", "ssim_aligned")


def has_trivial_ambiguities(operator) -> bool:
    """Whether the operator's magnitudes are blind to circular shifts, conjugate flips and the sign:
    Fourier phase retrieval without oversampling (zero padding breaks the circular shifts)."""
    return getattr(operator, "name", None) == "fourier_pr" and getattr(operator, "oversampling", None) == 1


def aligned_metrics(operator, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"psnr_aligned", "ssim_aligned"}`` (N,) of x_hat moved to its MSE-closest twin of x among the
    operator's trivial ambiguities; ``{}`` for operators without them. An oracle: it uses the
    ground truth. Since the identity is a candidate, psnr_aligned >= psnr per image."""
    from evaluation.metrics import psnr, ssim

    if not has_trivial_ambiguities(operator):
        return {}
    aligned = align_to_reference(x_hat, x)
    return dict(zip(ALIGNED_COLUMNS, (psnr(aligned, x), ssim(aligned, x))))
