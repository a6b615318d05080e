"""Priors: TV and L2 against hand computations, the BatchNorm statistics prior (zero when
the batch matches the running statistics), hook removal, and the TV weight of ``invert``.

Margin of the TV-weight test, measured over seeds 0-3 x OMP_NUM_THREADS=1 and 2: the smoothed
image's TV was 0.172-0.178 of the plain run's (asserted: below 0.8), and the two images
differed by 0.54 at least somewhere (asserted: 1e-3).
"""

import math
import warnings

import pytest
import timm
import torch
from torch import nn

import piikit
from piikit import Inversion, invert
from piikit.errors import UnsupportedModelError
from piikit.engine.objectives import Batch
from piikit.engine.priors import (
    BatchNormPrior,
    L2Prior,
    TotalVariation,
    batchnorm_layers,
    has_batchnorm,
    l2_norm,
    tv_loss,
)


def _batch(images: torch.Tensor, ensemble: int = 1, inputs: torch.Tensor | None = None) -> Batch:
    inputs = images if inputs is None else inputs
    n = inputs.shape[0]
    return Batch(images, inputs, torch.zeros(n, 10), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long),
                 ensemble)


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ------------------------------------------------------------------ TV and L2
def test_tv_matches_hand_computation_on_a_2x2_image():
    # a=0 b=1 / c=2 d=4: right diffs (1, 2), down (2, 3), down-right d-a = 4, down-left c-b = 1.
    x = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).view(1, 1, 2, 2)
    assert tv_loss(x, p=2).item() == pytest.approx(math.sqrt(5) + math.sqrt(13) + 4 + 1)
    assert tv_loss(x, p=1).item() == pytest.approx(1.5 + 2.5 + 4 + 1)


def test_tv_matches_an_explicit_loop_over_pixels():
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    offsets = [((0, 0), (0, 1)), ((0, 0), (1, 0)), ((0, 0), (1, 1)), ((0, 1), (1, 0))]  # (from, to) per direction
    l2_per_image, l1 = [], 0.0
    for k in range(2):
        total = 0.0
        for (i0, j0), (i1, j1) in offsets:
            squares, count, absolute = 0.0, 0, 0.0
            for c in range(3):
                for i in range(4 - max(i0, i1)):
                    for j in range(5 - max(j0, j1)):
                        d = float(x[k, c, i + i1, j + j1] - x[k, c, i + i0, j + j0])
                        squares, absolute, count = squares + d * d, absolute + abs(d), count + 1
            total += math.sqrt(squares)
            l1 += absolute / (count * 2)  # mean over both images
        l2_per_image.append(total)
    assert tv_loss(x, p=2).item() == pytest.approx(sum(l2_per_image) / 2, rel=1e-5)
    assert tv_loss(x, p=1).item() == pytest.approx(l1, rel=1e-5)


def test_tv_is_zero_on_constant_images_and_rejects_bad_input():
    assert tv_loss(torch.full((2, 3, 6, 6), 0.3)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        tv_loss(torch.rand(3, 6, 6))
    with pytest.raises(ValueError):
        TotalVariation(1.0, p=3)  # type: ignore[arg-type]


def test_tv_term_in_normalized_space_divides_by_std():
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    plain = TotalVariation(1.0)(_batch(x))
    normalized = TotalVariation(1.0, std=[0.5, 0.5, 0.5])(_batch(x))
    assert normalized.item() == pytest.approx(2 * plain.item(), rel=1e-5)
    assert TotalVariation(1.0, p=1).name == "tv_l1" and TotalVariation(1.0).name == "tv"


def test_l2_matches_hand_computation():
    x = torch.tensor([[3.0, 4.0]]).view(1, 1, 1, 2)
    assert l2_norm(x).item() == pytest.approx(5.0)
    assert l2_norm(x, squared=True).item() == pytest.approx(25.0)
    two = torch.stack([x[0], torch.zeros_like(x[0])])  # norms 5 and 0: mean 2.5
    assert L2Prior(1.0)(_batch(two)).item() == pytest.approx(2.5)
    # Normalized: ((x - 1) / 2) -> (1, 1.5): norm sqrt(3.25).
    assert L2Prior(1.0, mean=[1.0], std=[2.0])(_batch(x)).item() == pytest.approx(math.sqrt(3.25))


# ------------------------------------------------------------------ BatchNorm prior
def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 5, 1), nn.BatchNorm2d(5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(5), nn.Linear(5, 10),
    ).eval()


def _match_running_stats(net: nn.Module, x: torch.Tensor) -> None:
    """Set each BN layer's running statistics to the batch statistics of its input for
    ``x``, layer by layer (a later layer's input depends on the earlier layers' stats)."""
    for bn in [m for m in net if isinstance(m, nn.modules.batchnorm._BatchNorm)]:
        seen = []
        handle = bn.register_forward_hook(lambda m, a, o: seen.append(a[0].detach()))
        with torch.no_grad():
            net(x)
        handle.remove()
        inp = seen[0]
        dims = [0, *range(2, inp.ndim)]
        bn.running_mean.copy_(inp.mean(dims))
        bn.running_var.copy_(inp.var(dims, unbiased=False))


def _bn_value(prior: BatchNormPrior, net: nn.Module, x: torch.Tensor) -> float:
    with prior.hooks(net):
        net(x)
        return prior(_batch(x)).item()


def test_bn_prior_is_zero_when_batch_statistics_equal_running_ones_and_positive_otherwise():
    net = _bn_net()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    prior = BatchNormPrior(1.0, first_layer_multiplier=10.0)
    assert _bn_value(prior, net, x) > 0.1  # fresh running stats (0, 1) do not match
    _match_running_stats(net, x)
    assert _bn_value(prior, net, x) == pytest.approx(0.0, abs=1e-4)
    assert _bn_value(prior, net, x * 2 + 1) > 0.1
    assert len(batchnorm_layers(net)) == 3  # BatchNorm2d ×2 and BatchNorm1d all hooked


def test_bn_prior_matches_the_formula_and_weights_the_first_layer():
    net = _bn_net()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    _match_running_stats(net, x)
    first = net[1]
    # Shifting the first layer's running mean changes what later layers see too, so compare
    # multipliers: the difference isolates the first layer's own term.
    first.running_mean.add_(torch.tensor([3.0, 0.0, 0.0, 4.0]))  # ‖Δμ‖ = 5 at the first layer
    one = _bn_value(BatchNormPrior(1.0, first_layer_multiplier=1.0), net, x)
    ten = _bn_value(BatchNormPrior(1.0, first_layer_multiplier=10.0), net, x)
    assert ten - one == pytest.approx(9 * 5.0, rel=1e-4)
    first.running_mean.sub_(torch.tensor([3.0, 0.0, 0.0, 4.0]))
    first.running_var.add_(torch.tensor([0.0, 2.0, 0.0, 0.0]))  # ‖Δσ²‖ = 2 at the first layer
    one = _bn_value(BatchNormPrior(1.0, first_layer_multiplier=1.0), net, x)
    three = _bn_value(BatchNormPrior(1.0, first_layer_multiplier=3.0), net, x)
    assert three - one == pytest.approx(2 * 2.0, rel=1e-4)
    # A net of one BN layer: the value is exactly the formula.
    only = nn.Sequential(nn.BatchNorm2d(3)).eval()
    _match_running_stats(only, x)
    only[0].running_mean.add_(torch.tensor([0.0, 3.0, 4.0]))
    only[0].running_var.add_(torch.tensor([1.0, 0.0, 0.0]))
    assert _bn_value(BatchNormPrior(1.0, first_layer_multiplier=2.0), only, x) == pytest.approx(2 * (5 + 1), rel=1e-4)


def test_bn_prior_finds_timm_batchnorm_act_and_sync_batchnorm():
    from timm.layers import BatchNormAct2d

    net = nn.Sequential(nn.Conv2d(3, 4, 1), BatchNormAct2d(4), nn.SyncBatchNorm(4), nn.GroupNorm(2, 4)).eval()
    names = [type(m).__name__ for _, m in batchnorm_layers(net)]
    assert names == ["BatchNormAct2d", "SyncBatchNorm"]
    prior = BatchNormPrior(1.0)
    with prior.hooks(net[:2]):  # SyncBatchNorm needs a process group to run, so hook only up to BatchNormAct2d
        net[:2](torch.rand(2, 3, 4, 4))
        assert prior(_batch(torch.rand(2, 3, 4, 4))).item() > 0
    assert not has_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4)))
    assert has_batchnorm(timm.create_model("test_resnet"))


def test_bn_hooks_are_removed_on_exit_and_after_an_exception():
    net = _bn_net()
    prior = BatchNormPrior(1.0)
    with prior.hooks(net):
        assert not _no_hooks(net)
    assert _no_hooks(net)
    with pytest.raises(KeyError):
        with prior.hooks(net):
            net(torch.rand(2, 3, 8, 8))
            raise KeyError("boom")
    assert _no_hooks(net)


def test_bn_prior_is_never_a_silent_zero(tiny_vit):
    prior = BatchNormPrior(1.0)
    with pytest.raises(RuntimeError, match="no BatchNorm layer"):
        prior(_batch(torch.rand(1, 3, 8, 8)))  # used without its hooks
    with pytest.raises(UnsupportedModelError, match="no BatchNorm"):
        with prior.hooks(piikit.load_model(tiny_vit)):
            pass
    assert _no_hooks(tiny_vit)


def test_bn_prior_a_stray_forward_does_not_leak_into_the_next_step():
    net = _bn_net()
    prior = BatchNormPrior(1.0)
    x = torch.randn(2, 3, 8, 8)
    with prior.hooks(net):
        net(x)
        one = prior(_batch(x)).item()
        net(x)
        net(x)  # three forwards without reading: only the last pass counts
        assert prior(_batch(x)).item() == pytest.approx(one)


def test_bn_prior_warns_that_micro_batches_make_it_approximate(tiny_cnn, device):
    prior = BatchNormPrior(0.01)
    with pytest.warns(UserWarning, match="approximate"):
        r = invert(tiny_cnn, 3, "preview", terms=[prior], ensemble=2, micro_batch=1, stages=1, steps_per_stage=2,
                   image_size=32, device=device, progress=False)
    assert r.history["bn"].shape == (2,) and (r.history["bn"] > 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole ensemble in one pass: exact, no warning
        invert(tiny_cnn, 3, "preview", terms=[BatchNormPrior(0.01)], ensemble=2, stages=1, steps_per_stage=2,
               image_size=32, device=device, progress=False)
    assert _no_hooks(tiny_cnn)


# ------------------------------------------------------------------ priors in invert (PII Fig. 4 ablation)
def test_tv_weight_in_invert_changes_the_result_and_smooths_it(tiny_cnn, device):
    common = dict(stages=1, steps_per_stage=12, ensemble=2, image_size=48, lr=0.05, seed=0, device=device,
                  progress=False)
    plain = invert(tiny_cnn, 3, "preview", **common)
    smooth = invert(tiny_cnn, 3, "preview", tv_weight=1.0, **common)
    assert "tv" not in plain.history and smooth.history["tv"].shape == (12,)
    assert (plain.images - smooth.images).abs().max() > 1e-3
    assert tv_loss(smooth.images) < 0.8 * tv_loss(plain.images)
    assert smooth.config.tv_weight == 1.0 and plain.config.tv_weight == 0.0


def test_l2_weight_in_invert_adds_the_l2_term(tiny_cnn, device):
    inv = Inversion(tiny_cnn, 3, "preview", l2_weight=0.5, device=device, progress=False)
    assert [(t.name, t.weight) for t in inv.terms] == [("l2", 0.5)]
    with pytest.raises(ValueError):
        piikit.make_config("preview", tv_weight=-1.0)
