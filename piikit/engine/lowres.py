"""An image parameterized below the model's resolution: optimize a small image, show the
model its bilinear upsampling.

Some models only ever saw low-resolution content: the digits models of
:mod:`piikit.digits` are trained on 8×8 scans upsampled to 32 px, so every training image
is smooth at the 4-px scale. Optimized pixel by pixel, an inversion of such a model is free
to put energy at frequencies the training data never had (stripes, checkerboards), which
the model tolerates and other models do not. :class:`LowResParam` takes that freedom away:
the optimizer moves an image ``factor`` times the side of the current stage's image
(8×8 for a 32-px image at ``factor=0.25``), and the model sees it bilinearly upsampled, the
way the data was made.

It plugs into the step loop like :class:`piikit.param.PixelParam` (the low-resolution
pixels are clamped to [0, 1] after each step, and a bilinear upsampling of values in
[0, 1] stays in [0, 1]). Each stage's grown image is re-encoded by area downsampling, so
zoom + centering work unchanged. Until the config knows it by name, set it on an
:class:`piikit.Inversion` before running::

    run = piikit.Inversion(clf, targets, config)   # config.param == "pixels"
    run.param = LowResParam(0.25)
    result = run.run()

>>> p = LowResParam(0.25)
>>> x = torch.rand(2, 1, 8, 8)
>>> params = p.encode(torch.nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False))
>>> tuple(params.shape), tuple(p.decode(params).shape)
((2, 1, 8, 8), (2, 1, 32, 32))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .param import Parameterization

__all__ = ["LowResParam"]


class LowResParam(Parameterization):
    """Pixels at ``factor`` times the image's side (at least ``min_side``), upsampled bilinearly."""

    clamp = True

    def __init__(self, factor: float = 0.25, min_side: int = 2) -> None:
        if not 0.0 < factor <= 1.0 or min_side < 1:
            raise ValueError(f"need 0 < factor <= 1 and min_side >= 1, got {factor}, {min_side}")
        self.factor = float(factor)
        self.min_side = int(min_side)
        self._sizes: dict[int, int] = {}  # low-resolution side -> the side it decodes to

    def side(self, size: int) -> int:
        """The optimized side for an image of side ``size``."""
        return min(size, max(self.min_side, round(size * self.factor)))

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        h, w = pixels.shape[-2:]
        if h != w:
            raise ValueError(f"LowResParam needs square images, got {h}×{w}")
        low = self.side(h)
        self._sizes[low] = h
        x = pixels.detach().float()
        if low != h:
            x = F.interpolate(x, size=(low, low), mode="area")
        return x.clamp(0, 1).clone()

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        low = params.shape[-1]
        size = self._sizes.get(low)
        if size is None:
            raise ValueError(f"no image of side {low} was encoded; encode pixels first")
        if size == low:
            return params
        return F.interpolate(params, size=(size, size), mode="bilinear", align_corners=False)
