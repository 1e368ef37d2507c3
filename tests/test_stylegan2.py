"""StyleGAN2 prior: reference numerics, split-point identities, rosinality checkpoints, Gaussianized W."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
from torch.nn import functional as F

from common.errors import UserInputError
from priors.io import load_prior, save_prior
from priors.stylegan2 import (StyleGAN2Discriminator, StyleGAN2Prior, channel_widths, infer_rosinality_config,
                              is_rosinality_checkpoint, load_rosinality)
from priors.stylegan2_ops import ModulatedConv2d, fused_leaky_relu, make_kernel, upfirdn2d

torch.set_num_threads(1)

TINY = dict(size=32, channels=3, style_dim=16, n_mlp=2, max_channels=8)


# -- an independent reference: rosinality's CPU code paths, written functionally on a state dict --
def upfirdn2d_native(x, kernel, up=1, down=1, pad=(0, 0)):
    """rosinality's ``upfirdn2d_native`` (channels folded into the batch, zero insertion by padding)."""
    b, c, in_h, in_w = x.shape
    kh, kw = kernel.shape
    p0, p1 = pad
    out = x.reshape(-1, in_h, 1, in_w, 1, 1)
    out = F.pad(out, [0, 0, 0, up - 1, 0, 0, 0, up - 1]).view(-1, in_h * up, in_w * up, 1)
    out = F.pad(out, [0, 0, max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    out = out[:, max(-p0, 0): out.shape[1] - max(-p1, 0), max(-p0, 0): out.shape[2] - max(-p1, 0), :]
    out = out.permute(0, 3, 1, 2).reshape(-1, 1, in_h * up + p0 + p1, in_w * up + p0 + p1)
    out = F.conv2d(out, torch.flip(kernel.to(out), [0, 1]).view(1, 1, kh, kw))
    out = out[:, :, ::down, ::down]
    return out.reshape(b, c, out.shape[2], out.shape[3])


def lrelu_ref(x, bias):
    return F.leaky_relu(x + bias.view(1, -1, *[1] * (x.ndim - 2)), 0.2) * math.sqrt(2)


def modconv_ref(x, style, w5, mod_w, mod_b, demodulate=True, upsample=False):
    """rosinality's fused ModulatedConv2d: one grouped convolution with per-sample weights."""
    b, cin, h, w = x.shape
    s = F.linear(style, mod_w / math.sqrt(mod_w.shape[1]), mod_b)
    k = w5.shape[-1]
    weight = w5 / math.sqrt(cin * k * k) * s.view(b, 1, cin, 1, 1)
    if demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, -1, 1, 1, 1)
    cout = weight.shape[1]
    if upsample:
        weight = weight.transpose(1, 2).reshape(b * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * cin, h, w), weight, stride=2, groups=b)
        out = out.view(b, cout, out.shape[2], out.shape[3])
        return upfirdn2d_native(out, make_kernel([1, 3, 3, 1]) * 4, pad=(1, 1))
    out = F.conv2d(x.reshape(1, b * cin, h, w), weight.view(b * cout, cin, k, k), padding=k // 2, groups=b)
    return out.view(b, cout, h, w)


def generator_ref(sd, w_plus, noises):
    """rosinality Generator.forward(input_is_latent=True) from its state dict alone."""
    def styled(prefix, x, w, noise, up=False):
        out = modconv_ref(x, w, sd[f"{prefix}.conv.weight"], sd[f"{prefix}.conv.modulation.weight"],
                          sd[f"{prefix}.conv.modulation.bias"], upsample=up)
        return lrelu_ref(out + sd[f"{prefix}.noise.weight"] * noise, sd[f"{prefix}.activate.bias"])

    def to_rgb(prefix, x, w, skip):
        out = modconv_ref(x, w, sd[f"{prefix}.conv.weight"], sd[f"{prefix}.conv.modulation.weight"],
                          sd[f"{prefix}.conv.modulation.bias"], demodulate=False) + sd[f"{prefix}.bias"]
        return out if skip is None else out + upfirdn2d_native(skip, make_kernel([1, 3, 3, 1]) * 4, up=2, pad=(2, 1))

    x = sd["input.input"].repeat(w_plus.shape[0], 1, 1, 1)
    x = styled("conv1", x, w_plus[:, 0], noises[0])
    skip = to_rgb("to_rgb1", x, w_plus[:, 1], None)
    n_blocks = sum(1 for k in sd if k.startswith("to_rgbs.") and k.endswith(".upsample.kernel"))
    for b in range(n_blocks):
        x = styled(f"convs.{2 * b}", x, w_plus[:, 2 * b + 1], noises[2 * b + 1], up=True)
        x = styled(f"convs.{2 * b + 1}", x, w_plus[:, 2 * b + 2], noises[2 * b + 2])
        skip = to_rgb(f"to_rgbs.{b}", x, w_plus[:, 2 * b + 3], skip)
    return skip


def mapping_ref(sd, z, n_mlp, lr_mul=0.01):
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        weight = sd[f"style.{i}.weight"]
        x = lrelu_ref(F.linear(x, weight * lr_mul / math.sqrt(weight.shape[1])), sd[f"style.{i}.bias"] * lr_mul)
    return x


def discriminator_ref(sd, x, size):
    def conv_layer(prefix, x, k, down=False, act=True):
        weight = sd[f"{prefix}.{1 if down else 0}.weight"]
        if down:
            p = 2 + (k - 1)
            x = upfirdn2d_native(x, make_kernel([1, 3, 3, 1]), pad=((p + 1) // 2, p // 2))
        out = F.conv2d(x, weight / math.sqrt(weight[0].numel()), stride=2 if down else 1, padding=0 if down else k // 2)
        return lrelu_ref(out, sd[f"{prefix}.{2 if down else 1}.bias"]) if act else out

    out = conv_layer("convs.0", x, 1)
    for i in range(1, int(math.log2(size)) - 1):
        y = conv_layer(f"convs.{i}.conv2", conv_layer(f"convs.{i}.conv1", out, 3), 3, down=True)
        out = (y + conv_layer(f"convs.{i}.skip", out, 1, down=True, act=False)) / math.sqrt(2)
    b, c, h, w = out.shape
    g = min(b, 4)
    std = torch.sqrt(out.view(g, -1, 1, c, h, w).var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True)
    out = torch.cat([out, std.squeeze(2).repeat(g, 1, h, w)], 1)
    out = conv_layer("final_conv", out, 3).view(b, -1)
    w0, w1 = sd["final_linear.0.weight"], sd["final_linear.1.weight"]
    out = lrelu_ref(F.linear(out, w0 / math.sqrt(w0.shape[1])), sd["final_linear.0.bias"])
    return F.linear(out, w1 / math.sqrt(w1.shape[1]), sd["final_linear.1.bias"])


# -- rosinality's state-dict layout, written out by hand for a config -------------------------
def rosinality_generator_shapes(size, style_dim, n_mlp, widths, rgb=3):
    shapes = {}
    for i in range(1, n_mlp + 1):
        shapes[f"style.{i}.weight"], shapes[f"style.{i}.bias"] = (style_dim, style_dim), (style_dim,)

    def styled(prefix, cin, cout, up):
        shapes.update({f"{prefix}.conv.weight": (1, cout, cin, 3, 3),
                       f"{prefix}.conv.modulation.weight": (cin, style_dim),
                       f"{prefix}.conv.modulation.bias": (cin,), f"{prefix}.noise.weight": (1,),
                       f"{prefix}.activate.bias": (cout,)})
        if up:
            shapes[f"{prefix}.conv.blur.kernel"] = (4, 4)

    def to_rgb(prefix, cin, up):
        shapes.update({f"{prefix}.conv.weight": (1, rgb, cin, 1, 1),
                       f"{prefix}.conv.modulation.weight": (cin, style_dim),
                       f"{prefix}.conv.modulation.bias": (cin,), f"{prefix}.bias": (1, rgb, 1, 1)})
        if up:
            shapes[f"{prefix}.upsample.kernel"] = (4, 4)

    shapes["input.input"] = (1, widths[4], 4, 4)
    styled("conv1", widths[4], widths[4], False)
    to_rgb("to_rgb1", widths[4], False)
    cin = widths[4]
    for b, res in enumerate(2 ** r for r in range(3, int(math.log2(size)) + 1)):
        styled(f"convs.{2 * b}", cin, widths[res], True)
        styled(f"convs.{2 * b + 1}", widths[res], widths[res], False)
        to_rgb(f"to_rgbs.{b}", widths[res], True)
        cin = widths[res]
    for j in range((int(math.log2(size)) - 2) * 2 + 1):
        shapes[f"noises.noise_{j}"] = (1, 1, 2 ** ((j + 5) // 2), 2 ** ((j + 5) // 2))
    return shapes


def rosinality_discriminator_shapes(size, widths, rgb=3):
    shapes = {"convs.0.0.weight": (widths[size], rgb, 1, 1), "convs.0.1.bias": (widths[size],)}
    cin = widths[size]
    for i, r in enumerate(range(int(math.log2(size)), 2, -1), start=1):
        cout = widths[2 ** (r - 1)]
        shapes.update({f"convs.{i}.conv1.0.weight": (cin, cin, 3, 3), f"convs.{i}.conv1.1.bias": (cin,),
                       f"convs.{i}.conv2.0.kernel": (4, 4), f"convs.{i}.conv2.1.weight": (cout, cin, 3, 3),
                       f"convs.{i}.conv2.2.bias": (cout,), f"convs.{i}.skip.0.kernel": (4, 4),
                       f"convs.{i}.skip.1.weight": (cout, cin, 1, 1)})
        cin = cout
    c4 = widths[4]
    shapes.update({"final_conv.0.weight": (c4, cin + 1, 3, 3), "final_conv.1.bias": (c4,),
                   "final_linear.0.weight": (c4, c4 * 16), "final_linear.0.bias": (c4,),
                   "final_linear.1.weight": (1, c4), "final_linear.1.bias": (1,)})
    return shapes


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    kernel = make_kernel([1, 3, 3, 1])
    state = {}
    for k, s in shapes.items():
        if k.endswith("blur.kernel") or k.endswith("upsample.kernel"):
            state[k] = kernel * 4
        elif k.endswith(".kernel"):
            state[k] = kernel.clone()
        else:  # non-trivial biases and noise strengths so every term matters
            state[k] = torch.randn(s, generator=g) * (0.3 if len(s) == 1 else 1.0)
    return state


# -- ops ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 1)), (2, 1, (2, 1)), (1, 2, (2, 2)), (1, 2, (1, 1)),
                                         (2, 1, (0, 0)), (2, 2, (1, 2)), (1, 1, (-1, 2))])
def test_upfirdn2d_matches_native_reference(up, down, pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64)
    kernel = torch.rand(4, 4, generator=g, dtype=torch.float64)  # asymmetric: catches a missing flip
    out = upfirdn2d(x, kernel, up, down, pad)
    assert torch.allclose(out, upfirdn2d_native(x, kernel, up, down, pad), atol=1e-12)


def test_fused_leaky_relu_matches_reference_with_gradients():
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    out, ref = fused_leaky_relu(x, b), lrelu_ref(x, b)
    assert torch.allclose(out, ref, atol=1e-12)
    g1 = torch.autograd.grad(out.pow(2).sum(), (x, b))
    g2 = torch.autograd.grad(ref.pow(2).sum(), (x, b))
    assert all(torch.allclose(a, c, atol=1e-12) for a, c in zip(g1, g2))


@pytest.mark.parametrize("upsample,demodulate", [(False, True), (True, True), (False, False)])
def test_modulated_conv_matches_grouped_reference(upsample, demodulate):
    torch.manual_seed(0)
    k = 3 if demodulate else 1
    conv = ModulatedConv2d(6, 5, k, 8, demodulate=demodulate, upsample=upsample).double()
    with torch.no_grad():
        conv.modulation.bias.normal_()
    x, style = torch.randn(3, 6, 8, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    ref = modconv_ref(x, style, conv.weight, conv.modulation.weight, conv.modulation.bias, demodulate, upsample)
    assert torch.allclose(conv(x, style), ref, atol=1e-10)


# -- the layered protocol ----------------------------------------------------------------------
def test_resuming_at_every_split_reproduces_the_image_exactly():
    torch.manual_seed(0)
    prior = StyleGAN2Prior(**TINY)
    z0 = prior.sample_latent(3, generator=torch.Generator().manual_seed(1))
    x = prior(z0)
    assert x.shape == (3, 3, 32, 32) and prior.num_layers == 4
    for i in range(prior.num_layers + 1):
        rep = prior.to_layer(z0, i)
        assert torch.equal(prior.from_layer(rep, i), x), f"split {i}"
    rep = prior.to_layer(z0, 2)
    assert set(rep) == {"state", "latent", "skip", "noise.3", "noise.4", "noise.5", "noise.6"}
    assert rep["state"].shape == (3, 8, 8, 8) and rep["skip"].shape == (3, 3, 8, 8)  # split 2 follows the 8x8 block
    assert torch.equal(rep["latent"], z0)
    assert set(prior.initial_representation(z0)) == {"state"} | {f"noise.{j}" for j in range(7)}


def test_perturbing_state_and_noise_changes_the_image_and_gradients_reach_them():
    torch.manual_seed(0)
    prior = StyleGAN2Prior(**TINY)
    with torch.no_grad():
        for m in prior.modules():
            if hasattr(m, "noise") and hasattr(m.noise, "weight"):
                m.noise.weight.fill_(0.5)
    z0 = prior.sample_latent(2)
    rep = {k: v.detach().clone().requires_grad_(True) for k, v in prior.to_layer(z0, 2).items()}
    x = prior.from_layer(rep, 2)
    x.sum().backward()
    for key in ("state", "latent", "skip", "noise.3", "noise.6"):
        assert rep[key].grad is not None and rep[key].grad.abs().sum() > 0, key
    with torch.no_grad():
        moved = dict(rep, state=rep["state"] + 0.1)
        assert not torch.allclose(prior.from_layer(moved, 2), x)


def test_generator_is_deterministic_with_fixed_noise_and_random_in_training_mode():
    torch.manual_seed(0)
    prior = StyleGAN2Prior(**TINY)
    with torch.no_grad():
        prior.conv1.noise.weight.fill_(1.0)
    z0 = prior.sample_latent(2)
    assert torch.equal(prior(z0), prior(z0))
    r1 = prior.from_layer(prior.initial_representation(z0, randomize_noise=True), 0)
    r2 = prior.from_layer(prior.initial_representation(z0, randomize_noise=True), 0)
    assert not torch.allclose(r1, r2)


def test_bad_latent_shape_and_split_are_rejected():
    prior = StyleGAN2Prior(**TINY)
    with pytest.raises(ValueError, match="does not fit"):
        prior.initial_representation(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="split point 9"):
        prior.to_layer(prior.sample_latent(1), 9)
    with pytest.raises(UserInputError, match="power of two"):
        StyleGAN2Prior(size=48)


def test_channel_table_is_rosinalitys():
    assert channel_widths(1024, 2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64,
                                       1024: 32}
    assert channel_widths(256, 1, max_channels=256) == {4: 256, 8: 256, 16: 256, 32: 256, 64: 256, 128: 128,
                                                        256: 64}  # RTIL appendix table 1


# -- Gaussianized W ------------------------------------------------------------------------------
def test_gaussianized_w_round_trip_and_statistics():
    torch.manual_seed(0)
    prior = StyleGAN2Prior(**TINY)
    prior.fit_latent_statistics(num_samples=4000)
    mean, std = prior.w_gauss_mean.clone(), prior.w_gauss_std.clone()
    prior.fit_latent_statistics(num_samples=4000)
    assert torch.equal(mean, prior.w_gauss_mean) and torch.equal(std, prior.w_gauss_std)  # deterministic seed
    w = prior.mapping(torch.randn(3000, 16))
    z = prior.w_to_latent(w)
    assert z.mean(0).abs().max() < 0.1 and (z.std(0) - 1).abs().max() < 0.1
    assert torch.allclose(prior.latent_to_w(z), w, atol=1e-5, rtol=1e-5)
    z0 = torch.randn(4, *prior.latent_shape)
    assert torch.allclose(prior.w_to_latent(prior.latent_to_w(z0)), z0, atol=1e-5)
    assert torch.allclose(prior.latent_avg, w.mean(0), atol=0.05)
    # the statistics are part of the state dict
    assert {"w_gauss_mean", "w_gauss_std", "latent_avg"} <= set(prior.state_dict())


def test_sample_latent_is_the_gaussianized_mapping_of_a_normal_draw():
    torch.manual_seed(0)
    prior = StyleGAN2Prior(**TINY)
    prior.fit_latent_statistics(num_samples=2000)
    z0 = prior.sample_latent(2, generator=torch.Generator().manual_seed(5))
    assert z0.shape == (2, *prior.latent_shape)
    assert torch.equal(z0[:, 0], z0[:, -1])  # one w for every style input
    w = prior.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(5)))
    assert torch.allclose(prior.latent_to_w(z0[:, 0]), w, atol=1e-5)
    # batch-independent: a single draw with the same generator seed gives the same first row
    one = prior.sample_latent(1, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(one[0], z0[0])


# -- rosinality checkpoints ------------------------------------------------------------------
@pytest.mark.parametrize("size,max_channels,rgb", [(32, 8, 3), (256, 4, 3), (32, 8, 1)])
def test_rosinality_checkpoint_loads_strictly_and_renders_like_the_reference(size, max_channels, rgb):
    style_dim, n_mlp = 16, 3
    widths = channel_widths(size, 2, max_channels=max_channels)
    shapes = rosinality_generator_shapes(size, style_dim, n_mlp, widths, rgb)
    sd = random_state(shapes)
    latent_avg = torch.randn(style_dim)
    prior = load_rosinality({"g_ema": sd, "latent_avg": latent_avg}, num_samples=500)
    own = {k: tuple(v.shape) for k, v in prior.state_dict().items()
           if k not in ("w_gauss_mean", "w_gauss_std", "latent_avg")}
    assert own == shapes  # exactly rosinality's keys and shapes, nothing else
    assert prior.image_shape == (rgb, size, size) and prior.latent_shape == (2 * int(math.log2(size)) - 2, style_dim)
    assert torch.equal(prior.latent_avg, latent_avg)
    z = torch.randn(2, style_dim)
    w = mapping_ref(sd, z, n_mlp)
    assert torch.allclose(prior.mapping(z), w, atol=1e-5)
    z0 = prior.w_to_latent(prior.broadcast_w(w))
    noises = [sd[f"noises.noise_{j}"] for j in range(prior.num_convs)]
    with torch.no_grad():
        ref = generator_ref(sd, prior.broadcast_w(w), noises)
        ours = prior(z0)
    assert torch.allclose(ours, (ref + 1) / 2, atol=1e-4), (ours - (ref + 1) / 2).abs().max()


def test_rosinality_checkpoint_without_noise_buffers_loads_and_other_missing_keys_fail():
    widths = channel_widths(32, 2, max_channels=8)
    sd = random_state(rosinality_generator_shapes(32, 16, 2, widths))
    no_noise = {k: v for k, v in sd.items() if not k.startswith("noises.")}
    prior = load_rosinality({"g_ema": no_noise}, fit_statistics=False)
    assert torch.isfinite(prior(prior.sample_latent(1))).all()
    broken = {k: v for k, v in sd.items() if k != "convs.1.noise.weight"}
    with pytest.raises(UserInputError, match="missing"):
        load_rosinality({"g_ema": broken}, fit_statistics=False)
    extra = dict(sd, **{"convs.0.extra": torch.zeros(1)})
    with pytest.raises(UserInputError, match="unexpected"):
        load_rosinality({"g_ema": extra}, fit_statistics=False)


def test_rosinality_checkpoint_mismatches_are_one_line_user_errors(tmp_path):
    widths = channel_widths(256, 1, max_channels=16)
    sd = random_state(rosinality_generator_shapes(256, 8, 2, {**widths, 128: 8, 256: 4}))  # multiplier-style taper
    cfg = infer_rosinality_config(sd)
    assert cfg["size"] == 256 and cfg["max_channels"] == 16 and cfg["n_mlp"] == 2 and cfg["style_dim"] == 8
    with pytest.raises(UserInputError, match=r"generates 256x256 images, not size=1024"):
        load_rosinality({"g_ema": sd}, size=1024, fit_statistics=False)
    for bad in ({"model": sd}, {"g_ema": {"weight": torch.zeros(1)}}):
        with pytest.raises(UserInputError, match="rosinality"):
            load_rosinality(bad, fit_statistics=False)
    with pytest.raises(UserInputError, match="does not exist"):
        load_rosinality(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(UserInputError, match="could not be read"):
        load_rosinality(tmp_path / "junk.pt")


def test_published_channel_multiplier_is_inferred_and_checked():
    # FFHQ config-f at 1024 has channel_multiplier 2; 4x narrower style_dim keeps the test small
    shapes = rosinality_generator_shapes(1024, 8, 1, channel_widths(1024, 2))
    cfg = infer_rosinality_config({k: torch.empty(s) for k, s in shapes.items()})
    assert (cfg["size"], cfg["channel_multiplier"], cfg["channel_base"], cfg["max_channels"]) == (1024, 2, 16384, 512)
    assert infer_rosinality_config({k: torch.empty(s) for k, s in shapes.items()}, 1024, 2)["size"] == 1024
    with pytest.raises(UserInputError, match="channel_multiplier 2 .* not channel_multiplier=1"):
        infer_rosinality_config({k: torch.empty(s) for k, s in shapes.items()}, channel_multiplier=1)


def test_rosinality_training_checkpoint_file_with_args_loads(tmp_path):
    widths = channel_widths(32, 2, max_channels=8)
    g_sd = random_state(rosinality_generator_shapes(32, 16, 2, widths))
    d_sd = random_state(rosinality_discriminator_shapes(32, widths), seed=1)
    path = tmp_path / "100000.pt"
    torch.save({"g": g_sd, "d": d_sd, "g_ema": g_sd, "args": argparse.Namespace(size=32)}, path)
    prior = load_rosinality(path, size=32, num_samples=300)
    assert is_rosinality_checkpoint(torch.load(path, weights_only=False))
    assert prior.image_shape == (3, 32, 32) and (prior.w_gauss_std != 1).all()


@pytest.mark.parametrize("rgb", [3, 1])
def test_discriminator_has_rosinalitys_keys_and_matches_the_reference(rgb):
    widths = channel_widths(32, 2, max_channels=8)
    shapes = rosinality_discriminator_shapes(32, widths, rgb)
    sd = random_state(shapes, seed=2)
    d = StyleGAN2Discriminator(32, rgb, max_channels=8)
    assert {k: tuple(v.shape) for k, v in d.state_dict().items()} == shapes
    d.load_state_dict(sd, strict=True)
    x = torch.randn(8, rgb, 32, 32)
    with torch.no_grad():
        assert torch.allclose(d(x), discriminator_ref(sd, x, 32), atol=1e-4)
    assert d(x[:6]).shape == (6, 1)  # batch not divisible by the stddev group still works


def _constant_mapping_dimension(prior, dim=3):
    with torch.no_grad():
        prior.style[-1].weight[dim].zero_()  # w[:, dim] = lrelu(bias) * sqrt(2) for every z
    return prior


def test_a_constant_mapping_dimension_gives_finite_latents_and_images(tmp_path):
    prior = _constant_mapping_dimension(StyleGAN2Prior(**TINY))
    prior.fit_latent_statistics(num_samples=200)
    assert prior.w_gauss_std[3] > 0 and torch.isfinite(prior.w_gauss_std).all()
    z0 = prior.sample_latent(4, torch.Generator().manual_seed(0))
    assert torch.isfinite(z0).all() and z0[:, :, 3].abs().max() < 1e-2
    assert torch.isfinite(prior(z0)).all() and torch.isfinite(prior(torch.randn(2, *prior.latent_shape))).all()
    # statistics stored with a zero std (an earlier export, another tool) get the same floor when loaded
    state = prior.state_dict()
    state["w_gauss_std"][3] = 0.0
    save_prior({"prior_config": prior.config(), "state_dict": state, "extra": {}}, tmp_path / "p.pt")
    loaded = load_prior(tmp_path / "p.pt")
    assert loaded.w_gauss_std[3] > 0 and torch.isfinite(loaded(loaded.sample_latent(2))).all()
    # a rosinality file with such a mapping network: statistics fitted at load time
    ros = load_rosinality({"g_ema": _constant_mapping_dimension(StyleGAN2Prior(**TINY)).state_dict()}, num_samples=200)
    assert torch.isfinite(ros(ros.sample_latent(2))).all()


def test_nan_or_inf_weights_are_refused_for_every_prior_format(tmp_path):
    prior = StyleGAN2Prior(**TINY)
    state = prior.state_dict()
    state["conv1.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    save_prior_unchecked = {"format": "genprior/prior-v1", "prior_config": prior.config(), "state_dict": state}
    torch.save(save_prior_unchecked, tmp_path / "ours.pt")
    torch.save({"g_ema": state}, tmp_path / "ros.pt")
    inf = {k: v.clone() for k, v in state.items()}
    inf["conv1.conv.weight"][0, 0, 0, 0, 0] = float("inf")
    torch.save({"g_ema": inf}, tmp_path / "inf.pt")
    for name in ("ours.pt", "ros.pt", "inf.pt"):
        with pytest.raises(UserInputError, match="NaN/Inf weights") as err:
            load_prior(tmp_path / name)
        assert "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="NaN/Inf weights"):
        save_prior({"prior_config": prior.config(), "state_dict": state, "extra": {}}, tmp_path / "never.pt")
    assert not (tmp_path / "never.pt").exists()
