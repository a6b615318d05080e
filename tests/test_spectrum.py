"""Radial power spectra and diversity across seeds (piikit.analysis.spectrum)."""

from __future__ import annotations

import pytest
import torch

from piikit.analysis.spectrum import pairwise_distance, radial_spectrum


def test_white_noise_is_flat_and_smooth_images_fall_off():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(4, 3, 64, 64, generator=g)
    f, p = radial_spectrum(noise)
    assert f[0] == pytest.approx(1 / 64) and f[-1] == pytest.approx(0.5)
    assert float(p[-8:].mean() / p[:8].mean()) == pytest.approx(1.0, rel=0.3)
    smooth = torch.nn.functional.avg_pool2d(noise, 9, stride=1, padding=4)
    _, ps = radial_spectrum(smooth)
    assert float(ps[-8:].mean() / ps[:8].mean()) < 0.01


def test_single_image_and_bad_shapes():
    f, p = radial_spectrum(torch.rand(3, 16, 16))
    assert f.shape == p.shape == (8,)
    with pytest.raises(ValueError):
        radial_spectrum(torch.rand(16, 16))


def test_pairwise_distance():
    x = torch.rand(1, 3, 8, 8)
    assert pairwise_distance(x.repeat(3, 1, 1, 1)) == pytest.approx(0.0, abs=1e-6)
    assert pairwise_distance(torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pairwise_distance(x)
