"""Progressive GAN (Karras et al. 2018) as a layered prior, its discriminator, rosinality checkpoints.

Generator of RTIL appendix A.2 table 2: the latent (pixel-normalized) through a 4×4 conv to a
4×4 map and a 3×3 conv, then per resolution 8…size a nearest 2× upsampling and two 3×3 convs,
a 1×1 toRGB at the end; every conv has an equalized learning rate and is followed by pixel
norm and leaky ReLU 0.2 (rosinality/progressive-gan-pytorch's order and module tree, whose
checkpoints load here). Each resolution keeps its own toRGB for progressive growing
(``lightning_modules.progressive``); the prior uses the last one.

Split points (``num_layers = log2(size)``): 0 is z (``latent_dim``), i = 1 … log2(size) − 1 follow
block i (features at 4·2^(i−1)), the last one is the image (toRGB, [-1, 1] → ``to_image`` maps
to [0, 1]). Widths per resolution: ``widths`` (a list, or ``"table2"`` for RTIL table 2:
256 up to 32×32, then 128, 64, 64) or ``min(max_channels, channel_base // resolution)``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from common.errors import UserInputError
from priors.base import Representation, SquareImagePrior
from priors.stylegan2_ops import EqualConv2d, EqualLinear, PixelNorm, minibatch_stddev

#: RTIL appendix A.2 table 2: feature maps at 4, 8, …, 256
TABLE2_WIDTHS = (256, 256, 256, 256, 128, 64, 64)
SQRT2 = math.sqrt(2.0)


def pggan_widths(size: int, widths: Sequence[int] | str | None = None, max_channels: int = 256,
                 channel_base: int = 8192) -> list[int]:
    """Feature maps at resolutions 4, 8, …, size."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 4 or size & (size - 1):
        raise UserInputError(f"PGGAN size must be a power of two >= 4 (e.g. 32, 256), got {size!r}; "
                             f"for training set data.image_size to one (the model's size follows it)")
    n = int(math.log2(size)) - 1
    if widths == "table2":
        widths = TABLE2_WIDTHS[:n] if n <= len(TABLE2_WIDTHS) else None
        if widths is None:
            raise UserInputError(f"widths=table2 lists resolutions up to 256, not {size}; give a list of {n} widths")
    if widths is None:
        widths = [min(max_channels, channel_base // (4 * 2 ** i)) for i in range(n)]
    widths = [int(w) for w in widths]
    if len(widths) != n or min(widths) < 1:
        raise UserInputError(f"PGGAN widths {widths} must be {n} positive channel counts (resolutions 4..{size})")
    return widths


class Block(nn.Module):
    """(2× nearest upsampling,) conv, pixel norm, leaky ReLU, conv, pixel norm, leaky ReLU."""

    def __init__(self, in_channel: int, out_channel: int, first: bool = False):
        super().__init__()
        self.first = first  # the 4x4 block: a 4x4 conv (padding 3) on the 1x1 latent map, no upsampling
        self.conv1 = EqualConv2d(in_channel, out_channel, 4 if first else 3, padding=3 if first else 1, gain=SQRT2)
        self.conv2 = EqualConv2d(out_channel, out_channel, 3, padding=1, gain=SQRT2)
        self.norm = PixelNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.leaky_relu(self.norm(self.conv1(x)), 0.2)
        return F.leaky_relu(self.norm(self.conv2(x)), 0.2)


def to_rgb_layer(in_channel: int, channels: int, equalized: bool) -> nn.Module:
    """1×1 toRGB: equalized (gain 1, PGGAN) or a plain ``nn.Conv2d`` (rosinality); keys ``weight``, ``bias``."""
    return EqualConv2d(in_channel, channels, 1) if equalized else nn.Conv2d(in_channel, channels, 1)


class PGGANPrior(SquareImagePrior):
    """Progressive GAN generator at its final resolution on the layered protocol."""

    def __init__(self, size: int = 256, channels: int = 3, latent_dim: int = 512,
                 widths: Sequence[int] | str | None = None, max_channels: int = 256, channel_base: int = 8192,
                 n_label: int = 0, label: int = 0, equalized_rgb: bool = True):
        super().__init__()
        self.size, self.img_channels, self.latent_dim = size, int(channels), int(latent_dim)
        self.widths = pggan_widths(size, widths, max_channels, channel_base)
        self.arch = {"widths": list(self.widths), "n_label": int(n_label), "label": int(label),
                     "equalized_rgb": bool(equalized_rgb)}
        self.layer_names = ("z",) + tuple(f"{4 * 2 ** i}x{4 * 2 ** i}" for i in range(len(self.widths))) + ("image",)
        self.norm = PixelNorm()
        # rosinality's conditional input: the embedding of a fixed label appended to the normalized code
        self.label_embed = nn.Embedding(n_label, n_label) if n_label else None
        ins = [self.latent_dim + int(n_label)] + self.widths[:-1]
        self.blocks = nn.ModuleList(Block(i, o, first=not b) for b, (i, o) in enumerate(zip(ins, self.widths)))
        self.to_rgb = nn.ModuleList(to_rgb_layer(w, self.img_channels, equalized_rgb) for w in self.widths)

    def config(self) -> dict:
        return {"_target_": f"{type(self).__module__}.{type(self).__name__}", "size": self.size,
                "channels": self.img_channels, "latent_dim": self.latent_dim, **self.arch}

    def describe(self) -> dict:
        return {**super().describe(), "widths": list(self.widths)}

    @property
    def num_layers(self) -> int:
        return len(self.blocks) + 1

    def apply_layer(self, rep: Representation, i: int) -> Representation:
        self.check_split(i)
        if i == self.num_layers:
            raise ValueError(f"split {i} is the image; there is no layer after it")
        x = rep["state"]
        if i == len(self.blocks):
            return {"state": self.to_rgb[-1](x)}
        if i == 0:
            x = self.norm(x)
            if self.label_embed is not None:
                label = torch.full((x.shape[0],), self.arch["label"], dtype=torch.long, device=x.device)
                x = torch.cat([x, self.label_embed(label)], 1)
            x = x[:, :, None, None]
        return {"state": self.blocks[i](x)}

    def to_image(self, rep: Representation) -> torch.Tensor:
        """[-1, 1] generator output → [0, 1] (linear, not clamped)."""
        return (rep["state"] + 1) / 2


class PGGANDiscriminator(nn.Module):
    """Mirror of the generator: fromRGB (1×1) per resolution, two 3×3 convs + 2× average pooling per
    block, minibatch standard deviation, 3×3 and 4×4 convs and a linear layer at 4×4.

    ``forward(x, level, alpha)`` reads images at resolution 4·2^level; with ``alpha < 1`` the
    new block fades in over fromRGB of the 2× average-pooled image (``level=None``: full size).
    """

    def __init__(self, size: int = 256, channels: int = 3, widths: Sequence[int] | str | None = None,
                 max_channels: int = 256, channel_base: int = 8192, stddev_group: int = 4):
        super().__init__()
        w = pggan_widths(size, widths, max_channels, channel_base)
        self.stddev_group = stddev_group
        self.from_rgb = nn.ModuleList(EqualConv2d(channels, c, 1, gain=SQRT2) for c in w)
        # blocks[i] reads resolution 4·2^i and halves it; the 4x4 end is the final convs
        self.blocks = nn.ModuleList([nn.Identity()] + [
            nn.ModuleList([EqualConv2d(w[i], w[i], 3, padding=1, gain=SQRT2),
                           EqualConv2d(w[i], w[i - 1], 3, padding=1, gain=SQRT2)]) for i in range(1, len(w))])
        self.final_conv = EqualConv2d(w[0] + 1, w[0], 3, padding=1, gain=SQRT2)
        self.final_conv4 = EqualConv2d(w[0], w[0], 4, gain=SQRT2)
        self.final_linear = EqualLinear(w[0], 1)

    def block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        conv1, conv2 = self.blocks[i]
        return F.avg_pool2d(F.leaky_relu(conv2(F.leaky_relu(conv1(x), 0.2)), 0.2), 2)

    def from_image(self, x: torch.Tensor, level: int) -> torch.Tensor:
        return F.leaky_relu(self.from_rgb[level](x), 0.2)

    def forward(self, x: torch.Tensor, level: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """Images in [-1, 1] → critic values (N, 1)."""
        level = len(self.from_rgb) - 1 if level is None else level
        if x.shape[-1] != 4 * 2 ** level:
            raise ValueError(f"level {level} reads {4 * 2 ** level}x{4 * 2 ** level} images, got {tuple(x.shape)}")
        h = self.from_image(x, level)
        for i in range(level, 0, -1):
            h = self.block(i, h)
            if i == level and alpha < 1:
                h = torch.lerp(self.from_image(F.avg_pool2d(x, 2), level - 1), h, alpha)
        h = F.leaky_relu(self.final_conv(minibatch_stddev(h, self.stddev_group)), 0.2)
        return self.final_linear(F.leaky_relu(self.final_conv4(h), 0.2).flatten(1))


# -- rosinality/progressive-gan-pytorch checkpoints --------------------------------------------
_ROSINALITY_KEY = re.compile(r"progression\.(\d+)\.conv\.([03])\.conv\.(weight_orig|bias)")


def rosinality_to_ours(key: str) -> str | None:
    """``progression.<b>.conv.<0|3>.conv.<weight_orig|bias>`` → ``blocks.<b>.conv<1|2>.<weight|bias>``;
    ``to_rgb.*`` and ``label_embed.weight`` keep their names; anything else → None."""
    m = _ROSINALITY_KEY.fullmatch(key)
    if m:
        b, conv, param = m.groups()
        return f"blocks.{b}.conv{1 if conv == '0' else 2}.{'weight' if param == 'weight_orig' else 'bias'}"
    return key if re.fullmatch(r"to_rgb\.\d+\.(weight|bias)|label_embed\.weight", key) else None


#: the classes a pickled rosinality generator (``torch.save(g_running, "….model")``) names
_PICKLED_CLASSES = ("model.Generator", "model.ConvBlock", "model.EqualConv2d", "model.EqualLR", "model.PixelNorm",
                    "torch.nn.modules.conv.Conv2d", "torch.nn.modules.container.Sequential",
                    "torch.nn.modules.container.ModuleList", "torch.nn.modules.activation.LeakyReLU",
                    "torch.nn.modules.sparse.Embedding")


class _PickledModule:
    """Stand-in for every class of :data:`_PICKLED_CLASSES` when unpickling the whole generator that
    rosinality's train.py saves (``torch.save(g_running, "….model")``): keeps attributes, runs nothing."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        state = {prefix + k: v.detach() for k, v in self.__dict__.get("_parameters", {}).items() if v is not None}
        for name, child in self.__dict__.get("_modules", {}).items():
            if isinstance(child, _PickledModule):
                state.update(child.state_dict(f"{prefix}{name}."))
        return state


#: allowlist entries for weights-only unpickling of such a file (inert stand-ins)
PICKLED_GLOBALS = [(_PickledModule, name) for name in _PICKLED_CLASSES]


def unpickled_state(obj):
    """The parameters of a pickled rosinality generator; anything else unchanged."""
    return obj.state_dict() if isinstance(obj, _PickledModule) else obj


def load_rosinality_pggan(path_or_dict, size: int | None = None, label: int = 0) -> PGGANPrior:
    """A rosinality/progressive-gan-pytorch generator (the ``.model`` file its train.py saves, its
    ``state_dict()``, a file of it, or a dict holding it under ``generator`` / ``g_running``) as a prior.

    The architecture (widths, latent size, labels, final resolution 4·2^(blocks−1), 128 in that
    repository) is read from the tensor shapes; ``size`` below it uses the first blocks only (the
    generator of that training step). Every key must map (strict); otherwise one line says what does not.
    """
    from common.checkpoint import read_checkpoint

    state = path_or_dict if isinstance(path_or_dict, dict) else read_checkpoint(path_or_dict, "PGGAN checkpoint")
    for key in ("g_running", "generator"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or "progression.0.conv.0.conv.weight_orig" not in state:
        raise UserInputError("not a rosinality/progressive-gan-pytorch generator state dict "
                             "(no progression.0.conv.0.conv.weight_orig)")
    unknown = [k for k in state if rosinality_to_ours(k) is None]
    if unknown:
        raise UserInputError(f"PGGAN checkpoint has keys outside rosinality's Generator layout: {unknown[:4]}")
    n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("progression."))
    widths = [state[f"progression.{b}.conv.0.conv.weight_orig"].shape[0] for b in range(n_blocks)]
    full = 4 * 2 ** (n_blocks - 1)
    size = full if size is None else size
    if size > full or size < 4 or size & (size - 1):
        raise UserInputError(f"PGGAN checkpoint generates up to {full}x{full}; "
                             f"size={size} is not a power of two <= {full}")
    n_label = state["label_embed.weight"].shape[0] if "label_embed.weight" in state else 0
    in_channels = state["progression.0.conv.0.conv.weight_orig"].shape[1]
    prior = PGGANPrior(size=size, channels=state["to_rgb.0.weight"].shape[0], latent_dim=in_channels - n_label,
                       widths=widths[:int(math.log2(size)) - 1], n_label=n_label, label=label, equalized_rgb=False)
    used = len(prior.blocks)
    # blocks beyond ``size`` (and their toRGBs) stay unused
    mapped = {rosinality_to_ours(k): v for k, v in state.items()
              if k == "label_embed.weight" or int(k.split(".")[1]) < used}
    try:
        prior.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        what = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), str(err))
        raise UserInputError(f"PGGAN checkpoint does not match rosinality's Generator layout: {what}") from None
    return prior
