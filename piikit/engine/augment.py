"""The augmentations Plug-In Inversion applies at every step, as replayable modules.

Each module takes its static options in ``__init__``, draws its random parameters in
``sample_params`` from an explicit ``torch.Generator``, applies them in the pure
``apply``, and remembers the parameters of its last call in ``last_params`` so the exact
shift or colour used can be shown or replayed. No module touches the global RNG.

Parameters that must be Python numbers (the jitter's shift, whether to flip) are drawn
from a CPU generator; per-sample tensors (ColorShift) from a generator on the images'
device, so a CUDA step loop never waits on the host.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import torch
from torch import nn

__all__ = ["Jitter", "ColorShift", "Flip", "Repeat", "RandomAffine", "JitterParams", "ColorShiftParams", "AffineParams"]

P = TypeVar("P")


class _Augmentation(nn.Module, Generic[P]):
    """Shared ``forward``: sample parameters unless given, keep them, apply them."""

    last_params: P | None

    def __init__(self) -> None:
        super().__init__()
        self.last_params = None

    def sample_params(self, shape: torch.Size, generator: torch.Generator | None = None) -> P:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: P) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, params: P | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        if params is None:
            params = self.sample_params(x.shape, generator=generator)
        self.last_params = params
        return self.apply(x, params)


JitterParams = tuple[int, int]


class Jitter(_Augmentation[JitterParams]):
    """A random circular shift (``torch.roll``) of up to ``max_shift`` pixels along each
    axis, the same for the whole batch; PII uses 32 px.

    >>> Jitter(2)(torch.arange(4.).view(1, 1, 2, 2), params=(1, 0))
    tensor([[[[2., 3.],
              [0., 1.]]]])
    """

    def __init__(self, max_shift: int = 32) -> None:
        super().__init__()
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)

    def sample_params(self, shape: torch.Size, generator: torch.Generator | None = None) -> JitterParams:
        if self.max_shift == 0:
            return (0, 0)
        dy, dx = torch.randint(-self.max_shift, self.max_shift + 1, (2,), generator=generator).tolist()
        return (dy, dx)

    def apply(self, x: torch.Tensor, params: JitterParams) -> torch.Tensor:
        if params == (0, 0):
            return x
        return torch.roll(x, shifts=params, dims=(-2, -1))

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}"


ColorShiftParams = tuple[torch.Tensor, torch.Tensor]


class ColorShift(_Augmentation[ColorShiftParams]):
    """ColorShift (PII §3.2): ``x * sigma + mu`` with, per sample and channel,
    ``mu ~ U(-alpha, alpha)`` and ``sigma = exp(U(-beta, beta))``; PII uses
    ``alpha = beta = 1`` and redraws every step.

    The result is not clamped: the shifted images leave [0, 1] on purpose.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0) -> None:
        super().__init__()
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {alpha}, {beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)

    def sample_params(
        self, shape: torch.Size, generator: torch.Generator | None = None, device: torch.device | None = None
    ) -> ColorShiftParams:
        if device is None and generator is not None:
            device = generator.device
        size = (shape[0], shape[1], 1, 1)
        mu = (torch.rand(size, generator=generator, device=device) * 2 - 1) * self.alpha
        sigma = torch.exp((torch.rand(size, generator=generator, device=device) * 2 - 1) * self.beta)
        return mu, sigma

    def apply(self, x: torch.Tensor, params: ColorShiftParams) -> torch.Tensor:
        mu, sigma = params
        return torch.addcmul(mu.to(x.dtype), x, sigma.to(x.dtype))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"


class Flip(_Augmentation[bool]):
    """A horizontal flip of the whole batch with probability ``p`` (DeepInversion's
    augmentation; off in PII's paper settings)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)

    def sample_params(self, shape: torch.Size, generator: torch.Generator | None = None) -> bool:
        return bool(self.p > 0 and torch.rand((), generator=generator).item() < self.p)

    def apply(self, x: torch.Tensor, params: bool) -> torch.Tensor:
        return torch.flip(x, dims=(-1,)) if params else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Repeat(nn.Module):
    """The ensemble: each image repeated ``n`` times along the batch (copies of one image
    stay adjacent), so each copy can get its own ColorShift."""

    def __init__(self, n: int) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"ensemble size must be >= 1, got {n}")
        self.n = int(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.n == 1 else x.repeat_interleave(self.n, dim=0)

    def extra_repr(self) -> str:
        return f"n={self.n}"


AffineParams = tuple[torch.Tensor, torch.Tensor]


class RandomAffine(_Augmentation[AffineParams]):
    """A small random zoom and rotation about the centre, drawn per sample (per copy of
    the ensemble): zoom factor ``U(1 - scale, 1 + scale)``, angle ``U(-degrees, degrees)``.

    Not in PII; feature visualization uses such transforms (Olah et al., Distill 2017) so
    that the image cannot rely on exact pixel positions. Sampled bilinearly; pixels pulled
    from outside the image are mirrored in (no black corners). With both ranges 0 it
    returns its input.
    """

    def __init__(self, scale: float = 0.0, degrees: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= scale < 1.0 or degrees < 0:
            raise ValueError(f"scale must be in [0, 1) and degrees >= 0, got {scale}, {degrees}")
        self.scale = float(scale)
        self.degrees = float(degrees)

    @property
    def active(self) -> bool:
        return self.scale > 0 or self.degrees > 0

    def sample_params(
        self, shape: torch.Size, generator: torch.Generator | None = None, device: torch.device | None = None
    ) -> AffineParams:
        if device is None and generator is not None:
            device = generator.device
        zoom = 1 + (torch.rand(shape[0], generator=generator, device=device) * 2 - 1) * self.scale
        angle = (torch.rand(shape[0], generator=generator, device=device) * 2 - 1) * (self.degrees * torch.pi / 180)
        return zoom, angle

    def apply(self, x: torch.Tensor, params: AffineParams) -> torch.Tensor:
        if not self.active:
            return x
        zoom, angle = (p.to(x.device, torch.float32) for p in params)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        zero = torch.zeros_like(cos)
        # The sampling grid maps output to input coordinates: a zoom z reads from 1/z.
        theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], -2)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        out = torch.nn.functional.grid_sample(x.float(), grid.to(x.device), mode="bilinear",
                                              padding_mode="reflection", align_corners=False)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, degrees={self.degrees}"
