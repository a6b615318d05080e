"""MaCo (phase-only Fourier parameterization with a fixed natural magnitude) and its
transparency map, on tiny random models."""

import matplotlib.pyplot as plt
import pytest
import torch

import piikit
from piikit.engine.param import NATURAL_SPECTRUM, MacoParam, fit_power_law, make_param
from piikit.figures import with_alpha

TINY = dict(param="maco", stages=2, steps_per_stage=5, ensemble=2, image_size=64, lr=0.2, border="grey")


def _inner_amplitude(p: MacoParam, phase: torch.Tensor) -> torch.Tensor:
    """The decoded signal's amplitude over the half spectrum's inner columns (the first and
    Nyquist columns are made Hermitian by the inverse FFT, so they are not free)."""
    return torch.fft.rfft2(p.signal(phase), norm="ortho").abs()[..., 1:-1]


def test_decode_shape_range_and_unit_signal():
    p = make_param("maco")
    assert isinstance(p, MacoParam) and not p.clamp
    phase = torch.rand(2, 3, 64, 33, generator=torch.Generator().manual_seed(0)) * 6.3
    image = p.decode(phase)
    assert image.shape == (2, 3, 64, 64) and image.min() > 0 and image.max() < 1
    rms = p.signal(phase).pow(2).mean().sqrt()
    assert 0.8 < rms < 1.2, rms
    assert p.encode(image).shape == phase.shape


def test_the_magnitude_is_fixed_whatever_the_phase():
    p = MacoParam()
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(1, 3, 48, 25, generator=g) * 6.3 for _ in range(2))
    magnitude = p.magnitude(48, 3, torch.device("cpu"))[..., 1:-1]
    for phase in (a, b):
        assert torch.allclose(_inner_amplitude(p, phase), magnitude.expand(1, -1, -1, -1), rtol=1e-3, atol=1e-6)
    assert not torch.allclose(p.decode(a), p.decode(b), atol=0.05)
    # A power law: coarse frequencies far stronger than fine ones.
    assert magnitude[0, 1, 0] > 10 * magnitude[0, 24, 22]


def test_encoding_keeps_the_phase_of_the_pixels():
    p = MacoParam()
    phase = (torch.rand(1, 3, 32, 17, generator=torch.Generator().manual_seed(2)) - 0.5) * 6
    again = p.encode(p.decode(phase))
    # Inner bins only (see _inner_amplitude); phases compared on the circle.
    assert torch.cos(again - phase)[..., 1:-1].mean() > 0.9


def test_the_spectrum_constant_is_refitted_from_the_bundled_photos():
    data = pytest.importorskip("skimage.data")
    photos = [torch.from_numpy(getattr(data, n)()).permute(2, 0, 1).float() / 255
              for n in ("astronaut", "coffee", "chelsea", "rocket")]
    exponents, scales = fit_power_law(photos)
    assert all(1.0 < e < 2.0 for e in exponents)
    assert torch.allclose(torch.tensor(exponents), torch.tensor(NATURAL_SPECTRUM[0]), atol=2e-3)
    assert torch.allclose(torch.tensor(scales), torch.tensor(NATURAL_SPECTRUM[1]), rtol=1e-2)


def test_an_inversion_moves_only_the_phase_and_is_seeded(tiny_cnn, reproducible_device):
    a = piikit.Inversion(tiny_cnn, [1, 7], "preview", seed=3, device=reproducible_device, progress=False, **TINY)
    r = a.run()
    assert a.image.shape == (2, 3, 64, 33) and a.image.dtype == torch.float32  # phases, no magnitude
    p = a.param
    magnitude = p.magnitude(64, 3, a.image.device)[..., 1:-1]
    assert torch.allclose(_inner_amplitude(p, a.image.detach()), magnitude.expand(2, -1, -1, -1), rtol=1e-3, atol=1e-6)
    assert r.images.shape == (2, 3, 64, 64) and 0 <= r.images.min() and r.images.max() <= 1
    again = piikit.invert(tiny_cnn, [1, 7], "preview", seed=3, device=reproducible_device, progress=False, **TINY)
    other = piikit.invert(tiny_cnn, [1, 7], "preview", seed=4, device=reproducible_device, progress=False, **TINY)
    assert torch.allclose(r.images, again.images, atol=1e-5)
    assert not torch.allclose(r.images, other.images, atol=1e-2)


def test_the_transparency_map_is_offered_and_shown(tiny_cnn, device):
    r = piikit.invert(tiny_cnn, [1, 7], "preview", seed=0, device=device, progress=False, **TINY)
    assert r.alpha is not None and r.alpha.shape == (2, 1, 64, 64)
    assert r.alpha.min() >= 0 and torch.allclose(r.alpha.flatten(1).amax(1), torch.ones(2))
    assert r.alpha.std() > 0  # the gradient is not uniform over the image
    fig = r.show(alpha=True)
    drawn = fig.axes[0].images[0].get_array()
    assert drawn.shape[:2] == (64, 64)
    plt.close(fig)
    faded = with_alpha(r.images, r.alpha)
    assert faded.shape == r.images.shape and 0 <= faded.min() and faded.max() <= 1
    # Where the map is 0 the image is white; where it is at or above the clip, unchanged.
    zero = torch.zeros_like(r.alpha)
    assert torch.equal(with_alpha(r.images, zero), torch.ones_like(r.images))
    assert torch.allclose(with_alpha(r.images, torch.ones_like(r.alpha)), r.images)


def test_other_parameterizations_have_no_transparency_map(tiny_cnn):
    r = piikit.invert(tiny_cnn, 1, "preview", seed=0, progress=False, **{**TINY, "param": "fourier"})
    assert r.alpha is None
    with pytest.raises(ValueError, match="param='maco'"):
        r.show(alpha=True)
    plt.close(r.show())
