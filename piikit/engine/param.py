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

``"maco"``
    MaCo (Fel et al., *Unlocking Feature Visualization for Deeper Networks with MAgnitude
    Constrained Optimization*, NeurIPS 2023): only the Fourier *phase* is optimized; the
    magnitude is fixed to that of natural images (:class:`MacoParam`), so every image has
    a photo's balance of coarse and fine structure and the optimizer can only move where
    things are. The loop also accumulates the absolute gradient of the loss with respect to
    the image, MaCo's transparency map (``result.alpha``).

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

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F

__all__ = ["Parameterization", "PixelParam", "FourierParam", "MacoParam", "LowResParam", "make_param",
           "fit_power_law", "NATURAL_SPECTRUM", "ParamKind", "PARAM_KINDS"]

ParamKind = Literal["pixels", "fourier", "maco", "lowres"]
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


def _radial_frequency(size: int, device: torch.device) -> torch.Tensor:
    """Distance from DC, in cycles per pixel, of each bin of a square image's half spectrum."""
    fy = torch.fft.fftfreq(size, device=device)[:, None]
    fx = torch.fft.rfftfreq(size, device=device)[None, :]
    return (fy**2 + fx**2).sqrt()


def _logit_spectrum(pixels: torch.Tensor, colour: torch.Tensor, eps: float, name: str) -> torch.Tensor:
    """The half spectrum of a square image's logits in decorrelated colour: what both
    Fourier parameterizations encode (pixels are kept ``eps`` inside (0, 1))."""
    x = pixels.detach().float().clamp(eps, 1 - eps)
    h, w = x.shape[-2:]
    if h != w:
        raise ValueError(f"the {name} parameterization needs square images, got {h}×{w}")
    logits = torch.log(x) - torch.log1p(-x)
    decorrelated = torch.einsum("ij,kjhw->kihw", torch.linalg.inv(colour), logits)
    return torch.fft.rfft2(decorrelated, norm="ortho")


def _to_pixels(colour: torch.Tensor, decorrelated: torch.Tensor) -> torch.Tensor:
    """Decorrelated colour back to RGB (or C) pixels in (0, 1)."""
    return torch.sigmoid(torch.einsum("ij,kjhw->kihw", colour.to(decorrelated.dtype), decorrelated))


class Parameterization:
    """Pixels ↔ optimized parameters. Subclasses define :meth:`encode` and :meth:`decode`.

    ``clamp`` says whether the loop must clamp the parameters to [0, 1] after each step
    (only meaningful when the parameters *are* pixels). ``watches_gradient``: whether the
    loop should hand :meth:`observe` the gradient that reaches the image the model sees
    (MaCo's transparency map is made of it).
    """

    clamp: bool = False
    watches_gradient: bool = False

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """The parameters whose :meth:`decode` gives ``pixels`` (K×3×h×w in [0, 1])."""
        raise NotImplementedError

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        """K×3×h×w pixels in [0, 1] from the parameters (differentiable)."""
        raise NotImplementedError

    def start_stage(self, k: int, size: int, device: torch.device,
                    grow: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """A new stage begins with K images of ``size`` px; ``grow`` carries a K×1×s×s map
        of the last stage into it the way the image grows. Nothing to do for most."""

    def observe(self, gradient: torch.Tensor) -> None:
        """After a step's backward pass (``watches_gradient`` only): the K×C×s×s gradient of
        the loss with respect to the image the model sees."""

    def transparency(self) -> torch.Tensor | None:
        """K×1×S×S in [0, 1]: where the model looked (MaCo), or None."""
        return None


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
        f = _radial_frequency(size, device).clamp_min(1.0 / size)
        # Normalised by its root mean square so white noise in the parameters gives pixels
        # of the same variance whatever the size: the learning rate means the same per stage.
        scale = f ** (-self.decay)
        return scale / scale.pow(2).mean().sqrt()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        scale, colour = self._constants(pixels.shape[-1], pixels.shape[1], pixels.device)
        spectrum = _logit_spectrum(pixels, colour, self.eps, "Fourier") / scale
        return torch.view_as_real(spectrum).contiguous()

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        # The half spectrum does not tell an odd width from an even one; images are square.
        h = w = params.shape[-3]
        scale, colour = self._constants(h, params.shape[1], params.device)
        spectrum = torch.view_as_complex(params) * scale
        return _to_pixels(colour, torch.fft.irfft2(spectrum, s=(h, w), norm="ortho"))


#: The amplitude spectrum of natural photos in decorrelated colour, as a power law per
#: colour axis: ``amplitude_c(f) = scale_c * f ** -exponent_c`` (``f`` in cycles per pixel).
#: Fitted by :func:`fit_power_law` to scikit-image's four bundled photographs (astronaut,
#: coffee, chelsea, rocket); ``tests/test_param.py`` refits it.
NATURAL_SPECTRUM: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (1.342, 1.476, 1.303),  # exponents: brightness, then the two colour oppositions
    (0.00455, 0.00322, 0.00354),  # scales
)


def fit_power_law(photos: torch.Tensor, bins: int = 15) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(exponents, scales)`` of a power law fitted per decorrelated colour axis to the
    amplitude spectrum of ``photos`` (N×C×H×W in [0, 1], any sizes once centre-cropped square).

    Each photo is centre-cropped square, mean-subtracted, decorrelated, Hann-windowed (so its
    borders do not add the cross of a periodic edge) and its amplitude averaged in ``bins``
    log-spaced rings from 2 cycles per image to Nyquist; one line is fitted per colour axis
    in log-log through all photos' rings. Fit your own domain's photos for :class:`MacoParam`.
    """
    channels = photos[0].shape[0]
    inverse = torch.linalg.inv(_colour_sqrt(channels)).double()
    log_f, log_a = [], []
    for photo in photos:
        side = min(photo.shape[-2:])
        top, left = (photo.shape[-2] - side) // 2, (photo.shape[-1] - side) // 2
        x = photo[:, top : top + side, left : left + side].double()
        x = torch.einsum("ij,jhw->ihw", inverse, x - x.mean((1, 2), keepdim=True))
        window = torch.hann_window(side, periodic=False, dtype=torch.float64)
        amplitude = torch.fft.rfft2(x * window[:, None] * window[None, :], norm="ortho").abs()
        f = _radial_frequency(side, torch.device("cpu")).double()
        edges = torch.logspace(torch.tensor(2.0 / side).log10().item(), torch.tensor(0.5).log10().item(), bins + 1,
                               dtype=torch.float64)
        for low, high in zip(edges[:-1], edges[1:]):
            ring = (f >= low) & (f < high)
            if ring.any():
                log_f.append((low * high).sqrt().log())
                log_a.append(amplitude[:, ring].mean(1).log())
    design = torch.stack([torch.ones(len(log_f), dtype=torch.float64), torch.stack(log_f)], 1)
    coef = torch.linalg.lstsq(design, torch.stack(log_a)).solution
    return tuple((-coef[1]).tolist()), tuple(coef[0].exp().tolist())


class MacoParam(Parameterization):
    """MaCo: a learned Fourier phase over a fixed natural-image magnitude, in decorrelated
    colour, decoded through a sigmoid.

    The parameters of a K×C×h×w image are its K×C×h×(w//2+1) phases (radians); the
    magnitude of every frequency is ``NATURAL_SPECTRUM``'s power law (``spectrum``),
    normalised so the decoded signal has unit root mean square. Phase carries where edges
    and objects are; a fixed magnitude keeps the amount of fine detail that of a photo
    whatever the optimizer does, so it cannot pile up the high-frequency energy that other
    models read as noise.

    Why a fitted power law rather than Horama's mean ImageNet spectrum (which it downloads)
    or the mean spectrum of scikit-image's photos: piikit has no ImageNet offline, and four
    photos' mean spectrum keeps their own peaks (a rocket's gantry, an astronaut's stripes),
    which a fixed magnitude would print into every image as a faint texture; a power law is
    smooth, has the same slope at every stage's size, needs no file or optional package at
    run time, and is refitted from the photos by a test (:func:`fit_power_law`).

    Measured against the ``1/f`` Fourier image (``clear``'s) at the same work, 7 x 32 steps, 8
    classes x 2 seeds (``docs/benchmarks.md``, "MaCo"): the same cross-model top-1 (Lite1 /
    Lite2 0.88 / 0.69), lower target probability (0.35 against 0.48) and the smoothest images
    of the benchmark (TV 0.027 against 0.041); an option, not a preset.

    Encoding pixels keeps only their phase (a stage's grown image comes back with the
    natural magnitude, which is what MaCo can represent); the DC term's phase (0 or π)
    gives each colour axis a brighter or darker mean.

    MaCo's transparency map is kept here too: the absolute gradient of the loss with respect
    to the image the model sees, summed over channels and steps (K×1×s×s), carried into each
    new stage the way the image grows (its new border starts at 0: no gradient has reached
    it yet), and scaled to [0, 1] by its maximum per image (:meth:`transparency`).

    >>> p = MacoParam()
    >>> phase = p.encode(torch.rand(2, 3, 56, 56))
    >>> tuple(phase.shape), tuple(p.decode(phase).shape)
    ((2, 3, 56, 29), (2, 3, 56, 56))
    """

    watches_gradient = True

    def __init__(self, spectrum: tuple[tuple[float, ...], tuple[float, ...]] = NATURAL_SPECTRUM,
                 eps: float = 1e-3) -> None:
        self.exponents, self.scales = (tuple(float(v) for v in part) for part in spectrum)
        self.eps = float(eps)  # pixels are kept this far inside (0, 1) so the logit stays finite
        self._cache: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}  # (size, channels, device)
        self.alpha: torch.Tensor | None = None  # the summed absolute gradient, K×1×s×s

    def start_stage(self, k: int, size: int, device: torch.device,
                    grow: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if self.alpha is None:
            self.alpha = torch.zeros(k, 1, size, size, device=device)
        elif self.alpha.shape[-1] != size:
            self.alpha = grow(self.alpha)

    def observe(self, gradient: torch.Tensor) -> None:
        assert self.alpha is not None, "start_stage comes first"
        self.alpha += gradient.abs().sum(1, keepdim=True)

    def transparency(self) -> torch.Tensor | None:
        if self.alpha is None:
            return None
        peak = self.alpha.amax((1, 2, 3), keepdim=True).clamp_min(torch.finfo(self.alpha.dtype).tiny)
        return (self.alpha / peak).cpu()

    def magnitude(self, size: int, channels: int, device: torch.device) -> torch.Tensor:
        """The fixed C×size×(size//2+1) magnitude of a square ``size`` image."""
        return self._constants(size, channels, device)[0]

    def _constants(self, size: int, channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (size, channels, device)
        if key not in self._cache:
            f = _radial_frequency(size, device).clamp_min(1.0 / size)
            # Other channel counts (grey, …) reuse the brightness axis's law.
            laws = [(self.scales[c], self.exponents[c]) if channels == len(self.scales) else (self.scales[0], self.exponents[0])
                    for c in range(channels)]
            magnitude = torch.stack([scale * f ** (-exponent) for scale, exponent in laws])
            # Unit RMS over the full spectrum (the half spectrum's inner columns count twice),
            # so with norm="ortho" the decoded signal has unit RMS at every stage's size.
            weight = torch.full_like(f, 2.0)
            weight[:, 0] = 1.0
            if size % 2 == 0:
                weight[:, -1] = 1.0
            magnitude = magnitude / ((magnitude**2 * weight).sum() / (weight.sum() * channels)).sqrt()
            self._cache[key] = (magnitude, _colour_sqrt(channels).to(device))
        return self._cache[key]

    def signal(self, params: torch.Tensor) -> torch.Tensor:
        """The decorrelated image before the colour matrix and the sigmoid (differentiable)."""
        h = w = params.shape[-2]
        magnitude, _ = self._constants(h, params.shape[1], params.device)
        spectrum = torch.polar(magnitude.expand_as(params), params)
        return torch.fft.irfft2(spectrum, s=(h, w), norm="ortho")

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        _, colour = self._constants(pixels.shape[-1], pixels.shape[1], pixels.device)
        return _logit_spectrum(pixels, colour, self.eps, "MaCo").angle().contiguous()

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        _, colour = self._constants(params.shape[-2], params.shape[1], params.device)
        return _to_pixels(colour, self.signal(params))


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
    """The parameterization called ``kind`` (``"pixels"``, ``"fourier"``, ``"maco"`` or
    ``"lowres"``; ``lowres_factor`` is the side ratio of ``"lowres"``)."""
    if kind == "pixels":
        return PixelParam()
    if kind == "fourier":
        return FourierParam()
    if kind == "maco":
        return MacoParam()
    if kind == "lowres":
        return LowResParam(lowres_factor)
    raise ValueError(f"unknown parameterization {kind!r}; choose one of {', '.join(PARAM_KINDS)}")
