"""Inpainting: y = M ⊙ x with a pixel mask M shared across channels."""
from __future__ import annotations

import math

import torch

from common.errors import UserInputError
from operators.base import LinearOperator, buffer_like

MASK_TYPES = ("random", "box", "given")


class Inpainting(LinearOperator):
    """y = M ⊙ x, M ∈ {0, 1}^{H×W} (1 = observed), the same for every channel.

    ``mask_type``:
    * ``random``: exactly ``round(observed_ratio · H · W)`` pixels observed, drawn from the seed;
    * ``box``: a missing ``box_size = [h, w]`` rectangle at ``box_position = [top, left]``
      (centred when ``box_position`` is None), everything else observed;
    * ``given``: the caller's ``mask`` ((H, W) or (1, H, W), values 0/1).

    Measurements keep the image shape (unobserved pixels are 0, noise included), and
    ``measurement_error`` averages over observed entries only.
    """

    name = "inpainting"

    def __init__(self, input_shape, mask_type: str = "random", observed_ratio: float | None = 0.5,
                 box_size=None, box_position=None, mask=None, noise_std: float = 0.0, seed: int = 0):
        super().__init__(input_shape, noise_std, seed)
        if len(self.input_shape) != 3:
            raise UserInputError(f"inpainting needs input_shape [C, H, W], got {list(self.input_shape)}")
        if mask_type not in MASK_TYPES:
            raise UserInputError(f"mask_type must be one of {', '.join(MASK_TYPES)}, got {mask_type!r}")
        self.mask_type = mask_type
        self.observed_ratio = None if observed_ratio is None else float(observed_ratio)
        self.box_size = None if box_size is None else [int(s) for s in box_size]
        self.box_position = None if box_position is None else [int(s) for s in box_position]
        build = {"random": self._random_mask, "box": self._box_mask, "given": lambda: self._given_mask(mask)}
        self.register_buffer("mask", build[mask_type]()[None])  # (1, H, W)

    def _random_mask(self) -> torch.Tensor:
        h, w = self.input_shape[1:]
        ratio = self.observed_ratio
        if ratio is None or not math.isfinite(ratio) or not 0 < ratio <= 1:
            raise UserInputError(f"observed_ratio must be in (0, 1] for a random mask, got {ratio}")
        observed = round(ratio * h * w)
        if observed < 1:
            raise UserInputError(f"observed_ratio {ratio} observes no pixel of a {h}x{w} image; raise it")
        mask = torch.zeros(h * w)
        mask[torch.randperm(h * w, generator=self.generator())[:observed]] = 1
        return mask.view(h, w)

    def _box_mask(self) -> torch.Tensor:
        h, w = self.input_shape[1:]
        if self.box_size is None or len(self.box_size) != 2:
            raise UserInputError(f"box masks need box_size [h, w], got {self.box_size}")
        bh, bw = self.box_size
        if self.box_position is None:
            self.box_position = [(h - bh) // 2, (w - bw) // 2]
        if len(self.box_position) != 2:
            raise UserInputError(f"box_position must be [top, left], got {self.box_position}")
        top, left = self.box_position
        if bh < 1 or bw < 1 or top < 0 or left < 0 or top + bh > h or left + bw > w:
            raise UserInputError(
                f"box of size {self.box_size} at {self.box_position} does not fit a {h}x{w} image; "
                "shrink or move it"
            )
        mask = torch.ones(h, w)
        mask[top : top + bh, left : left + bw] = 0
        return mask

    def _given_mask(self, mask) -> torch.Tensor:
        h, w = self.input_shape[1:]
        if mask is None:
            raise UserInputError("mask_type 'given' needs a mask (an (H, W) array of 0/1)")
        mask = torch.as_tensor(mask, dtype=torch.float32).cpu()
        if mask.dim() == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if tuple(mask.shape) != (h, w):
            raise UserInputError(f"mask of shape {tuple(mask.shape)} does not fit {h}x{w} images; give an (H, W) mask")
        if not ((mask == 0) | (mask == 1)).all():
            raise UserInputError("mask values must be 0 (missing) or 1 (observed)")
        return mask

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * buffer_like(self.mask, x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.forward(y)

    def measure(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(super().measure(x, eps))

    def measurement_error(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        observed = self.mask.sum() * self.input_shape[0]
        return self.forward(x - y).flatten(1).pow(2).sum(1) / observed.to(x)

    def spec(self) -> dict:
        return {**super().spec(), "mask_type": self.mask_type, "observed_ratio": self.observed_ratio,
                "box_size": self.box_size, "box_position": self.box_position}

    @classmethod
    def from_spec(cls, spec: dict, state_dict: dict | None = None) -> "Inpainting":
        if spec.get("mask_type") == "given":
            if state_dict is None or "mask" not in state_dict:
                raise UserInputError("an inpainting operator with a given mask needs its state_dict (the mask)")
            spec = {**spec, "mask": state_dict["mask"]}
        return super().from_spec(spec, state_dict)
