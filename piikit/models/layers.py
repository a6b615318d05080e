"""A model's layers: finding one by name, listing them, and forward hooks that always come off.

Names are timm/torch module names of the network inside a :class:`~piikit.Classifier`
(``"blocks.6"``, ``"layer2.0.conv1"``); the wrapper's own prefix ``"model."`` also works.
Every piikit hook (feature objectives, the BatchNorm prior, attributions) is registered
through :func:`forward_hooks`, which removes it on exit, also after an exception.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch import nn

from piikit.errors import UnknownLayerError

__all__ = ["find_layer", "resolve_layer", "list_layers", "forward_hooks"]

Hook = Callable[..., Any]


def _network(model: nn.Module) -> nn.Module:
    """The network inside a classifier wrapper (``model.model``), or the module itself."""
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, nn.Module) else model


def list_layers(model: nn.Module | str) -> list[str]:
    """The layer names :func:`find_layer` (and ``attribute(layer=...)``, feature objectives)
    accept: module names of the network inside the classifier, e.g. ``"blocks.6"``.

    >>> list_layers("efficientnet_lite0")[:2]  # doctest: +SKIP
    ['conv_stem', 'bn1']
    """
    if isinstance(model, str):
        from piikit.models.loading import load_model

        model = load_model(model)
    return [name for name, _ in _network(model).named_modules() if name]


def find_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """A layer and its name, given its name or the module itself.

    Raises:
        UnknownLayerError: (a ``LookupError``) with the closest names, if there is no such layer.
    """
    label = getattr(model, "name", type(model).__name__)
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name.removeprefix("model.") or type(layer).__name__, layer
        raise UnknownLayerError(f"the given {type(layer).__name__} module is not a layer of {label}")
    if not isinstance(layer, str):
        raise UnknownLayerError(f"layer must be a layer's name (e.g. 'blocks.3', see piikit.list_layers(model)) "
                                f"or the module itself, got {type(layer).__name__} {layer!r:.40}")
    modules = {n: m for n, m in _network(model).named_modules() if n}
    name = layer.strip()
    if name not in modules and name.startswith("model."):
        name = name.removeprefix("model.")
    if name in modules:
        return name, modules[name]
    outer = {n: m for n, m in model.named_modules() if n}
    if layer in outer:
        return layer, outer[layer]
    close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; layers include {', '.join(list(modules)[:8])}, ..."
    raise UnknownLayerError(f"{label} has no layer {layer!r}{hint} (list them with piikit.list_layers(model))")


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The submodule :func:`find_layer` finds."""
    return find_layer(model, layer)[1]


@contextlib.contextmanager
def forward_hooks(hooks: Iterable[tuple[nn.Module, Hook]] = (),
                  pre_hooks: Iterable[tuple[nn.Module, Hook]] = ()) -> Iterator[None]:
    """Register forward (pre-)hooks for the block; every one is removed on exit, even on error.

    >>> with forward_hooks([(model.layer2, lambda m, args, out: print(out.shape))]):  # doctest: +SKIP
    ...     model(images)
    """
    handles = []
    try:
        for module, hook in pre_hooks:
            handles.append(module.register_forward_pre_hook(hook))
        for module, hook in hooks:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
