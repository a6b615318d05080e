"""The BatchNorm prior borrowed from a proxy network (SMI's idea): its value is the proxy's
DeepInversion prior on the inverted model's inputs, its gradient reaches the image, the proxy
comes back untouched, and ``refine(vit, ..., prior_model=cnn)`` runs where the plain BatchNorm
prior is refused."""

import pytest
import torch
from torch import nn

import piikit
from piikit.models import frozen
from piikit.engine.objectives import Batch
from piikit.errors import UnsupportedModelError
from piikit.refinement.deepinversion import refine
from piikit.engine.priors import BatchNormPrior
from piikit.engine.proxy_prior import ProxyBatchNormPrior

TINY = dict(warmup_steps=0, steps=4, image_size=64)


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _batch(images: torch.Tensor) -> Batch:
    n = len(images)
    return Batch(images=images, inputs=images, logits=torch.zeros(n, 10), targets=torch.zeros(n, dtype=torch.long),
                 image_index=torch.arange(n), ensemble=1)


def test_a_proxy_without_batchnorm_is_refused_in_one_line(tiny_vit):
    with pytest.raises(UnsupportedModelError, match="no BatchNorm") as info:
        ProxyBatchNormPrior(piikit.load_model(tiny_vit))
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="Classifier"):
        ProxyBatchNormPrior(nn.Conv2d(3, 3, 1))  # type: ignore[arg-type]


def test_the_value_is_the_proxys_batchnorm_prior_and_its_gradient_reaches_the_image(tiny_cnn, tiny_vit):
    proxy = piikit.load_model(tiny_cnn)
    stats = {k: v.clone() for k, v in proxy.state_dict().items()}
    term = ProxyBatchNormPrior(proxy, weight=0.5, first_layer_multiplier=10.0)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    with term.hooks(piikit.load_model(tiny_vit)):
        value = term(_batch(images))
        (grad,) = torch.autograd.grad(value, images)
    # The same number as DeepInversion's prior hooked on the proxy itself.
    # (in eval mode, as the term runs it: the session's tiny CNN may be left in training mode)
    direct = BatchNormPrior(1.0, 10.0)
    with frozen(proxy), direct.hooks(proxy), torch.no_grad():
        proxy(images)
        expected = direct(_batch(images))
    value = value.detach()
    assert float(value) == pytest.approx(float(expected), rel=1e-5) and float(value) > 0
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # The proxy comes back as it was: no hooks, no parameter gradients, running statistics unchanged.
    assert _no_hooks(proxy)
    assert all(p.grad is None for p in proxy.parameters())
    assert all(torch.equal(stats[k], v) for k, v in proxy.state_dict().items())


def test_a_proxy_of_other_channels_is_a_clear_error(tiny_cnn, tiny_vit):
    term = ProxyBatchNormPrior(piikit.load_model(tiny_cnn))
    with term.hooks(tiny_vit), pytest.raises(ValueError, match="3-channel"):
        term(_batch(torch.rand(1, 1, 32, 32)))


def test_refine_a_vit_with_a_cnns_statistics(tiny_cnn, tiny_vit, device):
    init = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain = refine(tiny_vit, init, [3, 5], bn_prior="off", seed=0, device=device, progress=False, **TINY)
    borrowed = refine(tiny_vit, init, [3, 5], prior_model=tiny_cnn, bn_weight=1.0, seed=0, device=device,
                      progress=False, **TINY)
    assert borrowed.history["proxy_bn"].shape == (4,) and (borrowed.history["proxy_bn"] > 0).all()
    assert borrowed.extra["prior_model"] and not borrowed.extra["bn_prior_used"]
    assert "proxy_bn" not in plain.history
    assert not torch.allclose(plain.images, borrowed.images)  # the borrowed prior moved the image
    assert _no_hooks(tiny_cnn) and _no_hooks(tiny_vit)


def test_the_plain_batchnorm_prior_on_a_vit_still_refuses_and_names_the_option(tiny_vit, device):
    with pytest.raises(UnsupportedModelError, match="prior_model"):
        refine(tiny_vit, targets=[1], bn_prior="required", device=device, progress=False, **TINY)


def test_a_runs_refine_phase_borrows_the_statistics_too(tiny_cnn, tiny_vit, device):
    # PII's stages, then refine_steps with the CNN's BatchNorm prior: one run, the term only in the refine phase.
    result = piikit.invert(tiny_vit, [3, 5], "preview", refine_steps=3, refine_prior_model=tiny_cnn, seed=0,
                           device=device, progress=False, image_size=64)
    stages = result.config.stages * result.config.steps_per_stage
    proxy = result.history["proxy_bn"]
    assert proxy.shape == (stages + 3,)
    assert torch.isnan(proxy[:stages]).all() and (proxy[stages:] > 0).all()
    assert result.extra["prior_model"] and not result.extra["bn_prior_used"]
    assert _no_hooks(tiny_cnn) and _no_hooks(tiny_vit)
    with pytest.raises(ValueError, match="refine_steps"):
        piikit.invert(tiny_vit, [3], "preview", refine_prior_model=tiny_cnn, device=device, progress=False)
