"""Feature objectives: maximise what a named layer computes instead of a class.

The mean of one channel (:class:`ChannelObjective`), one unit at one position
(:class:`NeuronObjective`) or the projection on a direction in feature space
(:class:`DirectionObjective`), the PII augmentations doing the regularizing as for classes.
Activations are read through forward hooks (:func:`piikit.models.layers.forward_hooks`) and
understood by their shape: N×C×H×W (convolutions: features on dim 1), N×L×D (transformer /
MLP-Mixer tokens: features on the *last* dim, averaged over the L tokens) or N×D (vectors).
They compose with :class:`~piikit.engine.objectives.ClassObjective` like any objective:
``ChannelObjective("blocks.3", 7) + 0.5 * ClassObjective()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from piikit.device import module_device
from piikit.engine.objectives import Batch, Objective
from piikit.errors import UnsupportedModelError
from piikit.models.layers import forward_hooks, resolve_layer

__all__ = ["FeatureObjective", "ChannelObjective", "NeuronObjective", "DirectionObjective", "capture_activation"]

Layout = Literal["auto", "channels_first", "channels_last"]


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise UnsupportedModelError(f"the hooked layer returned {type(output).__name__}, not a tensor")


def _canonical(act: torch.Tensor, layout: Layout) -> tuple[torch.Tensor, tuple[int, ...]]:
    """An activation as N×D×P (features on dim 1, positions flattened on dim 2) and the
    shape of its positions: (H, W) for feature maps, (L,) for tokens, () for vectors.

    ``auto`` reads the shape: N×C×H×W is channels-first (CNNs), N×L×D is tokens with
    features *last* (ViTs, MLP-Mixers: a block's output is tokens × embedding), N×D is a
    vector. ``channels_last`` is for 4-d maps stored N×H×W×C (e.g. Swin stages).
    """
    if act.ndim == 2:
        return act[:, :, None], ()
    if act.ndim == 3:
        if layout == "channels_first":  # N×C×L (1-d convolutions)
            return act, (act.shape[2],)
        return act.transpose(1, 2), (act.shape[1],)
    if act.ndim == 4:
        if layout == "channels_last":
            return act.flatten(1, 2).transpose(1, 2), (act.shape[1], act.shape[2])
        return act.flatten(2), (act.shape[2], act.shape[3])
    raise UnsupportedModelError(f"cannot interpret an activation of shape {tuple(act.shape)} as features")


class FeatureObjective(Objective):
    """Base class of objectives on a named layer's output, read by a forward hook.

    Subclasses implement :meth:`score`: the quantity to *maximise* per sample from the
    activation in N×D×P form; the loss is its negative.

    Args:
        layer: the module's name in the model (see :func:`piikit.models.layers.find_layer`).
        layout: how to read a 3-d or 4-d activation (see the module docstring); ``"auto"``
            treats N×L×D as tokens with features last and N×C×H×W as channels first.
    """

    def __init__(self, layer: str, layout: Layout = "auto") -> None:
        if layout not in ("auto", "channels_first", "channels_last"):
            raise ValueError(f"layout must be 'auto', 'channels_first' or 'channels_last', got {layout!r}")
        self.layer = layer
        self.layout: Layout = layout
        self._activation: torch.Tensor | None = None

    def score(self, features: torch.Tensor, positions: tuple[int, ...]) -> torch.Tensor:
        """(N,) what to maximise, from ``features`` N×D×P."""
        raise NotImplementedError

    def _clear(self, module: nn.Module, args: object) -> None:
        # New forward pass of the whole model: never reuse a stale activation.
        self._activation = None

    def _store(self, module: nn.Module, args: object, output: object) -> None:
        self._activation = _first_tensor(output)

    @contextlib.contextmanager
    def _hooked(self, model: nn.Module) -> Iterator[None]:
        module = resolve_layer(model, self.layer)
        try:
            with forward_hooks([(module, self._store)], pre_hooks=[(model, self._clear)]):
                yield
        finally:
            self._activation = None

    def hooks(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        return self._hooked(model)

    def _scores(self) -> torch.Tensor:
        if self._activation is None:
            raise RuntimeError(
                f"layer {self.layer!r} produced no output in this forward pass (is the objective used outside "
                "its hooks() context, or is the layer skipped by the model?)"
            )
        features, positions = _canonical(self._activation.float(), self.layout)
        return self.score(features, positions)

    def __call__(self, batch: Batch) -> torch.Tensor:
        scores = self._scores()
        if scores.shape[0] != batch.inputs.shape[0]:
            raise RuntimeError(
                f"layer {self.layer!r} gave {scores.shape[0]} samples for a batch of {batch.inputs.shape[0]}; "
                "feature objectives need a layer whose first dimension is the batch"
            )
        return -scores

    @torch.no_grad()
    def measure(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(N,) the quantity this objective maximises, for ``images`` in [0, 1] (no
        augmentation): e.g. to compare an image before and after optimizing it."""
        from piikit.models import load_model

        clf = load_model(model)
        with self.hooks(clf):
            clf(images.to(module_device(clf)))
            return self._scores().cpu()


class ChannelObjective(FeatureObjective):
    """Maximise the mean of one feature channel of a layer over all positions.

    For N×C×H×W maps, channel ``c`` averaged over H×W; for ViT / Mixer tokens N×L×D,
    feature ``c`` of the embedding averaged over the L tokens (not token ``c``).

    >>> result = invert(model, None, objective=ChannelObjective("blocks.6", 12))  # doctest: +SKIP
    """

    def __init__(self, layer: str, channel: int, layout: Layout = "auto") -> None:
        super().__init__(layer, layout)
        self.channel = int(channel)
        self.name = f"channel({layer}:{self.channel})"

    def score(self, features: torch.Tensor, positions: tuple[int, ...]) -> torch.Tensor:
        _check_index(self.channel, features.shape[1], "channel", self.layer)
        return features[:, self.channel].mean(dim=-1)


class NeuronObjective(FeatureObjective):
    """Maximise one unit: channel ``channel`` at one position.

    Args:
        layer, layout: as for :class:`FeatureObjective`.
        channel: the feature index (the last dim for tokens).
        position: ``(y, x)`` in a feature map, or a token index for N×L×D; default: the
            centre (``(H // 2, W // 2)``, or token ``L // 2``).
    """

    def __init__(
        self, layer: str, channel: int, position: int | tuple[int, int] | None = None, layout: Layout = "auto"
    ) -> None:
        super().__init__(layer, layout)
        self.channel = int(channel)
        self.position = position
        where = "" if position is None else f"@{position}"
        self.name = f"neuron({layer}:{self.channel}{where})"

    def score(self, features: torch.Tensor, positions: tuple[int, ...]) -> torch.Tensor:
        _check_index(self.channel, features.shape[1], "channel", self.layer)
        if len(positions) == 2:
            h, w = positions
            y, x = (h // 2, w // 2) if self.position is None else self.position  # type: ignore[misc]
            _check_index(y, h, "row", self.layer)
            _check_index(x, w, "column", self.layer)
            index = y * w + x
        elif len(positions) == 1:
            if self.position is not None and not isinstance(self.position, int):
                raise ValueError(f"layer {self.layer!r} has tokens; give the neuron's position as one token index")
            index = positions[0] // 2 if self.position is None else self.position
            _check_index(index, positions[0], "token", self.layer)
        else:
            index = 0
        return features[:, self.channel, index]


class DirectionObjective(FeatureObjective):
    """Maximise the projection of a layer's mean feature vector on a direction.

    The activation is averaged over positions (pixels or tokens) into an N×D feature
    vector ``f``; the score is ``f · d / ‖d‖`` (or the cosine of ``f`` and ``d`` with
    ``cosine=True``, which ignores the activation's magnitude).

    Args:
        layer, layout: as for :class:`FeatureObjective`.
        direction: D numbers, D the layer's feature size.
        cosine: use the cosine similarity.
    """

    def __init__(
        self, layer: str, direction: torch.Tensor | Sequence[float], cosine: bool = False, layout: Layout = "auto"
    ) -> None:
        super().__init__(layer, layout)
        d = torch.as_tensor(direction, dtype=torch.float32).detach().flatten()
        if not torch.isfinite(d).all() or d.norm() == 0:
            raise ValueError("direction must be a finite, non-zero vector")
        self.direction = d / d.norm()
        self.cosine = bool(cosine)
        self.name = f"direction({layer})"

    def score(self, features: torch.Tensor, positions: tuple[int, ...]) -> torch.Tensor:
        if features.shape[1] != self.direction.numel():
            raise ValueError(
                f"layer {self.layer!r} has {features.shape[1]} features but the direction has {self.direction.numel()}"
            )
        f = features.mean(dim=-1)
        d = self.direction.to(f.device)
        if self.cosine:
            return F.cosine_similarity(f, d[None], dim=1)
        return f @ d


def _check_index(index: int, size: int, what: str, layer: str) -> None:
    if not 0 <= index < size:
        raise IndexError(f"{what} {index} is out of range for layer {layer!r}, which has {size}")


@torch.no_grad()
def capture_activation(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` for ``images`` in [0, 1] (through the model's normalization),
    as the layer gives it; the hook is removed before returning.

    >>> capture_activation(model, "blocks.1", images).shape  # doctest: +SKIP
    torch.Size([1, 197, 192])
    """
    from piikit.models import load_model

    clf = load_model(model)
    captured: list[torch.Tensor] = []
    with forward_hooks([(resolve_layer(clf, layer), lambda m, a, out: captured.append(_first_tensor(out)))]):
        clf(images.to(module_device(clf)))
    if not captured:
        raise RuntimeError(f"layer {layer!r} did not run in the forward pass")
    return captured[-1].cpu()
