"""Per-image quality metrics: PSNR, SSIM, LPIPS.

Inputs are (N, C, H, W) images in [0, 1] (data range 1); values outside are clipped to
[0, 1] first, as they would be when the reconstruction is saved as an image; NaN stays
NaN, so a failed reconstruction gets NaN metrics. Every function returns one value per
image, shape (N,), float32, on the inputs' device.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

#: PSNR of identical images: MSE is floored at 1e-10, so PSNR <= 100 dB (finite)
PSNR_MAX_DB = 100.0
_MSE_FLOOR = 10 ** (-PSNR_MAX_DB / 10)

SSIM_WINDOW = 11
#: smallest H and W each LPIPS backbone accepts (its fifth ReLU must keep >= 1 pixel)
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}


def _check_pair(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x_hat.ndim != 4 or x_hat.shape != x.shape:
        raise ValueError(f"expected two (N, C, H, W) batches of the same shape, got {tuple(x_hat.shape)} "
                         f"and {tuple(x.shape)}")
    return x_hat.detach().float().clamp(0, 1), x.detach().float().to(x_hat.device).clamp(0, 1)


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """10 log10(1 / MSE) per image, capped at :data:`PSNR_MAX_DB`."""
    x_hat, x = _check_pair(x_hat, x)
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(_MSE_FLOOR))


def relative_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per sample ‖x̂ − x‖₂ / ‖x‖₂ (DPR's success measure for synthetic signals: success when ≤ 1e-3)."""
    if x_hat.shape != x.shape:
        raise ValueError(f"expected two batches of the same shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    x_hat, x = x_hat.detach().double(), x.detach().double().to(x_hat.device)
    return ((x_hat - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1).clamp_min(1e-30)).float()


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SSIM as defined by Wang et al. (2004) and computed by their MATLAB code and skimage
    (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``): 11x11 Gaussian
    window (sigma 1.5), K1 0.01, K2 0.03, map averaged over the valid region (no padding)
    and the channels. torchmetrics 1.9 instead averages a reflect-padded full-size map."""
    x_hat, x = _check_pair(x_hat, x)
    n, c, h, w = x.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    a, b = x_hat.double().reshape(n * c, 1, h, w), x.double().reshape(n * c, 1, h, w)
    stats = F.conv2d(torch.cat([a, b, a * a, b * b, a * b]), _gaussian_window().to(x.device))
    mu_a, mu_b, aa, bb, ab = stats.split(n * c)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.reshape(n, -1).mean(1).float()


_LPIPS_NETS: dict[tuple[str, str], nn.Module] = {}


def lpips_network(net: str = "alex", device: torch.device | str = "cpu") -> nn.Module:
    """The cached ``lpips.LPIPS(net, version="0.1")`` with real backbone weights on ``device``."""
    key = (net, str(torch.device(device)))
    if key not in _LPIPS_NETS:
        from evaluation.lpips_weights import build_lpips  # lazy: importing metrics stays cheap

        _LPIPS_NETS[key] = build_lpips(net).to(device)
    return _LPIPS_NETS[key]


def _lpips(x_hat: torch.Tensor, x: torch.Tensor, net: str) -> torch.Tensor:
    if x.shape[1] not in (1, 3):
        raise ValueError(f"LPIPS needs 1- or 3-channel images, got {x.shape[1]} channels")
    min_size = LPIPS_MIN_SIZE.get(net, 1)
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"LPIPS-{net} needs images of at least {min_size}x{min_size} pixels, got "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    x_hat, x = x_hat.expand(-1, 3, -1, -1), x.expand(-1, 3, -1, -1)
    return lpips_network(net, x.device)(2 * x_hat - 1, 2 * x - 1).flatten()


@torch.no_grad()
def lpips_distance(x_hat: torch.Tensor, x: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS v0.1 per image. 1-channel images are replicated to 3 channels; [0, 1] is mapped
    to the [-1, 1] LPIPS expects. Not differentiable (evaluation only)."""
    x_hat, x = _check_pair(x_hat, x)
    return _lpips(x_hat, x, net)


def lpips_loss(x_hat: torch.Tensor, x: torch.Tensor, net: str = "vgg") -> torch.Tensor:
    """Differentiable LPIPS per image for optimisation (CSGM/ILO losses; the network stays frozen).

    VGG by default, as perceptual losses for inversion (ILO, PULSE) use it; no clamping, so
    gradients reach inputs slightly outside [0, 1].
    """
    lpips_network(net, x.device).requires_grad_(False)
    return _lpips(x_hat, x, net)


def image_metrics(x_hat: torch.Tensor, x: torch.Tensor, lpips_net: str | None = "alex") -> dict[str, torch.Tensor]:
    """``{"psnr", "ssim", "lpips"}``, each (N,).

    LPIPS is NaN when ``lpips_net`` is None or the images are smaller than the backbone
    accepts (e.g. 28x28 MNIST with AlexNet; a warning says so).
    """
    out = {"psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x)}
    if lpips_net is not None and min(x.shape[-2:]) < LPIPS_MIN_SIZE.get(lpips_net, 1):
        warnings.warn(f"images of {x.shape[-2]}x{x.shape[-1]} pixels are too small for LPIPS-{lpips_net} "
                      f"(needs {LPIPS_MIN_SIZE[lpips_net]}); LPIPS reported as NaN", stacklevel=2)
        lpips_net = None
    if lpips_net is None:
        out["lpips"] = torch.full_like(out["psnr"], float("nan"))
    else:
        out["lpips"] = lpips_distance(x_hat, x, net=lpips_net)
    return out
