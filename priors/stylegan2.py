"""StyleGAN2 (Karras et al. 2020) as a layered prior, its discriminator, and rosinality checkpoints.

Split points (``num_layers = log2(size) - 1``): 0 is the inversion latent z_0, 1 follows
the 4x4 constant block (conv + ToRGB), every further split follows one resolution block
(upsampling conv, conv, ToRGB), the last one is the image. Representations carry

* ``"state"``: z_0 at split 0, the feature map after the block otherwise,
* ``"latent"`` (split >= 1): the W+ code the remaining blocks read, in z_0's coordinates,
* ``"skip"`` (split >= 1): the running ToRGB output in [-1, 1],
* ``"noise.<j>"``: the noise maps of the convolutions still to run (rosinality's index j).

z_0 has shape ``(n_latent, style_dim)``: W+ Gaussianized as in PULSE/ILO, one row per
style input, ``w = leaky_relu_0.2(z_0 * w_gauss_std + w_gauss_mean)``; the mean/std are
those of ``leaky_relu_5(w)`` over mapping-network samples (:meth:`fit_latent_statistics`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from common.checkpoint import read_checkpoint
from common.errors import UserInputError
from priors.base import LATENT, NOISE, NOISE_PREFIX, STATE, LayeredPrior, Representation
from priors.stylegan2_ops import (ConstantInput, ConvLayer, EqualLinear, PixelNorm, ResBlock, StyledConv, ToRGB,
                                  minibatch_stddev)

#: seed of the fixed noise maps of a freshly built generator (overwritten by checkpoints that have them)
NOISE_SEED = 1234
#: Gaussianized-W standard deviations are at least this fraction of their mean: a mapping dimension with
#: (near) zero variance would otherwise make z_0 = (v - mean) / std divide by zero (NaN images)
MIN_RELATIVE_STD = 1e-3


def channel_widths(size: int, channel_multiplier: int = 2, channel_base: int = 16384,
                   max_channels: int = 512) -> dict[int, int]:
    """Feature maps per resolution 4..size: rosinality's table is min(512, 16384 * multiplier / res)."""
    check_size(size)
    widths = {4 * 2 ** i: min(max_channels, channel_base * channel_multiplier // (4 * 2 ** i))
              for i in range(int(math.log2(size)) - 1)}
    if min(widths.values()) < 1:
        raise UserInputError(f"channel widths {widths} contain zero channels; raise channel_base or channel_multiplier")
    return widths


def check_size(size: int) -> int:
    if not isinstance(size, int) or size < 8 or size & (size - 1):
        raise UserInputError(f"StyleGAN2 size must be a power of two >= 8 (e.g. 32, 256, 1024), got {size!r}; "
                             f"for training set data.image_size to one (the model's size follows it)")
    return size


def floor_std(std: torch.Tensor) -> torch.Tensor:
    """``std`` clamped to at least :data:`MIN_RELATIVE_STD` times its mean (1 when all are zero); NaN stays NaN."""
    scale = std.mean()
    scale = scale if bool(scale > 0) else torch.ones_like(scale)
    return std.clamp_min(MIN_RELATIVE_STD * scale)


def _floor_loaded_std(module: "StyleGAN2Prior", incompatible_keys) -> None:
    module.w_gauss_std.data.copy_(floor_std(module.w_gauss_std.data))


def inverse_leaky_relu(w: torch.Tensor) -> torch.Tensor:
    """v = w for w >= 0, w / 0.2 otherwise: undoes the mapping network's last leaky ReLU."""
    return torch.where(w >= 0, w, w * 5.0)


class StyleGAN2Prior(LayeredPrior):
    """rosinality's ``Generator`` (same module tree and state-dict keys) on the layered-prior protocol."""

    def __init__(self, size: int = 256, channels: int = 3, style_dim: int = 512, n_mlp: int = 8,
                 channel_multiplier: int = 2, channel_base: int = 16384, max_channels: int = 512,
                 lr_mlp: float = 0.01, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.size, self.img_channels, self.style_dim, self.n_mlp = int(size), int(channels), int(style_dim), int(n_mlp)
        self.arch = {"channel_multiplier": channel_multiplier, "channel_base": channel_base,
                     "max_channels": max_channels, "lr_mlp": lr_mlp, "blur_kernel": list(blur_kernel)}
        self.widths = channel_widths(self.size, channel_multiplier, channel_base, max_channels)
        self.log_size = int(math.log2(self.size))
        self.n_latent = self.log_size * 2 - 2
        self.num_convs = (self.log_size - 2) * 2 + 1
        self.layer_names = ("latent",) + tuple(f"{r}x{r}" for r in self.widths)

        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True)
                                                  for _ in range(n_mlp)])
        c4 = self.widths[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(c4, style_dim, self.img_channels, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        in_channel = c4
        for res in list(self.widths)[1:]:
            out_channel = self.widths[res]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, self.img_channels, blur_kernel=blur_kernel))
            in_channel = out_channel
        self.noises = nn.Module()
        g = torch.Generator().manual_seed(NOISE_SEED)
        for j in range(self.num_convs):
            res = 2 ** ((j + 5) // 2)
            self.noises.register_buffer(f"noise_{j}", torch.randn(1, 1, res, res, generator=g))
        self.register_buffer("w_gauss_mean", torch.zeros(style_dim))
        self.register_buffer("w_gauss_std", torch.ones(style_dim))
        self.register_buffer("latent_avg", torch.zeros(style_dim))
        # statistics from files (earlier exports, other tools) get the same floor as fitted ones
        self.register_load_state_dict_post_hook(_floor_loaded_std)

    # -- identity ----------------------------------------------------------------------------
    def config(self) -> dict:
        """Constructor arguments with ``_target_``: ``hydra.utils.instantiate`` rebuilds this architecture."""
        return {"_target_": f"{type(self).__module__}.{type(self).__name__}", "size": self.size,
                "channels": self.img_channels, "style_dim": self.style_dim, "n_mlp": self.n_mlp, **self.arch}

    def describe(self) -> dict:
        return {**super().describe(), "widths": dict(self.widths), "style_dim": self.style_dim, "n_mlp": self.n_mlp}

    @property
    def num_layers(self) -> int:
        return self.log_size - 1

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.n_latent, self.style_dim)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.img_channels, self.size, self.size)

    # -- latent spaces ---------------------------------------------------------------------
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping network: z ~ N(0, I) of shape (N, style_dim) → w (N, style_dim)."""
        return self.style(z)

    def w_to_latent(self, w: torch.Tensor) -> torch.Tensor:
        """W (or W+) → Gaussianized coordinates (the inverse of :meth:`latent_to_w`)."""
        return (inverse_leaky_relu(w) - self.w_gauss_mean) / self.w_gauss_std

    def latent_to_w(self, latent: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(latent * self.w_gauss_std + self.w_gauss_mean, 0.2)

    def broadcast_w(self, w: torch.Tensor) -> torch.Tensor:
        """(N, style_dim) → W+ (N, n_latent, style_dim), the same w for every style input."""
        return w[:, None, :].expand(-1, self.n_latent, -1)

    @torch.no_grad()
    def fit_latent_statistics(self, num_samples: int = 10000, seed: int = 0, chunk_size: int = 4096) -> None:
        """Fit the Gaussianization (mean/std of leaky_relu_5(w)) and ``latent_avg`` (mean w) from samples."""
        if num_samples < 2:
            raise UserInputError(f"fitting the latent statistics needs num_samples >= 2, got {num_samples}")
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(num_samples, self.style_dim, generator=g)
        w = torch.cat([self.mapping(c.to(self.device)) for c in z.split(chunk_size)])
        v = inverse_leaky_relu(w)
        self.w_gauss_mean.copy_(v.mean(0))
        self.w_gauss_std.copy_(floor_std(v.std(0)))
        self.latent_avg.copy_(w.mean(0))

    @torch.no_grad()
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z_0 of generator samples: mapping(N(0, I)) Gaussianized, the same row for every style input."""
        z = torch.randn(n, self.style_dim, generator=generator).to(self.device)
        return self.w_to_latent(self.broadcast_w(self.mapping(z))).contiguous()

    # -- the layered protocol ----------------------------------------------------------------
    def noise_maps(self, batch: int = 1, randomize: bool = False,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``{"noise.<j>": (batch, 1, r, r)}``: the fixed buffers (expanded), or fresh N(0, 1) draws."""
        maps = {}
        for j in range(self.num_convs):
            fixed = getattr(self.noises, f"noise_{j}")
            if randomize:
                maps[f"{NOISE_PREFIX}{j}"] = torch.randn((batch, *fixed.shape[1:]), generator=generator,
                                                         device=fixed.device, dtype=fixed.dtype)
            else:
                maps[f"{NOISE_PREFIX}{j}"] = fixed.expand(batch, -1, -1, -1)
        return maps

    def initial_representation(self, z0: torch.Tensor, randomize_noise: bool = False,
                               generator: torch.Generator | None = None) -> Representation:
        """Split 0: ``{"state": z0, "noise.<j>": …}``; fixed noise maps unless ``randomize_noise`` (training)."""
        if tuple(z0.shape[1:]) != self.latent_shape:
            raise ValueError(f"z0 of shape {tuple(z0.shape)} does not fit this StyleGAN2 (expects (N, "
                             f"{self.n_latent}, {self.style_dim}))")
        return {"state": z0, **self.noise_maps(z0.shape[0], randomize_noise, generator)}

    def apply_layer(self, rep: Representation, i: int) -> Representation:
        self.check_split(i)
        if i == self.num_layers:
            raise ValueError(f"split {i} is the image; there is no layer after it")
        if i == 0:
            latent = rep["state"]
            w = self.latent_to_w(latent[:, :2])
            x = self.conv1(self.input(latent.shape[0]), w[:, 0], rep[f"{NOISE_PREFIX}0"])
            skip = self.to_rgb1(x, w[:, 1])
            used = 1
        else:
            latent = rep["latent"]
            w = self.latent_to_w(latent[:, 2 * i - 1: 2 * i + 2])
            x = self.convs[2 * i - 2](rep["state"], w[:, 0], rep[f"{NOISE_PREFIX}{2 * i - 1}"])
            x = self.convs[2 * i - 1](x, w[:, 1], rep[f"{NOISE_PREFIX}{2 * i}"])
            skip = self.to_rgbs[i - 1](x, w[:, 2], rep["skip"])
            used = 2 * i + 1
        remaining = {f"{NOISE_PREFIX}{j}": rep[f"{NOISE_PREFIX}{j}"] for j in range(used, self.num_convs)}
        return {"state": x, "latent": latent, "skip": skip, **remaining}

    def variable_roles(self, rep: Representation) -> dict[str, str]:
        """The feature map (z_0 at split 0), the travelling W+ code and the noise maps still to be read."""
        roles = {STATE: STATE, **({LATENT: LATENT} if LATENT in rep else {})}
        return {**roles, **{k: NOISE for k in rep if k.startswith(NOISE_PREFIX)}}

    def to_image(self, rep: Representation) -> torch.Tensor:
        """[-1, 1] generator output → [0, 1] (linear, not clamped: gradients stay intact)."""
        return (rep["skip"] + 1) / 2


class StyleGAN2Discriminator(nn.Module):
    """rosinality's residual ``Discriminator`` (same keys) with minibatch standard deviation."""

    def __init__(self, size: int = 256, channels: int = 3, channel_multiplier: int = 2, channel_base: int = 16384,
                 max_channels: int = 512, stddev_group: int = 4, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        widths = channel_widths(size, channel_multiplier, channel_base, max_channels)
        convs: list[nn.Module] = [ConvLayer(channels, widths[size], 1)]
        in_channel = widths[size]
        for res in reversed(list(widths)[:-1]):
            convs.append(ResBlock(in_channel, widths[res], blur_kernel))
            in_channel = widths[res]
        self.convs = nn.Sequential(*convs)
        self.stddev_group, self.stddev_feat = stddev_group, 1
        self.final_conv = ConvLayer(in_channel + 1, widths[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(widths[4] * 4 * 4, widths[4], activation=True),
                                          EqualLinear(widths[4], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] → logits (N, 1)."""
        out = minibatch_stddev(self.convs(x), self.stddev_group, self.stddev_feat)
        return self.final_linear(self.final_conv(out).flatten(1))


# -- rosinality checkpoints ----------------------------------------------------------------
#: buffers a rosinality generator state dict may lack (our additions, or noise maps)
_OPTIONAL_BUFFERS = ("w_gauss_mean", "w_gauss_std", "latent_avg")


def is_rosinality_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and ("g_ema" in obj or "style.1.weight" in obj)


def _read_checkpoint(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        return path_or_dict
    return read_checkpoint(path_or_dict, "StyleGAN2 checkpoint",
                           "download e.g. stylegan2-ffhq-config-f.pt (rosinality/stylegan2-pytorch) and pass its path")


def _generator_state(ckpt: dict, which: str) -> dict[str, torch.Tensor]:
    if "style.1.weight" in ckpt:
        return ckpt
    if which not in ckpt:
        raise UserInputError(
            f"not a rosinality stylegan2-pytorch checkpoint: no {which!r} entry (top-level keys: "
            f"{sorted(ckpt)[:8]}); convert NVIDIA .pkl files with that repository's convert_weight.py")
    state = ckpt[which]
    if not isinstance(state, dict) or "style.1.weight" not in state or "to_rgb1.bias" not in state:
        raise UserInputError(f"checkpoint entry {which!r} is not a rosinality StyleGAN2 generator state dict "
                             f"(missing style.1.weight / to_rgb1.bias)")
    return state


def infer_rosinality_config(state: dict[str, torch.Tensor], size: int | None = None,
                            channel_multiplier: int | None = None) -> dict:
    """StyleGAN2Prior arguments from a rosinality generator state dict's shapes.

    ``size`` / ``channel_multiplier`` given by the user are checked against the shapes.
    """
    n_rgbs = sum(1 for k in state if re.fullmatch(r"to_rgbs\.\d+\.bias", k))
    ckpt_size = 2 ** (n_rgbs + 2)
    if size is not None and size != ckpt_size:
        raise UserInputError(f"checkpoint generates {ckpt_size}x{ckpt_size} images, not size={size}; "
                             f"use a {size}x{size} checkpoint or drop the size override")
    style_dim = state["style.1.weight"].shape[1]
    n_mlp = sum(1 for k in state if re.fullmatch(r"style\.\d+\.weight", k))
    lr_mlp = 0.01
    widths = {4: state["input.input"].shape[1]}
    widths.update({2 ** (b + 3): state[f"convs.{2 * b}.conv.weight"].shape[1] for b in range(n_rgbs)})
    max_channels = widths[4]
    narrower = [(res, c) for res, c in widths.items() if c < max_channels]
    if narrower:
        res, c = narrower[0]
        product = res * c
        multiplier, base = (product // 16384, 16384) if product % 16384 == 0 else (1, product)
    else:  # all layers at max width: any large enough multiplier describes it
        multiplier, base = (channel_multiplier or 2), 16384
        base = max(base, -(-max_channels * ckpt_size // multiplier))
    expected = channel_widths(ckpt_size, multiplier, base, max_channels)
    if expected != widths:
        raise UserInputError(f"checkpoint channel widths {widths} do not follow rosinality's channel table; "
                             f"it is not a rosinality stylegan2-pytorch generator")
    if channel_multiplier is not None and channel_widths(ckpt_size, channel_multiplier, base, max_channels) != widths:
        raise UserInputError(f"checkpoint has channel_multiplier {multiplier} (widths {widths}), not "
                             f"channel_multiplier={channel_multiplier}; drop the override or use a matching checkpoint")
    return {"size": ckpt_size, "channels": state["to_rgb1.bias"].shape[1], "style_dim": style_dim, "n_mlp": n_mlp,
            "channel_multiplier": multiplier, "channel_base": base, "max_channels": max_channels, "lr_mlp": lr_mlp}


def load_rosinality(path_or_dict, size: int | None = None, channel_multiplier: int | None = None,
                    which: str = "g_ema", fit_statistics: bool = True, num_samples: int = 10000) -> StyleGAN2Prior:
    """A rosinality stylegan2-pytorch checkpoint (file or loaded dict, or a bare generator state dict) as a prior.

    The architecture is inferred from the tensor shapes; ``size``/``channel_multiplier`` only
    assert what the caller expects. Loading is strict except for noise buffers and our latent
    statistics; ``latent_avg`` comes from the checkpoint when present. With ``fit_statistics``
    the Gaussianized-W statistics are fitted from ``num_samples`` mapping-network samples.
    """
    ckpt = _read_checkpoint(path_or_dict)
    state = _generator_state(ckpt, which)
    prior = StyleGAN2Prior(**infer_rosinality_config(state, size, channel_multiplier))
    result = prior.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("noises.") and k not in _OPTIONAL_BUFFERS]
    if missing or result.unexpected_keys:
        what = f"missing {missing[:4]}" if missing else f"unexpected {result.unexpected_keys[:4]}"
        raise UserInputError(f"checkpoint does not match the rosinality StyleGAN2 architecture it implies ({what}); "
                             f"it is not a stylegan2-pytorch generator")
    if isinstance(ckpt.get("latent_avg"), torch.Tensor):
        prior.latent_avg.copy_(ckpt["latent_avg"].reshape(-1))
    if fit_statistics:
        latent_avg = prior.latent_avg.clone()
        prior.fit_latent_statistics(num_samples)
        if isinstance(ckpt.get("latent_avg"), torch.Tensor):
            prior.latent_avg.copy_(latent_avg)
    return prior
