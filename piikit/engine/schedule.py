"""The stage schedule: how the optimized image starts small and grows (PII §3.1).

With image size ``S`` and ``n`` stages, ``step = S / (n + 1)``; stage ``k`` (0-based) works
on an image of ``(k + 2) * step`` pixels. For the paper's ``S = 224, n = 7`` that is
``step = 28`` and sizes 56, 84, ..., 224. At each new stage:

``zoom+center`` (PII)
    the previous image is bilinearly upsampled to ``size - step / 2`` and pasted in the
    centre of a fresh uniform-noise canvas of the new size, leaving a border of noise.
``zoom``
    the previous image is upsampled to the full new size.
``center``
    the model always sees a full ``S``×``S`` canvas (fixed noise, or the border fill) with the
    optimized patch in its centre; the patch grows outward by taking in the canvas around it.
``none``
    one full-size image from the start; stages only restart the optimizer, so the step
    budget equals the other modes'.

The first stage starts from uniform noise in [0, 1], with ``channels`` channels (3 for RGB
models, 1 for grayscale ones).

Every stage must grow the image by at least a pixel, so ``stages`` is at most
``image_size / 2 - 1`` (for example 15 at 32 px); more is refused when the schedule is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F

__all__ = ["StageSchedule", "ScheduleMode", "SCHEDULE_MODES", "BorderFill", "BORDER_FILLS", "fill", "paste_center"]

ScheduleMode = Literal["zoom+center", "zoom", "center", "none"]
SCHEDULE_MODES: tuple[str, ...] = get_args(ScheduleMode)
BorderFill = Literal["noise", "grey", "black"]
BORDER_FILLS: tuple[str, ...] = get_args(BorderFill)


def fill(kind: BorderFill, batch: int, size: int, generator: torch.Generator | None = None,
         device: torch.device | None = None, channels: int = 3, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A batch × channels × size × size image of the border fill: uniform noise, mid-grey or black
    (0: the surround of dark-background data such as digits)."""
    if kind == "noise":
        return torch.rand(batch, channels, size, size, generator=generator, device=device, dtype=dtype)
    if kind == "grey":
        return torch.full((batch, channels, size, size), 0.5, device=device, dtype=dtype)
    if kind == "black":
        return torch.zeros((batch, channels, size, size), device=device, dtype=dtype)
    raise ValueError(f"unknown border fill {kind!r}; choose one of {', '.join(BORDER_FILLS)}")


def paste_center(canvas: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """``canvas`` with ``patch`` pasted in its centre (out of place, keeps gradients)."""
    h, w = patch.shape[-2:]
    top, left = (canvas.shape[-2] - h) // 2, (canvas.shape[-1] - w) // 2
    out = canvas.clone()
    out[..., top : top + h, left : left + w] = patch
    return out


@dataclass(frozen=True)
class StageSchedule:
    """Image sizes per stage and how an image moves from one stage to the next.

    >>> StageSchedule(224).sizes
    (56, 84, 112, 140, 168, 196, 224)
    >>> StageSchedule(384).sizes
    (96, 144, 192, 240, 288, 336, 384)
    """

    image_size: int = 224
    stages: int = 7
    mode: ScheduleMode = "zoom+center"
    channels: int = 3

    def __post_init__(self) -> None:
        if self.mode not in SCHEDULE_MODES:
            raise ValueError(f"unknown schedule {self.mode!r}; choose one of {', '.join(SCHEDULE_MODES)}")
        if self.stages < 1 or self.image_size < 8 or self.channels < 1:
            raise ValueError(
                f"need stages >= 1, image_size >= 8 and channels >= 1, got {self.stages}, {self.image_size}, {self.channels}"
            )
        if self.mode != "none" and self.step < 2:
            # Below 2 px per stage, sizes repeat (rounding) and the half-step border vanishes.
            raise ValueError(
                f"stages={self.stages} is too many for image_size={self.image_size}: each stage would grow the "
                f"image by {self.step:.2f} px; use at most {self.image_size // 2 - 1} stages, a larger image_size, "
                "or schedule='none'"
            )

    @property
    def step(self) -> float:
        return self.image_size / (self.stages + 1)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Side of the optimized image in each stage."""
        if self.mode == "none":
            return (self.image_size,) * self.stages
        return tuple(round((k + 2) * self.step) for k in range(self.stages))

    def paste_size(self, stage: int) -> int:
        """Side the previous image takes in the new one at the start of ``stage`` >= 1."""
        if self.mode == "zoom+center":
            return round(self.sizes[stage] - self.step / 2)
        if self.mode == "center":
            return self.sizes[stage - 1]
        return self.sizes[stage]

    def initial(self, batch: int, generator: torch.Generator | None = None, device: torch.device | None = None,
                border: BorderFill = "noise") -> torch.Tensor:
        """The first stage's image, batch × channels × s × s: uniform noise (the paper), or for
        ``border="grey"`` mid-grey with faint noise (±0.05), for ``"black"`` faint noise in
        [0, 0.1] (values stay in [0, 1]). The noise matters: for a model
        whose input normalization maps 0.5 to 0 (Lite's mean = 0.5), a flat grey image can be
        a point where every ReLU input is 0 and the gradient vanishes."""
        return self._start(batch, self.sizes[0], generator, device, border)

    def canvas(self, batch: int, generator: torch.Generator | None = None, device: torch.device | None = None,
               border: BorderFill = "noise") -> torch.Tensor | None:
        """The fixed full-size surround of the patch (``center`` mode only), filled like the
        first image: with a grey or black border the surround must not be noise either, or the
        final image keeps a frame of noise that the last stage's few steps cannot remove."""
        if self.mode != "center":
            return None
        return self._start(batch, self.image_size, generator, device, border)

    def _start(self, batch: int, size: int, generator: torch.Generator | None, device: torch.device | None,
               border: BorderFill) -> torch.Tensor:
        noise = torch.rand(batch, self.channels, size, size, generator=generator, device=device)
        if border == "noise":
            return noise
        if border == "black":
            return noise * 0.1
        return fill(border, batch, size, generator, device, self.channels) + (noise - 0.5) * 0.1

    def grow(
        self, image: torch.Tensor, stage: int, generator: torch.Generator | None = None,
        canvas: torch.Tensor | None = None, border: BorderFill = "noise",
    ) -> torch.Tensor:
        """The starting image of ``stage`` made from the previous stage's final ``image``:
        upsampled to the paste size and pasted in the centre of a new canvas filled with
        ``border`` (``"noise"``: uniform noise, the paper; ``"grey"``: mid-grey; ``"black"``: 0)."""
        size, paste = self.sizes[stage], self.paste_size(stage)
        image = image.detach()
        if self.mode == "none":
            return image.clone()
        if self.mode == "center":
            if canvas is None:
                raise ValueError("center mode needs the canvas the patch lives in")
            return center_crop(paste_center(canvas, image), size)
        if paste != image.shape[-1]:
            image = F.interpolate(image, size=(paste, paste), mode="bilinear", align_corners=False)
        if paste == size:
            return image
        new = fill(border, image.shape[0], size, generator, image.device, image.shape[1], image.dtype)
        return paste_center(new, image)

    def model_input(self, image: torch.Tensor, canvas: torch.Tensor | None) -> torch.Tensor:
        """What the model sees of the optimized ``image`` (the whole canvas in ``center``)."""
        return image if canvas is None else paste_center(canvas, image)


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
    return image[..., top : top + size, left : left + size]
