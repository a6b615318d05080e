"""BatchNorm folding: the same logits from fewer passes, refused where it would change the model."""

from __future__ import annotations

import torch
from torch import nn

import piikit
from piikit.models import frozen
from piikit.engine.features import ChannelObjective
from piikit.engine.inversion import Inversion
from piikit.engine.objectives import Batch
from piikit.models.folding import fold_batchnorm, folded, folded_norms
from piikit.engine.priors import BatchNormPrior, TotalVariation, batchnorm_layers, feature_statistics


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_lite0_folds_every_batchnorm_and_keeps_its_logits(lite0):
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    fused = folded(lite0)
    assert fused is not lite0
    assert _norms(lite0) == 49 and _norms(fused) == 0
    x = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = lite0(x), fused(x)
    assert (got - want).abs().max() < 1e-3
    assert (got.argmax(1) == want.argmax(1)).all()
    assert all(torch.equal(v, lite0.state_dict()[k]) for k, v in before.items())  # the original is untouched


class _SkipBeforeNorm(nn.Module):
    """A residual that reads the convolution's output *before* the norm: not foldable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)
        self.head = nn.Linear(3, 4)
        with torch.no_grad():
            self.norm.running_mean.fill_(0.3)
            self.norm.running_var.fill_(4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.head((self.norm(y) + y).mean((2, 3)))


class _ConvNormAct(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)
            self.norm.weight.uniform_(0.5, 2)
            self.norm.bias.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).relu().mean((2, 3)))


def test_a_plain_conv_norm_pair_folds_exactly():
    model = _ConvNormAct().eval()
    example = torch.zeros(1, 3, 16, 16)
    fused = fold_batchnorm(model, example)
    assert isinstance(fused.norm, nn.Identity) and fused.conv.bias is not None and model.conv.bias is None
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(fused(x), model(x), atol=1e-5)


def test_a_model_compiled_before_can_be_copied_pickled_and_folded():
    import copy
    import pickle

    from piikit.engine.inversion import _compiled

    model = _ConvNormAct().eval()
    compiled = _compiled(model)  # as a compile_model=True run leaves it on the model
    fused = fold_batchnorm(model, torch.zeros(1, 3, 16, 16))
    assert fused is not model and _compiled(model) is compiled and _compiled(fused) is not compiled
    assert _compiled(copy.deepcopy(model)) is not compiled
    assert isinstance(pickle.loads(pickle.dumps(model)), _ConvNormAct)


def test_folding_is_refused_when_something_else_reads_the_pre_norm_output():
    model = _SkipBeforeNorm().eval()
    assert fold_batchnorm(model, torch.zeros(1, 3, 8, 8)) is model


def test_a_model_without_batchnorm_comes_back_as_it_is(tiny_vit):
    clf = piikit.load_model(tiny_vit)
    assert folded(clf) is clf


def test_the_folded_copy_is_remade_when_a_weight_changes():
    clf = piikit.Classifier(_ConvNormAct().eval(), mean=[0.5] * 3, std=[0.25] * 3, input_size=(16, 16),
                            fixed_input_size=False, num_classes=4)
    first = folded(clf)
    assert folded(clf) is first
    with torch.no_grad():
        clf.model.norm.running_mean.add_(1.0)
    second = folded(clf)
    assert second is not first
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(second(x), clf(x), atol=1e-5)


def test_inversion_steps_the_folded_copy_only_for_logit_objectives(lite0):
    common = dict(stages=1, steps_per_stage=1, ensemble=2, image_size=64, progress=False, fold_bn=True)
    assert Inversion(lite0, [1], "preview", **common)._net is folded(lite0)
    assert Inversion(lite0, [1], "preview", terms=[TotalVariation(0.1)], **common)._net is folded(lite0)
    # A feature objective hooks a layer whose output folding would change.
    feature = Inversion(lite0, None, "preview", objective=ChannelObjective("blocks.2", 0), **common)
    assert feature._net is lite0
    assert Inversion(lite0, [1], "preview", **{**common, "fold_bn": False})._net is lite0


def test_a_folded_run_starts_from_the_same_loss(lite0):
    """Same seed, same first step: the loss differs only by rounding (later steps drift apart,
    as any rounding difference does in a long optimization)."""
    runs = [piikit.invert(lite0, [1, 980], "preview", stages=1, steps_per_stage=1, image_size=96, fold_bn=fold,
                          progress=False, device="cpu") for fold in (False, True)]
    plain, fused = (r.history["loss"][0].item() for r in runs)
    assert abs(plain - fused) < 1e-3 * max(1.0, abs(plain))


def _bn_prior(model: nn.Module, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    """DeepInversion's BatchNorm prior on ``model`` at ``x`` (first layer x10), and its input gradient."""
    prior = BatchNormPrior(1.0, first_layer_multiplier=10.0)
    x = x.clone().requires_grad_(True)
    with prior.hooks(model):
        logits = model(x)
        value = prior(Batch(x, x, logits, torch.full((len(x),), -1), torch.arange(len(x)), 1))
    (grad,) = torch.autograd.grad(value, x)
    return value.item(), grad


def _bn_prior_by_definition(model: nn.Module, x: torch.Tensor) -> float:
    terms: list[torch.Tensor] = []

    def hook(norm: nn.Module, args: tuple[torch.Tensor, ...], _output: object) -> None:
        mean, var = feature_statistics(args[0])
        term = (mean - norm.running_mean).norm() + (var - norm.running_var).norm()
        terms.append(term * (10.0 if not terms else 1.0))

    handles = [norm.register_forward_hook(hook) for _, norm in batchnorm_layers(model)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return float(sum(terms))


def test_the_batchnorm_prior_reads_the_same_statistics_from_the_folded_copy(lite0):
    fused = folded(lite0)
    assert len(folded_norms(fused)) == 49 and folded_norms(lite0) == []
    x = torch.rand(3, 3, 160, 160, generator=torch.Generator().manual_seed(2))
    with frozen(lite0), frozen(fused):
        (want, want_grad), (got, got_grad) = _bn_prior(lite0, x), _bn_prior(fused, x)
        assert abs(want - _bn_prior_by_definition(lite0, x)) < 1e-4 * want
    assert abs(got - want) < 1e-4 * want
    cosine = torch.nn.functional.cosine_similarity(got_grad.flatten(), want_grad.flatten(), dim=0)
    assert cosine > 0.999 and 0.99 < float(got_grad.norm() / want_grad.norm()) < 1.01
    toy = _ConvNormAct().eval()
    small = torch.randn(4, 3, 16, 16)
    assert abs(_bn_prior(fold_batchnorm(toy, small[:1]), small)[0] - _bn_prior(toy, small)[0]) < 1e-4


def test_a_norm_with_a_zero_scale_is_not_folded():
    model = _ConvNormAct().eval()
    with torch.no_grad():
        model.norm.weight[0] = 0.0  # its input could not be read back from the folded output
    assert fold_batchnorm(model, torch.zeros(1, 3, 16, 16)) is model


def test_the_refine_phase_runs_on_the_folded_copy(lite0):
    run = Inversion(lite0, [1], "preview", stages=1, steps_per_stage=1, ensemble=2, image_size=64, progress=False,
                    fold_bn=True, refine_steps=2)
    run._enter_phase(len(run.phases) - 1)
    assert any(isinstance(t, BatchNormPrior) for t in run.terms) and run._net is folded(lite0)


def test_refine_on_its_own_runs_the_batchnorm_prior_on_the_folded_copy_unless_asked_not_to(lite0):
    from piikit.engine.deepinversion import make_deepinversion_config
    from piikit.engine.phases import deepinversion_phases

    nets = {}
    for fold_bn in (True, False):
        cfg = make_deepinversion_config("refine", {"steps": 1, "fold_bn": fold_bn})
        phases = deepinversion_phases(lite0, cfg, 64, from_image=True)
        run = Inversion(lite0, [1], phases[-1].config, phases=phases, progress=False)
        run._enter_phase(0)
        assert any(isinstance(t, BatchNormPrior) for t in run.terms)
        nets[fold_bn] = run._net
    assert nets[True] is folded(lite0) and nets[False] is lite0
    assert make_deepinversion_config("refine", {}).fold_bn and not make_deepinversion_config("paper", {}).fold_bn
