"""What an image is made of, in frequencies and across seeds.

:func:`radial_spectrum` is the power spectrum of images averaged over rings of equal spatial
frequency: photos fall off roughly as 1/f² in power (1/f in amplitude), pixel-space inversions
keep far too much power at high frequencies (their noise), and the ``clear`` preset's Fourier
image is built with 1/f amplitudes. :func:`pairwise_distance` measures how different
several inversions of one class are (diversity across seeds).

>>> import torch
>>> f, p = radial_spectrum(torch.rand(2, 3, 32, 32))
>>> f.shape == p.shape == (16,)
True
"""

from __future__ import annotations

import torch

from piikit.images import as_batch

__all__ = ["radial_spectrum", "pairwise_distance"]


def radial_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum of N×C×H×W images (or one C×H×W), averaged over
    images and channels after removing each channel's mean.

    Returns ``(frequency, power)``: frequencies in cycles per pixel from 1/side up to 0.5
    (``side // 2`` rings, the zero frequency left out) and the mean power on each ring.
    """
    x = as_batch(images).float()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    h, w = x.shape[-2:]
    power = torch.fft.fft2(x).abs().pow(2).mean(dim=(0, 1)) / (h * w)
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.fftfreq(w)[None, :]
    radius = (fy**2 + fx**2).sqrt()
    n = min(h, w) // 2
    edges = torch.arange(n + 1, dtype=torch.float32) / min(h, w) + 0.5 / min(h, w)
    ring = torch.bucketize(radius, edges)  # 0: below the first edge (the zero frequency)
    freq, out = [], []
    for k in range(1, n + 1):
        mask = ring == k
        freq.append(k / min(h, w))
        out.append(power[mask].mean() if mask.any() else torch.tensor(float("nan")))
    return torch.tensor(freq), torch.stack([torch.as_tensor(v) for v in out]).float()


def pairwise_distance(images: torch.Tensor) -> float:
    """Mean root-mean-square pixel difference over all pairs of N ≥ 2 images of the same
    size: 0 for identical images, about 0.41 for independent uniform noise."""
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"need N×C×H×W with N >= 2, got {tuple(images.shape)}")
    flat = images.float().flatten(1)
    d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    n = len(images)
    return float(d.sum() / (n * (n - 1)))
