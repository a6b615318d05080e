"""Objectives: composition, feature objectives on CNN maps and ViT tokens (features on the
last dim), raising the selected activation, layer lookup and hook removal.

Margins (seeds 0-3 of the noise init, OMP_NUM_THREADS=1 and 2, AVX-512 CPU): with the
augmentations off, 10 steps raised the channel activation to 43x-70x its start on the tiny
CNN and 96x-727x on the tiny ViT (the test asks for 1.1x). With jitter and ColorShift on, the
same 10 steps lowered the clean-image activation of the random ViT in 2 of 4 seeds, so that
is not asserted: the augmentations are tested with the class objective.
"""

import pytest
import torch
from torch import nn

import piikit
from piikit.models.layers import resolve_layer
from piikit import Inversion, invert
from piikit.engine.features import ChannelObjective, DirectionObjective, NeuronObjective, capture_activation
from piikit.engine.objectives import Batch, ClassObjective, CompositeObjective, Objective

STEPS = dict(stages=1, steps_per_stage=10, ensemble=2, schedule="none", lr=0.05)


class _Const(Objective):
    def __init__(self, values: list[float], name: str) -> None:
        self.values = torch.tensor(values)
        self.name = name

    def __call__(self, batch: Batch) -> torch.Tensor:
        return self.values


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _noise(model: piikit.Classifier, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, *model.input_size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ composition
def test_objectives_compose_with_plus_minus_and_scalars():
    a, b = _Const([1.0, 2.0], "a"), _Const([10.0, 20.0], "b")
    batch = None  # the stubs ignore it
    combo = a + 2 * b
    assert isinstance(combo, CompositeObjective)
    assert torch.allclose(combo(batch), torch.tensor([21.0, 42.0]))
    assert torch.allclose((a - b)(batch), torch.tensor([-9.0, -18.0]))
    assert torch.allclose((-a * 3)(batch), torch.tensor([-3.0, -6.0]))
    assert torch.allclose(sum([a, b, a])(batch), torch.tensor([12.0, 24.0]))
    assert len((a + b + a).parts) == 3  # flat, not nested
    assert combo.name == "a + 2*b" and (a - b).name == "a - b"
    with pytest.raises(TypeError):
        a * b  # noqa: B018 - only scalars multiply
    with pytest.raises(TypeError):
        a + 1.0  # noqa: B018


def test_needs_targets_propagates_and_class_inversion_without_targets_fails(tiny_cnn):
    channel = ChannelObjective("layer1", 0)
    assert ClassObjective().needs_targets and not channel.needs_targets
    assert (channel + 0.1 * ClassObjective()).needs_targets and not (channel * 2).needs_targets
    with pytest.raises(ValueError, match="target"):
        Inversion(tiny_cnn, None, "preview", objective=channel + ClassObjective(), progress=False)
    inv = Inversion(tiny_cnn, None, "preview", objective=channel, num_images=2, progress=False)
    assert inv.targets == [-1, -1]


# ------------------------------------------------------------------ reading activations
def test_channel_objective_reads_cnn_channels_on_dim_1(tiny_cnn):
    model = piikit.load_model(tiny_cnn)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    act = capture_activation(model, "layer2", x)
    assert act.ndim == 4
    c = act.shape[1] - 1
    assert torch.allclose(ChannelObjective("layer2", c).measure(model, x), act[:, c].mean(dim=(1, 2)), atol=1e-5)
    y, xx = act.shape[2] // 2, act.shape[3] // 2
    assert torch.allclose(NeuronObjective("layer2", c).measure(model, x), act[:, c, y, xx], atol=1e-5)
    assert torch.allclose(NeuronObjective("layer2", c, position=(0, 1)).measure(model, x), act[:, c, 0, 1], atol=1e-5)


def test_feature_objectives_read_vit_tokens_on_the_last_dim(tiny_vit):
    model = piikit.load_model(tiny_vit)
    x = torch.rand(2, 3, *model.input_size, generator=torch.Generator().manual_seed(0))
    act = capture_activation(model, "blocks.1", x)  # N × tokens × embedding
    n, tokens, dim = act.shape
    assert tokens != dim  # so mixing them up would be caught
    c = dim - 1  # a valid feature but no valid token index when dim > tokens, and vice versa
    expected = act[..., c].mean(dim=1)  # feature c averaged over tokens, not token c
    assert torch.allclose(ChannelObjective("blocks.1", c).measure(model, x), expected, atol=1e-5)
    assert torch.allclose(NeuronObjective("blocks.1", c, position=3).measure(model, x), act[:, 3, c], atol=1e-5)
    assert torch.allclose(NeuronObjective("blocks.1", c).measure(model, x), act[:, tokens // 2, c], atol=1e-5)
    d = torch.randn(dim, generator=torch.Generator().manual_seed(1))
    proj = act.mean(dim=1) @ (d / d.norm())
    assert torch.allclose(DirectionObjective("blocks.1", d).measure(model, x), proj, atol=1e-4)
    cos = torch.nn.functional.cosine_similarity(act.mean(dim=1), d[None], dim=1)
    assert torch.allclose(DirectionObjective("blocks.1", d, cosine=True).measure(model, x), cos, atol=1e-5)
    with pytest.raises(IndexError, match="channel"):
        ChannelObjective("blocks.1", dim).measure(model, x)
    with pytest.raises(ValueError, match="features"):
        DirectionObjective("blocks.1", torch.ones(dim + 1)).measure(model, x)


def test_layer_names_resolve_with_and_without_the_wrapper_prefix(tiny_cnn):
    model = piikit.load_model(tiny_cnn)
    assert resolve_layer(model, "layer2") is tiny_cnn.layer2
    assert resolve_layer(model, "model.layer2") is tiny_cnn.layer2
    with pytest.raises(LookupError, match="layer2"):
        resolve_layer(model, "layer22")
    with pytest.raises(ValueError):
        DirectionObjective("layer2", torch.zeros(4))


# ------------------------------------------------------------------ optimizing features
@pytest.mark.parametrize(("family", "layer", "channel"), [("cnn", "layer2", 5), ("vit", "blocks.1", 7)])
def test_channel_objective_raises_the_selected_activation(tiny_models, family, layer, channel, device):
    model = piikit.load_model(tiny_models[family])
    objective = ChannelObjective(layer, channel)
    init = _noise(model)
    size = 64 if family == "cnn" else model.input_size[0]
    init = torch.nn.functional.interpolate(init, size=(size, size), mode="bilinear")
    before = objective.measure(model, init)
    # Augmentations off: plain gradient ascent on the objective, so the clean image must gain.
    result = invert(model, None, "preview", objective=objective, init=init, image_size=size, device=device,
                    progress=False, **{**STEPS, "ensemble": 1, "jitter": 0, "color_shift": False})
    after = objective.measure(model, result.images)
    assert after.item() > before.item() + 0.1 * abs(before.item()) + 1e-3, (before, after)
    assert result.final_probs is None and result.history["loss"].shape == (10,)
    assert _no_hooks(tiny_models[family])


def test_a_composite_feature_objective_runs_and_removes_its_hooks(tiny_cnn, device):
    objective = ChannelObjective("layer1", 0) + 0.5 * NeuronObjective("layer3", 1) + 0.1 * ClassObjective()
    result = invert(tiny_cnn, 3, "preview", objective=objective, image_size=48, device=device, progress=False,
                    **{**STEPS, "steps_per_stage": 3})
    assert result.steps_done == 3 and torch.isfinite(result.history["loss"]).all()
    assert _no_hooks(tiny_cnn)


def test_feature_objective_hooks_are_removed_after_an_exception(tiny_cnn, device):
    def explode(state):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        invert(tiny_cnn, None, "preview", objective=ChannelObjective("layer2", 0), callbacks=[explode],
               image_size=32, device=device, progress=False, **STEPS)
    assert _no_hooks(tiny_cnn)


def test_feature_objective_outside_its_hooks_is_an_error_not_a_zero():
    objective = ChannelObjective("layer2", 0)
    batch = Batch(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.zeros(1, 10), torch.zeros(1).long(),
                  torch.zeros(1).long(), 1)
    with pytest.raises(RuntimeError, match="no output"):
        objective(batch)
