"""PSNR / SSIM / LPIPS per image, and the Fourier-ambiguity oracle alignment."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from evaluation.alignment import align_to_reference, find_alignment
from evaluation.metrics import PSNR_MAX_DB, image_metrics, lpips_distance, lpips_network, psnr, ssim

ROOT = Path(__file__).resolve().parents[1]


def _images(n=3, c=3, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g)


def test_psnr_of_constant_offsets():
    x = 0.2 + 0.6 * _images()
    offsets = torch.tensor([0.1, 0.05, 0.01])
    got = psnr(x + offsets[:, None, None, None], x)
    torch.testing.assert_close(got, 10 * torch.log10(1 / offsets**2), rtol=0, atol=1e-3)  # 20, 26.02, 40 dB


def test_psnr_is_capped_and_finite_for_identical_images():
    x = _images()
    assert torch.equal(psnr(x, x), torch.full((3,), PSNR_MAX_DB))
    assert torch.equal(psnr(x.clamp(0.5) + 1.0, torch.ones_like(x)), torch.full((3,), PSNR_MAX_DB))  # clipped to 1


def test_failed_reconstructions_give_nan():
    x = _images()
    x_hat = x.clone()
    x_hat[1] = float("nan")
    for metric in (psnr, ssim):
        values = metric(x_hat, x)
        assert values.isnan().tolist() == [False, True, False]


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        psnr(_images(h=32), _images(h=40))


def _reference_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Wang et al. (2004): Gaussian 11x11 / sigma 1.5 window, valid region, per channel, mean."""
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-coords**2 / (2 * 1.5**2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
    a, b = a.double().flatten(0, 1)[:, None], b.double().flatten(0, 1)[:, None]
    mu_a, mu_b = F.conv2d(a, window), F.conv2d(b, window)
    var_a = F.conv2d(a * a, window) - mu_a**2
    var_b = F.conv2d(b * b, window) - mu_b**2
    cov = F.conv2d(a * b, window) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    m = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return m.flatten(1).mean(1)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_the_definition(channels):
    x = _images(c=channels)
    x_hat = (x + 0.3 * _images(c=channels, seed=1)).clamp(0, 1)
    expected = _reference_ssim(x_hat, x).view(3, channels).mean(1).float()
    torch.testing.assert_close(ssim(x_hat, x), expected, rtol=0, atol=1e-6)
    # torchmetrics' SSIM map agrees away from the border (it averages a reflect-padded full map)
    _, full = structural_similarity_index_measure(x_hat.double(), x.double(), data_range=1.0, return_full_image=True)
    torch.testing.assert_close(ssim(x_hat, x), full[..., 5:-5, 5:-5].mean((1, 2, 3)).float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ssim(x, x), torch.ones(3), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="11x11"):
        ssim(x[..., :10, :], x[..., :10, :])


def test_ssim_of_constant_images_by_hand():
    a, b = 0.5, 0.25  # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    got = ssim(torch.full((1, 1, 32, 32), a), torch.full((1, 1, 32, 32), b))
    torch.testing.assert_close(got, torch.tensor([(2 * a * b + 1e-4) / (a * a + b * b + 1e-4)]), rtol=0, atol=1e-5)


def test_lpips_values_and_channel_replication():
    x = _images(n=2, c=1, h=64, w=64)
    noise = _images(n=2, c=1, h=64, w=64, seed=3) - 0.5
    x_hat = (x + 0.2 * noise).clamp(0, 1)
    d = lpips_distance(x_hat, x)
    assert d.shape == (2,) and (d > 0).all()
    assert (lpips_distance((x + 0.6 * noise).clamp(0, 1), x) > d).all()  # more distortion, larger distance
    torch.testing.assert_close(d, lpips_distance(x_hat.repeat(1, 3, 1, 1), x.repeat(1, 3, 1, 1)))
    torch.testing.assert_close(lpips_distance(x, x), torch.zeros(2), rtol=0, atol=1e-6)
    assert lpips_network("alex", "cpu") is lpips_network("alex", torch.device("cpu"))


def test_image_metrics_keys_and_small_images():
    x = _images(n=2, h=64, w=64)
    out = image_metrics(x.flip(-1), x)
    assert set(out) == {"psnr", "ssim", "lpips"} and all(v.shape == (2,) for v in out.values())
    assert torch.isfinite(out["lpips"]).all()
    small = _images(n=2, c=1, h=28, w=28)
    with pytest.raises(ValueError, match="at least 31x31"):
        lpips_distance(small, small)
    with pytest.warns(UserWarning, match="too small"):
        out = image_metrics(small, small)
    assert out["lpips"].isnan().all() and torch.equal(out["psnr"], torch.full((2,), PSNR_MAX_DB))
    assert image_metrics(x, x, lpips_net=None)["lpips"].isnan().all()


@pytest.mark.slow
def test_importing_metrics_does_not_load_lpips():
    code = "import sys, evaluation.metrics; assert 'lpips' not in sys.modules and 'evaluation.lpips_weights' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_alignment_undoes_shift_flip_and_sign():
    x = _images(n=4, h=12, w=10)
    flip = lambda t: torch.roll(t.flip(-2, -1), shifts=(1, 1), dims=(-2, -1))  # t[-n mod N]
    x_hat = torch.stack([
        torch.roll(x[0], (3, -4), (-2, -1)),
        -torch.roll(flip(x[1]), (5, 2), (-2, -1)),
        flip(x[2]),
        -x[3],
    ])
    assert torch.equal(align_to_reference(x_hat, x), x)
    a = find_alignment(x_hat, x)
    assert a.flipped.tolist() == [False, True, True, False] and a.sign.tolist() == [1, -1, 1, -1]
    assert a.shift[0].tolist() == [9, 4]  # out[n] = x_hat[n - t] undoes the roll by (3, -4)
    # the Fourier magnitudes really are invariant, so this is the ambiguity of |F x|
    torch.testing.assert_close(torch.fft.fft2(x_hat).abs(), torch.fft.fft2(x).abs(), rtol=1e-5, atol=1e-5)


def test_alignment_is_the_mse_minimiser_among_all_candidates():
    x, x_hat = _images(n=1, c=2, h=6, w=5), _images(n=1, c=2, h=6, w=5, seed=9)
    flip = lambda t: torch.roll(t.flip(-2, -1), shifts=(1, 1), dims=(-2, -1))
    candidates = [s * torch.roll(f(x_hat), (i, j), (-2, -1))
                  for f in (lambda t: t, flip) for s in (1, -1) for i in range(6) for j in range(5)]
    best = min((c - x).pow(2).sum().item() for c in candidates)
    assert (align_to_reference(x_hat, x) - x).pow(2).sum().item() == pytest.approx(best, rel=1e-6)
