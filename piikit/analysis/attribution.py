"""Captum attributions for inverted images (or any images); their plots are in
:mod:`piikit.interfaces.attribution_plots`.

One call, Captum's way underneath: :func:`attribute` builds a Captum algorithm on the
classifier's forward function and calls ``.attribute(inputs, target=...)``. The forward
function is a :class:`piikit.Classifier`, which takes images in [0, 1] and normalizes
inside, so attributions are with respect to the pixels you see.

Methods (each returns a tensor of the inputs' shape, N×C×H×W):

- ``"saliency"``: Captum's ``Saliency`` (absolute gradient); any model.
- ``"integrated_gradients"``: ``IntegratedGradients``; any model.
- ``"input_x_gradient"``: ``InputXGradient``; any model.
- ``"occlusion"``: ``Occlusion`` (a sliding window of the mean colour); any model.
- ``"gradcam"``: ``LayerGradCam`` on a named layer, bilinearly upsampled to the input size
  and repeated over the channels; CNN feature maps, and ViT/MLP-Mixer tokens (below).

Grad-CAM on Vision Transformers and MLP-Mixers: a token layer's output is N×T×D, which
Captum's ``LayerGradCam`` would read as "T channels of D positions". piikit instead drops
the class/register (prefix) tokens, lays the remaining tokens out on the model's patch grid
(timm's ``patch_embed.grid_size`` / ``stem.grid_size``; an N×H×W×D patch embedding is read
the same way) and computes Grad-CAM with D as the channels, from Captum's
``LayerActivation`` and ``LayerGradientXActivation``. Any other layer output (e.g. the
pooled features or the logits) raises :class:`UnsupportedModelError` naming the methods that
do apply. For a class-token ViT the default layer is the last block's ``norm1``: the last
block's *output* patch tokens never reach the class token, so their gradient is zero (and
piikit warns when a Grad-CAM map is zero everywhere).

Baselines: Captum's default baseline is 0 *in the model's input space*; for Captum users
that is usually a normalized image, i.e. the mean colour. piikit's forward function takes
[0, 1] pixels, so :func:`attribute` uses the model's normalization mean as the default
baseline for integrated gradients and occlusion (pass ``baselines=`` to change it).

>>> model = piikit.load_model("efficientnet_lite0")  # doctest: +SKIP
>>> result = piikit.invert(model, ["goldfinch", "volcano"], "fast")  # doctest: +SKIP
>>> attr = attribute(model, result, method="gradcam", layer="blocks.6")  # doctest: +SKIP
>>> plot_attributions(result.images, attr, result.labels)  # doctest: +SKIP
>>> seen = attribute_models({"lite0": model, "lite2": "efficientnet_lite2"}, result)  # doctest: +SKIP
>>> plot_model_attributions(result.images, seen, result.labels)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import difflib
import numbers
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import nn

from piikit.errors import UnsupportedModelError, renamed_attribute
from piikit.labels import resolve_class
from piikit.models import Classifier, frozen, load_model
from piikit.device import module_device
from piikit.models.layers import find_layer, forward_hooks, list_layers

if TYPE_CHECKING:
    from piikit.engine.result import InversionResult

__all__ = [
    "METHODS",
    "attribute",
    "attribute_models",
    "list_layers",
    "default_layer",
]

# Other spellings of the method names (METHODS, the table's keys, is below the methods).
_ALIASES = {
    "ig": "integrated_gradients",
    "integratedgradients": "integrated_gradients",
    "inputxgradient": "input_x_gradient",
    "input_times_gradient": "input_x_gradient",
    "ixg": "input_x_gradient",
    "grad_cam": "gradcam",
    "layergradcam": "gradcam",
    "layer_grad_cam": "gradcam",
}
_ANY_MODEL = "saliency, integrated_gradients, input_x_gradient and occlusion work on any model"

Target = Union[int, str, Sequence[Union[int, str]], torch.Tensor, None]
ModelLike = Union[Classifier, nn.Module, str]


# --------------------------------------------------------------------------- helpers
def _method_name(method: str) -> str:
    key = method.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("_", ""), key))
    if key not in METHODS:
        close = difflib.get_close_matches(key, list(METHODS) + list(_ALIASES), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(_ALIASES.get(c, c) for c in dict.fromkeys(close))}?" if close else ""
        raise ValueError(f"unknown attribution method {method!r}{hint} (choose one of {', '.join(METHODS)})")
    return key


def _token_grid(net: nn.Module) -> tuple[int, tuple[int, int]] | None:
    """(number of prefix tokens, patch grid) for timm ViTs and MLP-Mixers, else None."""
    for attr in ("patch_embed", "stem"):
        grid = getattr(getattr(net, attr, None), "grid_size", None)
        if grid is not None:
            return int(getattr(net, "num_prefix_tokens", 0) or 0), (int(grid[0]), int(grid[1]))
    return None


@contextlib.contextmanager
def _captured_shapes(modules: Mapping[str, nn.Module]) -> Iterator[list[tuple[str, tuple[int, ...]]]]:
    """Record (name, output shape) of each module as it finishes; hooks always removed."""
    seen: list[tuple[str, tuple[int, ...]]] = []

    def recorder(name: str) -> Any:
        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                seen.append((name, tuple(out.shape)))
        return hook

    with forward_hooks([(module, recorder(name)) for name, module in modules.items()]):
        yield seen


def _layer_kind(shape: tuple[int, ...], grid: tuple[int, tuple[int, int]] | None) -> tuple[str, int] | None:
    """How Grad-CAM reads a layer's output shape, with the number of leading tokens to skip:
    ("spatial", 0) for N×C×H×W; ("tokens", k) for N×T×D on the patch grid, with or without
    the model's k prefix (class/register) tokens, and for N×H×W×D (timm's NHWC patch
    embedding) on the patch grid; None otherwise."""
    if grid is not None:
        prefix, (gh, gw) = grid
        if len(shape) == 3:
            for skip in dict.fromkeys((prefix, 0)):
                if shape[1] == skip + gh * gw:
                    return "tokens", skip
        if len(shape) == 4 and tuple(shape[1:3]) == (gh, gw) and tuple(shape[2:]) != (gh, gw):
            return "tokens", 0
    if len(shape) == 4 and shape[-1] * shape[-2] > 1:
        return "spatial", 0
    return None


def _probe(clf: Classifier, modules: Mapping[str, nn.Module], device: torch.device,
           image: torch.Tensor | None = None) -> list[tuple[str, tuple[int, ...]]]:
    x = image if image is not None else torch.zeros(1, clf.in_chans, *clf.input_size, device=device)
    with torch.no_grad(), _captured_shapes(modules) as seen:
        clf(x)
    return seen


def default_layer(model: ModelLike) -> str:
    """The layer Grad-CAM uses when none is named.

    CNNs: the last module to finish with a spatial (N×C×H×W, H·W > 1) output, e.g.
    ``"bn2"`` (after ``conv_head``) for EfficientNet-Lite. Class-token ViTs: the last
    block's ``norm1``. Other token models (average-pooled ViTs, MLP-Mixers): the last
    module with an output on the patch grid.

    >>> default_layer("efficientnet_lite0")  # doctest: +SKIP
    'bn2'
    """
    with _classifier(model) as clf:
        device = module_device(clf)
        return _default_layer(clf, torch.zeros(1, clf.in_chans, *clf.input_size, device=device))


def _default_layer(clf: Classifier, x: torch.Tensor) -> str:
    net = clf.model
    grid = _token_grid(net)
    blocks = getattr(net, "blocks", None)
    if grid is not None and grid[0] > 0 and getattr(net, "global_pool", None) == "token" and blocks is not None:
        name = f"blocks.{len(blocks) - 1}.norm1"
        if name in dict(net.named_modules()):
            return name
    modules = {n: m for n, m in net.named_modules() if n}
    candidates = [n for n, shape in _probe(clf, modules, x.device, x[:1]) if _layer_kind(shape, grid)]
    if not candidates:
        raise UnsupportedModelError(
            f"{clf.name} has no layer with a spatial (N×C×H×W) or patch-token output, so Grad-CAM does not "
            f"apply; {_ANY_MODEL}"
        )
    return candidates[-1]


def _targets(target: Target, n: int, clf: Classifier, x: torch.Tensor) -> int | list[int] | torch.Tensor:
    """Captum's ``target=`` from piikit's: names become indices, None the predicted class."""
    if target is None:
        with torch.no_grad():
            return clf(x).argmax(-1).tolist()
    if isinstance(target, torch.Tensor):
        t = target.to(x.device).long()
        if t.ndim > 1 or (t.ndim == 1 and len(t) not in (1, n)):
            raise ValueError(f"target tensor of shape {tuple(target.shape)} for {n} image(s); give one index per image")
        return t
    if isinstance(target, (numbers.Integral, str)):
        return resolve_class(_plain(target), clf.class_names)
    resolved = [resolve_class(_plain(t), clf.class_names) for t in target]
    if len(resolved) != n:
        raise ValueError(f"{len(resolved)} targets for {n} image(s); give one per image, or a single one for all")
    return resolved


def _plain(t: Any) -> Any:
    """numpy/torch integers as Python ints (names stay names)."""
    return int(t) if isinstance(t, numbers.Integral) and not isinstance(t, bool) else t


@contextlib.contextmanager
def _classifier(model: ModelLike) -> Iterator[Classifier]:
    """The model as a :class:`Classifier`, frozen while the block runs; a user's module
    comes back exactly as it was."""
    clf = load_model(model)
    with frozen(clf):
        yield clf


def _unpack(images: "torch.Tensor | InversionResult", target: Target) -> tuple[torch.Tensor, Target]:
    if isinstance(images, torch.Tensor):
        return images, target
    if hasattr(images, "images") and hasattr(images, "targets"):  # an InversionResult
        return images.images, (list(images.targets) if target is None else target)
    raise TypeError(f"images must be an N×C×H×W tensor or an InversionResult, not {type(images).__name__}")


# --------------------------------------------------------------------------- attribution
def attribute(
    model: ModelLike,
    images: "torch.Tensor | InversionResult",
    target: Target = None,
    method: str = "saliency",
    layer: str | nn.Module | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Attribute the model's score for ``target`` to the pixels of ``images`` with Captum.

    Args:
        model: a :class:`piikit.Classifier`, any ``nn.Module`` returning logits (wrapped by
            :func:`piikit.load_model`, which reads its normalization), or a model name.
        images: N×C×H×W in [0, 1] (C×H×W for one image; C = the model's channels), or an :class:`InversionResult`
            (its images, and its targets when ``target`` is None).
        target: Captum's semantics plus class names: an int or name (all images), a list
            with one int or name per image, or a tensor of indices. None: each image's
            predicted class (or an inversion's own targets).
        method: ``"saliency"``, ``"integrated_gradients"``, ``"input_x_gradient"``,
            ``"occlusion"`` or ``"gradcam"``.
        layer: for Grad-CAM, a timm/torch module name of the network (``"blocks.6"``,
            ``"bn2"``; see :func:`list_layers`) or the module; None: :func:`default_layer`.
        **kwargs: passed to the Captum algorithm's ``.attribute``. piikit's defaults:
            integrated gradients ``baselines`` = the model's mean colour,
            ``internal_batch_size=32``; occlusion ``sliding_window_shapes=(C, s, s)`` with
            s = side/8, ``strides`` = s/2, ``baselines`` = the mean colour,
            ``perturbations_per_eval=8``; Grad-CAM ``relu_attributions=True``.

    Returns:
        Attributions of the inputs' shape, on the inputs' device (Grad-CAM's map is
        bilinearly upsampled to H×W and repeated over the channels).

    >>> attr = attribute(model, images, target="goldfinch", method="integrated_gradients", n_steps=16)  # doctest: +SKIP
    >>> attr.shape == images.shape  # doctest: +SKIP
    True
    """
    images, target = _unpack(images, target)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"images must be N×C×H×W (or C×H×W), got shape {tuple(images.shape)}")
    name = _method_name(method)
    if layer is not None and name != "gradcam":
        raise ValueError(f"layer= applies to Grad-CAM only, not to {name}")
    with _classifier(model) as clf:
        if images.shape[1] != clf.in_chans:
            raise ValueError(f"{clf.name} takes {clf.in_chans}-channel images, but the images have "
                             f"{images.shape[1]} channel(s) (shape {tuple(images.shape)})")
        device = module_device(clf)
        x = images.detach().to(device=device, dtype=torch.float32).clone()
        attr = _METHODS[name](clf, x, _targets(target, len(x), clf, x), layer, kwargs)
    if isinstance(attr, tuple):  # return_convergence_delta=True: Captum's (attributions, delta)
        return tuple(a.detach().to(images.device) for a in attr)  # type: ignore[return-value]
    attr = attr.detach().to(images.device)
    return attr[0] if single else attr


def _mean_image(clf: Classifier, x: torch.Tensor) -> torch.Tensor:
    """The model's normalization mean as an image: the baseline that is 0 in its input space."""
    return clf.mean.to(x.device).expand_as(x)


def _integrated_gradients_defaults(clf: Classifier, x: torch.Tensor) -> dict[str, Any]:
    return {"baselines": _mean_image(clf, x), "internal_batch_size": 32}


def _occlusion_defaults(clf: Classifier, x: torch.Tensor) -> dict[str, Any]:
    side = max(1, min(x.shape[-2:]) // 8)
    return {"sliding_window_shapes": (x.shape[1], side, side), "strides": max(1, side // 2),
            "baselines": _mean_image(clf, x), "perturbations_per_eval": 8}


@dataclass(frozen=True)
class _InputMethod:
    """A Captum algorithm on the classifier's forward function, with piikit's defaults."""

    algorithm: str  # its class in captum.attr
    defaults: Callable[[Classifier, torch.Tensor], dict[str, Any]] | None = None
    gradient: bool = True  # it differentiates with respect to the input

    def __call__(self, clf: Classifier, x: torch.Tensor, target: Any, layer: None, kwargs: dict[str, Any]) -> Any:
        import captum.attr

        if self.gradient:
            x.requires_grad_(True)  # Captum would set it too, with a warning
        for key, value in (self.defaults(clf, x) if self.defaults else {}).items():
            kwargs.setdefault(key, value)
        return getattr(captum.attr, self.algorithm)(clf).attribute(x, target=target, **kwargs)


def _gradcam(clf: Classifier, x: torch.Tensor, target: Any, layer: str | nn.Module | None,
             kwargs: dict[str, Any]) -> torch.Tensor:
    from captum.attr import LayerActivation, LayerAttribution, LayerGradCam, LayerGradientXActivation

    layer_name, module = find_layer(clf, layer if layer is not None else _default_layer(clf, x))
    grid = _token_grid(clf.model)
    shape = dict(_probe(clf, {layer_name: module}, x.device, x[:1])).get(layer_name)
    kind = _layer_kind(shape, grid) if shape is not None else None
    if kind is None:
        got = "no tensor" if shape is None else "×".join(map(str, shape))
        tokens = " or N×tokens×D on the patch grid (ViT/Mixer)" if grid is not None else ""
        try:
            suggestion = f"Name a feature layer (e.g. the default, {_default_layer(clf, x)!r}), or use another method"
        except UnsupportedModelError:
            suggestion = "This model has no such layer; use another method"
        raise UnsupportedModelError(
            f"Grad-CAM needs a layer with a spatial output, N×C×H×W{tokens}; {clf.name}'s {layer_name!r} outputs "
            f"{got}. {suggestion}: {_ANY_MODEL}"
        )
    relu = kwargs.pop("relu_attributions", True)
    if kind[0] == "spatial":
        cam = LayerGradCam(clf, module).attribute(x, target=target, relu_attributions=relu, **kwargs)
    else:
        # Tokens: Grad-CAM with the D features as channels and the patch tokens as positions.
        assert grid is not None
        prefix, (gh, gw) = kind[1], grid[1]
        acts = LayerActivation(clf, module).attribute(x, **kwargs)
        grads = LayerGradientXActivation(clf, module, multiply_by_inputs=False).attribute(x, target=target, **kwargs)
        if acts.ndim == 4:  # N×H×W×D → N×(H·W)×D
            acts, grads = acts.flatten(1, 2), grads.flatten(1, 2)
        acts, grads = acts[:, prefix:], grads[:, prefix:]
        cam = (grads.mean(dim=1, keepdim=True) * acts).sum(-1)  # N×(gh·gw)
        cam = cam.view(len(x), 1, gh, gw)
        if relu:
            cam = cam.relu()
    if not cam.any():
        warnings.warn(
            f"Grad-CAM on {layer_name!r} is zero everywhere: the target's gradient does not reach this layer's "
            "positions (e.g. a class-token ViT's last block output), or no position raises the score "
            f"(relu_attributions). Try {_default_layer(clf, x)!r} or another layer.",
            stacklevel=3,
        )
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam.expand(-1, x.shape[1], -1, -1).contiguous()


# method name -> how it runs: (classifier, images, Captum target, Grad-CAM layer, keywords) -> attributions.
_METHODS: dict[str, Callable[[Classifier, torch.Tensor, Any, Any, dict[str, Any]], Any]] = {
    "saliency": _InputMethod("Saliency"),
    "integrated_gradients": _InputMethod("IntegratedGradients", _integrated_gradients_defaults),
    "input_x_gradient": _InputMethod("InputXGradient"),
    "occlusion": _InputMethod("Occlusion", _occlusion_defaults, gradient=False),
    "gradcam": _gradcam,
}
#: Method names :func:`attribute` accepts (aliases such as ``"ig"`` or ``"grad-cam"`` too).
METHODS = tuple(_METHODS)


def _model_names(models: Sequence[ModelLike] | Mapping[str, ModelLike]) -> dict[str, ModelLike]:
    if isinstance(models, Mapping):
        return dict(models)
    named: dict[str, ModelLike] = {}
    for m in models:
        name = m if isinstance(m, str) else getattr(m, "name", None) or type(m).__name__
        base, k = name, 2
        while name in named:
            name, k = f"{base} ({k})", k + 1
        named[name] = m
    return named


def attribute_models(
    models: Sequence[ModelLike] | Mapping[str, ModelLike],
    images: "torch.Tensor | InversionResult",
    target: Target = None,
    method: str = "saliency",
    layer: str | Mapping[str, str] | None = None,
    **kwargs: Any,
) -> dict[str, torch.Tensor]:
    """What several models see in the same images: :func:`attribute` once per model.

    The usual use: model A's inversion, attributed by A and by another model B
    (``attribute_models([lite0, "efficientnet_lite2"], result)``), to see whether B
    finds the class where A put it.

    Args:
        models: classifiers, modules or names; a mapping gives them display names.
        images, target, method, kwargs: as for :func:`attribute` (an
            :class:`InversionResult` supplies its targets, so all models explain the
            inverted class rather than their own prediction).
        layer: Grad-CAM layer, one name for all or a mapping model name → layer name
            (models left out use :func:`default_layer`).

    Returns:
        Model name → attributions of the inputs' shape, in the order given.
    """
    images, target = _unpack(images, target)
    out: dict[str, torch.Tensor] = {}
    for name, model in _model_names(models).items():
        lay = layer.get(name) if isinstance(layer, Mapping) else layer
        out[name] = attribute(model, images, target, method, lay, **dict(kwargs))
    return out


# old name -> new, kept for one release (a DeprecationWarning on use).
_RENAMED = {"attribute_compare": "attribute_models"}


def __getattr__(name: str) -> Any:
    return renamed_attribute(__name__, _RENAMED, name, globals())
