"""BatchNorm folded into the convolution before it: the same function in fewer passes.

In eval mode a BatchNorm layer is a fixed per-channel affine map, ``y = a * x + b``. When
its input is the output of a convolution and nothing else reads that output, ``a`` and
``b`` can be multiplied into the convolution's weights and bias, and the BatchNorm's pass
disappears from both the forward and the backward pass of every inversion step. On
EfficientNet-Lite0 (49 BatchNorms) that makes a forward + input-gradient backward 1.2-1.7x
faster on a 2-core AVX-512 CPU, and a whole run of ``quick``'s stages 1.2x (``benchmarks/levers.py``);
the logits agree to rounding (about 1e-5).

Pairs are found by running the model once with hooks: a BatchNorm whose input *is* the
tensor a convolution returned (the same object) is a candidate. Because hooks cannot see
whether something else also read that tensor (a skip connection taken before the norm),
the folded copy is checked against the original on a random input and dropped if they
disagree. Models without BatchNorm (ViTs, MLP-Mixers, LayerNorm/GroupNorm CNNs) are
returned as they are.

Only inversions that read nothing but the logits, or the BatchNorm statistics, use the folded
copy: a feature objective hooked on a convolution would see the post-norm activation there.
DeepInversion's prior needs each BatchNorm's *input* statistics, and those follow from the
folded convolution's output ``y = a * x + b``: the input's mean is off the running mean by
``(mean(y) - beta) / a`` (``beta`` the norm's bias) and its variance is ``var(y) / a**2``. So
the copy records, per folded pair, the convolution, the norm's running variance, ``a`` and
``beta`` (:func:`folded_norms`), and :class:`piikit.engine.priors.BatchNormPrior` reads them.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any, NamedTuple

import torch
from torch import nn

from piikit.models.classifier import Classifier, frozen

__all__ = ["FoldedNorm", "fold_batchnorm", "folded", "folded_norms"]

# model -> (fingerprint of its tensors, the folded copy or None for "the model itself": a value
# that referred to its own key would keep it alive for ever).
_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], nn.Module | None]]" = weakref.WeakKeyDictionary()


class FoldedNorm(NamedTuple):
    """A BatchNorm folded into ``conv`` (a module of the folded copy), as the BatchNorm prior
    needs it: ``scale`` is ``a`` of the map ``y = a * x + b`` now inside the convolution,
    ``bias`` the norm's own bias (0 without one), ``running_var`` its running variance, and
    ``norm`` the norm itself where it stays in the copy as a neutralized identity map (a
    subclass this module does not know how to take apart), else None."""

    conv: nn.Module
    norm: nn.Module | None
    scale: torch.Tensor
    bias: torch.Tensor
    running_var: torch.Tensor


def folded_norms(model: nn.Module) -> list[FoldedNorm]:
    """The BatchNorms folded into ``model`` if it is a copy made by :func:`fold_batchnorm`,
    else an empty list."""
    return model.__dict__.get("_piikit_folded_norms", [])


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, BatchNorm name) for every BatchNorm that takes a convolution's output
    directly, each module used exactly once in the pass."""
    names = {m: n for n, m in model.named_modules()}
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # tensors kept alive so ids stay unique
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []

    def on_conv(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        outputs[id(output)] = (name, output)

    def on_norm(module: nn.Module, inputs: Any, _output: Any) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        source = outputs.get(id(inputs[0])) if inputs else None
        if source is not None:
            pairs.append((source[0], name))

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
            handles.append(module.register_forward_hook(on_norm))
    try:
        with torch.no_grad(), frozen(model):
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return [(c, b) for c, b in pairs if calls[c] == 1 and calls[b] == 1]


def _without_norm(norm: nn.BatchNorm2d) -> nn.Module:
    """What is left of ``norm`` once its affine map lives in the convolution."""
    if type(norm) is nn.BatchNorm2d:
        return nn.Identity()
    act, drop = getattr(norm, "act", None), getattr(norm, "drop", None)
    if type(norm).__name__ == "BatchNormAct2d" and isinstance(act, nn.Module) and isinstance(drop, nn.Module):
        return nn.Sequential(drop, act)  # timm's norm + dropout + activation in one module
    # Another subclass: keep it, as an exact identity map (slower, still correct).
    with torch.no_grad():
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)
        if norm.affine:
            norm.weight.fill_(1.0)
            norm.bias.zero_()
    return norm


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold ``norm`` into ``conv``; return its ``a``, its bias and its running variance."""
    with torch.no_grad():
        scale = torch.rsqrt(norm.running_var + norm.eps)
        shift = -norm.running_mean * scale
        norm_bias = torch.zeros_like(shift)
        if norm.affine:
            scale, shift, norm_bias = scale * norm.weight, shift * norm.weight + norm.bias, norm.bias.clone()
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.ndim - 1))).to(conv.weight.dtype))
        conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype), requires_grad=False)
        return scale.float(), norm_bias.float(), norm.running_var.float().clone()


def _invertible(norm: nn.Module) -> bool:
    """Whether ``norm``'s input can be read back from its output (no channel scaled by 0)."""
    return not getattr(norm, "affine", False) or bool((norm.weight != 0).all())


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def fold_batchnorm(model: nn.Module, example: torch.Tensor, atol: float = 1e-3) -> nn.Module:
    """A copy of ``model`` with each eval-mode BatchNorm folded into the convolution that
    feeds it, or ``model`` itself if there is nothing to fold or the folded copy's output
    on ``example`` differs from the original's by more than ``atol`` times its scale.

    ``example`` is one input of the right shape (its values do not matter); the original
    is not changed. For inference and input gradients only: the copy has no BatchNorm
    statistics to train, and the BatchNorm prior reads them from :func:`folded_norms`.
    """
    # A norm with a zero scale cannot be folded back out for the BatchNorm prior: keep it.
    pairs = [(c, n) for c, n in _conv_bn_pairs(model, example) if _invertible(model.get_submodule(n))]
    if not pairs:
        return model
    fused = copy.deepcopy(model)
    records = []
    for conv_name, norm_name in pairs:
        norm, conv = fused.get_submodule(norm_name), fused.get_submodule(conv_name)
        scale, bias, running_var = _fold(conv, norm)
        rest = _without_norm(norm)
        _replace(fused, norm_name, rest)
        records.append(FoldedNorm(conv, rest if rest is norm else None, scale, bias, running_var))
    fused.__dict__["_piikit_folded_norms"] = records
    with torch.no_grad(), frozen(model), frozen(fused):
        probe = torch.rand(example.shape, generator=torch.Generator().manual_seed(0)).to(example)
        want, got = model(probe).float(), fused(probe).float()
    if not torch.allclose(got, want, rtol=0.0, atol=atol * (1.0 + float(want.abs().max()))):
        return model
    return fused


def folded(model: Classifier) -> Classifier:
    """``model`` with its BatchNorms folded (:func:`fold_batchnorm`), made once and kept
    while the model's parameters and buffers stay as they are (moving the model or
    changing a weight in place makes a new one)."""
    tensors = [*model.parameters(), *model.buffers()]
    key = tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == key:
        return model if cached[1] is None else cached[1]  # type: ignore[return-value]
    size = model.input_size
    example = torch.zeros(1, model.in_chans, *size, device=tensors[0].device if tensors else None)
    result = fold_batchnorm(model, example)
    _CACHE[model] = (key, None if result is model else result)
    return result  # type: ignore[return-value]
