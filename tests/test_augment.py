import math

import pytest
import torch

from piikit.engine.augment import ColorShift, Flip, Jitter, Repeat


def test_jitter_is_a_roll_with_the_sampled_shift():
    x = torch.rand(2, 3, 16, 16)
    jit = Jitter(5)
    out = jit(x, generator=torch.Generator().manual_seed(3))
    dy, dx = jit.last_params
    assert -5 <= dy <= 5 and -5 <= dx <= 5
    assert torch.equal(out, torch.roll(x, shifts=(dy, dx), dims=(-2, -1)))
    # A roll keeps every pixel value: nothing is cropped or padded.
    assert torch.equal(out.flatten().sort().values, x.flatten().sort().values)


def test_jitter_covers_its_range_and_replays_from_a_seed():
    draws = [Jitter(2).sample_params(torch.Size((1, 3, 8, 8)), torch.Generator().manual_seed(s)) for s in range(200)]
    assert {d for d, _ in draws} == {-2, -1, 0, 1, 2}
    again = [Jitter(2).sample_params(torch.Size((1, 3, 8, 8)), torch.Generator().manual_seed(s)) for s in range(200)]
    assert draws == again


def test_jitter_zero_is_identity():
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(Jitter(0)(x), x)


def test_color_shift_formula_and_ranges():
    cs = ColorShift(alpha=0.3, beta=0.7)
    x = torch.rand(64, 3, 4, 4)
    out = cs(x, generator=torch.Generator().manual_seed(0))
    mu, sigma = cs.last_params
    assert mu.shape == sigma.shape == (64, 3, 1, 1)
    assert torch.allclose(out, x * sigma + mu)
    assert mu.abs().max() <= 0.3 and mu.abs().max() > 0.2  # spans most of U(-alpha, alpha)
    log_sigma = sigma.log()
    assert log_sigma.abs().max() <= 0.7 + 1e-6 and log_sigma.abs().max() > 0.5
    # Per-sample, per-channel draws: no two copies share their shift.
    assert mu.view(64, 3).unique(dim=0).shape[0] == 64


def test_color_shift_off_is_identity_and_params_replay():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(ColorShift(0.0, 0.0)(x), x)
    cs = ColorShift()
    first = cs(x, generator=torch.Generator().manual_seed(1))
    replay = cs(x, params=cs.last_params)
    assert torch.equal(first, replay)
    second = ColorShift()(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, second)


def test_color_shift_gradient_reaches_the_image():
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    ColorShift()(x, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_flip_and_repeat():
    x = torch.rand(2, 3, 4, 5)
    assert torch.equal(Flip(1.0)(x), x.flip(-1))
    assert torch.equal(Flip(0.0)(x), x)
    rep = Repeat(3)(x)
    assert rep.shape == (6, 3, 4, 5)
    assert torch.equal(rep[0], x[0]) and torch.equal(rep[2], x[0]) and torch.equal(rep[3], x[1])


@pytest.mark.parametrize("bad", [lambda: Jitter(-1), lambda: ColorShift(-1.0), lambda: Flip(1.5), lambda: Repeat(0)])
def test_bad_options_are_rejected(bad):
    with pytest.raises(ValueError):
        bad()


def test_expected_sigma_range_matches_paper():
    sigma = ColorShift(1.0, 1.0).sample_params(torch.Size((10000, 3)), torch.Generator().manual_seed(0))[1]
    assert sigma.min() >= math.exp(-1) - 1e-6 and sigma.max() <= math.exp(1) + 1e-6
