"""RandomAffine: the per-copy random zoom and rotation (not in PII; a quality option)."""

import math

import pytest
import torch

from piikit.engine.augment import RandomAffine


def test_off_is_identity():
    x = torch.rand(3, 3, 16, 16)
    assert RandomAffine(0.0, 0.0)(x, generator=torch.Generator().manual_seed(0)) is x


def test_params_are_per_sample_in_range_and_replay():
    aff = RandomAffine(scale=0.1, degrees=10)
    zoom, angle = aff.sample_params(torch.Size((256, 3, 8, 8)), torch.Generator().manual_seed(0))
    assert zoom.shape == angle.shape == (256,)
    assert zoom.min() >= 0.9 and zoom.max() <= 1.1 and zoom.max() - zoom.min() > 0.15
    assert angle.abs().max() <= math.radians(10) + 1e-6 and angle.abs().max() > math.radians(8)
    x = torch.rand(4, 3, 16, 16)
    first = aff(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(aff(x, generator=torch.Generator().manual_seed(1)), first)
    assert torch.equal(aff(x, params=aff.last_params), first)


def test_unit_zoom_and_zero_angle_give_back_the_image():
    x = torch.rand(2, 3, 16, 16)
    out = RandomAffine(0.1, 10)(x, params=(torch.ones(2), torch.zeros(2)))
    assert torch.allclose(out, x, atol=1e-5)


def test_zoom_magnifies_about_the_centre_and_rotation_turns():
    x = torch.zeros(2, 3, 32, 32)
    x[..., 12:20, 12:20] = 1.0  # an 8 px square in the centre
    aff = RandomAffine(0.5, 90)
    out = aff(x, params=(torch.tensor([2.0, 1.0]), torch.tensor([0.0, math.pi / 2])))
    assert (out[0, 0] > 0.5).sum() == pytest.approx(4 * 64, rel=0.15)
    assert out[0, 0, 16, 16] > 0.99 and out[0, 0, 4, 4] < 0.01  # still centred
    # A quarter turn of an asymmetric image is a 90-degree rotation of its pixels.
    y = torch.rand(1, 3, 16, 16)
    turned = aff(y, params=(torch.ones(1), torch.tensor([math.pi / 2])))
    assert any(torch.allclose(turned, torch.rot90(y, k, dims=(-2, -1)), atol=1e-4) for k in (1, -1))


def test_gradients_flow_through_it():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    RandomAffine(0.1, 10)(x, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_ranges_are_rejected():
    with pytest.raises(ValueError, match="scale"):
        RandomAffine(scale=1.0)
    with pytest.raises(ValueError, match="degrees"):
        RandomAffine(degrees=-1)
