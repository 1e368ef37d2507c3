"""DCGAN (Radford et al. 2016) as a layered prior, its discriminator, and PyTorch-tutorial checkpoints.

The layout is the PyTorch DCGAN tutorial's (CSGM/DPR/PRILO's 64×64 CelebA DCGAN is carpedm20's
TensorFlow one: same depth and widths, but a linear projection to 4×4 and 5×5 kernels): a
transposed convolution from the latent to a ``start``×``start`` map, then stride-2 transposed
convolutions (kernel 4) doubling the resolution; batch norm + ReLU after every block but the
last, tanh after the last. Channels at resolution r are
``width * size / (2 r)``. Sizes: 64 and 32 start at 4×4 (kernel 4); 28 (MNIST-like) starts
at 7×7 (kernel 7).

Split points: 0 is the latent z (``latent_dim``), i = 1 … k follow the i-th transposed-conv
block (post-ReLU feature map), k is the image, in [0, 1] as (tanh + 1) / 2. Batch norm runs
in eval mode for inversion (running statistics: every sample is generated on its own).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from common.errors import UserInputError
from priors.base import Representation, SquareImagePrior

#: image size → resolution of the first feature map
START_RESOLUTION = {28: 7, 32: 4, 64: 4}


def resolutions(size: int) -> list[int]:
    """Feature-map resolutions before the image: [start, 2 start, …, size / 2]."""
    if isinstance(size, bool) or size not in START_RESOLUTION:
        raise UserInputError(f"DCGAN size must be one of {sorted(START_RESOLUTION)}, got {size!r}; "
                             f"for training set data.image_size to one of them")
    res = [START_RESOLUTION[size]]
    while res[-1] * 2 < size:
        res.append(res[-1] * 2)
    return res


def widths(size: int, width: int) -> list[int]:
    """Channels of the feature map at each resolution of :func:`resolutions`."""
    return [width * size // (2 * r) for r in resolutions(size)]


class DCGANPrior(SquareImagePrior):
    """PyTorch-tutorial DCGAN generator; ``blocks.<i>.<j>`` = the tutorial's ``main.<3 i + j>``."""

    def __init__(self, size: int = 64, channels: int = 3, latent_dim: int = 100, width: int = 64):
        super().__init__()
        self.size, self.img_channels, self.latent_dim, self.width = int(size), int(channels), int(latent_dim), int(width)
        res = resolutions(self.size)
        chans = widths(self.size, self.width) + [self.img_channels]
        self.layer_names = ("z",) + tuple(f"{r}x{r}" for r in res) + ("image",)
        blocks = [nn.Sequential(nn.ConvTranspose2d(self.latent_dim, chans[0], res[0], 1, 0, bias=False),
                                nn.BatchNorm2d(chans[0]), nn.ReLU())]
        for c_in, c_out in zip(chans[:-2], chans[1:-1]):
            blocks.append(nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                                        nn.BatchNorm2d(c_out), nn.ReLU()))
        blocks.append(nn.Sequential(nn.ConvTranspose2d(chans[-2], chans[-1], 4, 2, 1, bias=False), nn.Tanh()))
        self.blocks = nn.ModuleList(blocks)
        tutorial_init(self)

    def config(self) -> dict:
        return {"_target_": f"{__name__}.{type(self).__name__}", "size": self.size, "channels": self.img_channels,
                "latent_dim": self.latent_dim, "width": self.width}

    def describe(self) -> dict:
        return {**super().describe(), "width": self.width}

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def apply_layer(self, rep: Representation, i: int) -> Representation:
        x = rep["state"]
        x = self.blocks[i](x[:, :, None, None] if i == 0 else x)
        return {"state": x * 0.5 + 0.5 if i == self.num_layers - 1 else x}


class DCGANDiscriminator(nn.Module):
    """The tutorial's discriminator: stride-2 convolutions (batch norm after all but the first,
    leaky ReLU 0.2), a final ``start``×``start`` convolution; images in [-1, 1] → logits (N, 1)
    (the tutorial's sigmoid is left to the loss)."""

    def __init__(self, size: int = 64, channels: int = 3, width: int = 64):
        super().__init__()
        res = resolutions(int(size))
        chans = widths(int(size), int(width))[::-1]
        layers = [nn.Conv2d(int(channels), chans[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(chans[-1], 1, res[0], 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        tutorial_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten(1)


def tutorial_init(module: nn.Module) -> None:
    """The tutorial's initialisation: conv weights N(0, 0.02), batch-norm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# -- PyTorch-tutorial checkpoints -----------------------------------------------------------
_TUTORIAL_KEY = re.compile(r"main\.(\d+)\.(.+)")


def is_tutorial_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and ("netG_state_dict" in obj or "main.0.weight" in obj)


def load_tutorial_dcgan(obj: dict, source: str = "checkpoint") -> DCGANPrior:
    """A PyTorch-tutorial DCGAN generator (``{"netG_state_dict": …}`` or its bare state dict) as a prior.

    Size, channels, latent dimension and width are read from the tensor shapes; the keys are
    mapped ``main.<3 i + j>`` → ``blocks.<i>.<j>`` and loaded strictly. Anything that does not
    fit that layout (another architecture, a resolution DCGAN here does not build) is refused.
    """
    state = obj.get("netG_state_dict", obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserInputError(f"{source}: 'netG_state_dict' is not a state dict of tensors")
    convs = sorted(int(m[1]) for k in state if (m := _TUTORIAL_KEY.fullmatch(k)) and state[k].ndim == 4)
    if not convs or convs != list(range(0, 3 * len(convs), 3)):
        raise UserInputError(f"{source} is not a PyTorch-tutorial DCGAN generator (transposed convolutions expected at "
                             f"main.0, main.3, main.6, …; found {convs[:6]})")
    first, last = state["main.0.weight"], state[f"main.{convs[-1]}.weight"]
    start = first.shape[-1]
    size = start * 2 ** (len(convs) - 1)
    width = state[f"main.{convs[-2]}.weight"].shape[1] if len(convs) > 1 else 0
    if START_RESOLUTION.get(size) != start or width < 1:
        raise UserInputError(f"{source} holds a DCGAN generator with a {start}x{start} first map and {len(convs)} blocks "
                             f"({size}x{size} images); supported sizes: " +
                             ", ".join(f"{s} (first map {r}x{r})" for s, r in START_RESOLUTION.items()))
    prior = DCGANPrior(size=size, channels=last.shape[1], latent_dim=first.shape[0], width=width)
    mapped = {}
    for key, value in state.items():
        m = _TUTORIAL_KEY.fullmatch(key)
        index = int(m[1]) if m else -1
        mapped[f"blocks.{index // 3}.{index % 3}.{m[2]}" if m else key] = value
    try:
        prior.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split("\n")[1:2]).strip() or str(err)
        raise UserInputError(f"{source} does not match the {size}x{size} DCGAN layout its shapes imply: {detail}") from None
    return prior
