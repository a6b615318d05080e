"""Image parameterizations: what tensor the optimizer moves, and how it becomes pixels.

PII optimizes pixels directly (``"pixels"``, the paper). The alternative here follows the
feature-visualization practice of Olah et al. (*Feature Visualization*, Distill 2017):

``"fourier"``
    the image is the inverse real 2-D FFT of a learned spectrum whose entries are scaled
    by ``1 / f`` (low frequencies get large steps, fine detail small ones, roughly the
    power spectrum of photos), in a decorrelated colour space (the square root of
    ImageNet's colour covariance, so one coordinate is brightness and two are colour
    oppositions), squashed into (0, 1) by a sigmoid. Adam then moves every frequency and
    colour axis at a similar rate, which favours smooth, natural-looking images over the
    per-pixel high-frequency noise of plain pixels.

``"lowres"``
    pixels at ``lowres_factor`` times the image's side (8×8 for a 32-px image at 0.25),
    shown to the model bilinearly upsampled (:class:`LowResParam`). For models that only
    ever saw low-resolution content (the digits models of :mod:`piikit.models.digits` are
    trained on 8×8 scans upsampled to 32 px): optimized pixel by pixel, their inversions
    are free to put energy at frequencies the data never had (stripes, checkerboards),
    which the model tolerates and other models do not.

A parameterization maps pixels to its parameters (:meth:`~Parameterization.encode`) and
back (:meth:`~Parameterization.decode`); the step loop grows the *pixels* at each stage and
re-encodes them into the new, larger spectrum, so zoom + centering work unchanged.

Growing the image between stages, and what fills its new border, is the stage
schedule's job (:meth:`piikit.engine.schedule.StageSchedule.grow`); a parameterization
only encodes and decodes.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

__all__ = ["Parameterization", "PixelParam", "FourierParam", "LowResParam", "make_param", "ParamKind", "PARAM_KINDS"]

ParamKind = Literal["pixels", "fourier", "lowres"]
PARAM_KINDS: tuple[str, ...] = get_args(ParamKind)

# ImageNet's RGB covariance as its principal axes (Krizhevsky et al. 2012, the "lighting"
# augmentation): eigenvalues and unit eigenvectors (columns). Its square root maps
# uncorrelated unit-variance coordinates to ImageNet-like colour.
_EIGVAL = (0.2175, 0.0188, 0.0045)
_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


def _colour_sqrt(channels: int = 3) -> torch.Tensor:
    """Matrix from decorrelated to RGB coordinates, scaled so its widest axis is 1; the
    identity for images that are not RGB (grey, or other channel counts)."""
    if channels != 3:
        return torch.eye(channels)
    vec = torch.tensor(_EIGVEC, dtype=torch.float64)
    m = vec * torch.tensor(_EIGVAL, dtype=torch.float64).sqrt()
    return (m / m.norm(dim=0).max()).float()


class Parameterization:
    """Pixels ↔ optimized parameters. Subclasses define :meth:`encode` and :meth:`decode`.

    ``clamp`` says whether the loop must clamp the parameters to [0, 1] after each step
    (only meaningful when the parameters *are* pixels).
    """

    clamp: bool = False

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """The parameters whose :meth:`decode` gives ``pixels`` (K×3×h×w in [0, 1])."""
        raise NotImplementedError

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        """K×3×h×w pixels in [0, 1] from the parameters (differentiable)."""
        raise NotImplementedError


class PixelParam(Parameterization):
    """The paper's parameterization: the pixels themselves, clamped after every step."""

    clamp = True

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.detach().clone()

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        return params


class FourierParam(Parameterization):
    """A ``1/f``-scaled spectrum in decorrelated colour, decoded through a sigmoid.

    The parameters of a K×C×h×w image are a K×C×h×(w//2+1)×2 real tensor (real and
    imaginary parts of the half spectrum of ``torch.fft.rfft2``). ``decay`` is the
    exponent of the frequency scaling (1: ``1/f``; 0: white, i.e. a plain colour-space
    reparameterization of pixels).

    Per unit of learning rate it moves pixels less than the pixel parameterization does
    (the sigmoid's slope is 1/4 at mid-grey and Adam's step is spread over frequencies),
    so it wants a larger ``lr``: the ``clear`` preset uses 0.1 where ``fast`` uses 0.03.

    >>> p = FourierParam()
    >>> x = torch.rand(2, 3, 56, 56) * 0.9 + 0.05
    >>> torch.allclose(p.decode(p.encode(x)), x, atol=1e-4)
    True
    """

    def __init__(self, decay: float = 1.0, eps: float = 1e-3) -> None:
        self.decay = float(decay)
        self.eps = float(eps)  # pixels are kept this far inside (0, 1) so the logit stays finite
        # decode runs every step: the frequency scale and colour matrix are made once per
        # image size, channel count and device, not per step.
        self._cache: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}  # (size, channels, device)

    def _constants(self, size: int, channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The frequency scale of a square ``size`` image and the colour matrix."""
        key = (size, channels, device)
        if key not in self._cache:
            self._cache[key] = (self._make_scale(size, device), _colour_sqrt(channels).to(device))
        return self._cache[key]

    def _make_scale(self, size: int, device: torch.device) -> torch.Tensor:
        fy = torch.fft.fftfreq(size, device=device)[:, None]
        fx = torch.fft.rfftfreq(size, device=device)[None, :]
        f = (fy**2 + fx**2).sqrt().clamp_min(1.0 / size)
        # Normalised by its root mean square so white noise in the parameters gives pixels
        # of the same variance whatever the size: the learning rate means the same per stage.
        scale = f ** (-self.decay)
        return scale / scale.pow(2).mean().sqrt()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.detach().float().clamp(self.eps, 1 - self.eps)
        logits = torch.log(x) - torch.log1p(-x)
        h, w = x.shape[-2:]
        if h != w:
            raise ValueError(f"the Fourier parameterization needs square images, got {h}×{w}")
        scale, colour = self._constants(h, x.shape[1], x.device)
        decorrelated = torch.einsum("ij,kjhw->kihw", torch.linalg.inv(colour), logits)
        spectrum = torch.fft.rfft2(decorrelated, norm="ortho") / scale
        return torch.view_as_real(spectrum).contiguous()

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        # The half spectrum does not tell an odd width from an even one; images are square.
        h = w = params.shape[-3]
        scale, colour = self._constants(h, params.shape[1], params.device)
        spectrum = torch.view_as_complex(params) * scale
        decorrelated = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho")
        colour = colour.to(decorrelated.dtype)
        return torch.sigmoid(torch.einsum("ij,kjhw->kihw", colour, decorrelated))


class LowResParam(Parameterization):
    """Pixels at ``factor`` times the image's side (at least ``min_side``), upsampled bilinearly.

    The low-resolution pixels are clamped to [0, 1] after each step (a bilinear upsampling
    of values in [0, 1] stays in [0, 1]); each stage's grown image is re-encoded by area
    downsampling, so zoom + centering work unchanged.

    >>> p = LowResParam(0.25)
    >>> x = torch.rand(2, 1, 8, 8)
    >>> params = p.encode(F.interpolate(x, size=32, mode="bilinear", align_corners=False))
    >>> tuple(params.shape), tuple(p.decode(params).shape)
    ((2, 1, 8, 8), (2, 1, 32, 32))
    """

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


def make_param(kind: ParamKind, lowres_factor: float = 0.25) -> Parameterization:
    """The parameterization called ``kind`` (``"pixels"``, ``"fourier"`` or ``"lowres"``;
    ``lowres_factor`` is the side ratio of ``"lowres"``)."""
    if kind == "pixels":
        return PixelParam()
    if kind == "fourier":
        return FourierParam()
    if kind == "lowres":
        return LowResParam(lowres_factor)
    raise ValueError(f"unknown parameterization {kind!r}; choose one of {', '.join(PARAM_KINDS)}")
