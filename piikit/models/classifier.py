"""The classifier wrapper: [0, 1] images in, the model's own normalization and input size
applied inside, logits out; and :func:`frozen`, the eval-mode/no-grad block runs use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from piikit.errors import UnsupportedModelError
from piikit.labels import imagenet_classes

__all__ = ["Classifier", "frozen", "logits_of"]


class Classifier(nn.Module):
    """A classifier seen the way inversion needs it: [0, 1] images in, logits out.

    Args:
        model: the network; it receives normalized images.
        mean, std: per-channel normalization applied inside ``forward``; one value is
            used for every channel.
        input_size: (H, W) the model was trained at; the default inversion size.
        fixed_input_size: if True, every input is bilinearly resized to ``input_size``
            first (ViTs, MLP-Mixers); if False, the model sees the image as it is.
        class_names: one name per output; ImageNet-1k names for 1000-way models.
        name: a display name.
        in_chans: input channels (default: as many as ``mean`` has values).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: tuple[int, int],
        fixed_input_size: bool,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        in_chans: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.in_chans = int(in_chans or len(mean))
        mean, std = _per_channel("mean", mean, self.in_chans), _per_channel("std", std, self.in_chans)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.fixed_input_size = bool(fixed_input_size)
        self.num_classes = int(num_classes)
        if class_names is None:
            class_names = imagenet_classes() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for a model with {num_classes} outputs")
        self.class_names = tuple(class_names)
        self.name = name or type(model).__name__

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ValueError(
                f"{self.name} takes N×{self.in_chans}×H×W images, got shape {tuple(images.shape)}"
            )
        if self.fixed_input_size and tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False)
        return logits_of(self.model((images - self.mean) / self.std))

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, in_chans={self.in_chans}, input_size={self.input_size}, "
                f"fixed_input_size={self.fixed_input_size}")


def _per_channel(what: str, values: Sequence[float], channels: int) -> tuple[float, ...]:
    """``values`` as one number per channel; a single value serves every channel."""
    values = tuple(torch.as_tensor(values, dtype=torch.float64).flatten().tolist())  # a number, list or tensor
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ValueError(f"{what} has {len(values)} values but the model takes {channels} input channel(s)")
    return values


def logits_of(output: Any) -> torch.Tensor:
    """Find the logits in a model's output: a tensor, a tuple's first item, a dict's
    ``"logits"``, or an output object's ``.logits`` (Hugging Face style)."""
    if isinstance(output, torch.Tensor):
        logits = output
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        logits = output[0]
    elif isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        logits = output["logits"]
    elif isinstance(getattr(output, "logits", None), torch.Tensor):
        logits = output.logits
    else:
        raise UnsupportedModelError(
            f"the model returned {type(output).__name__}, not logits; wrap it so it returns an N×classes tensor"
        )
    if logits.ndim != 2:
        raise UnsupportedModelError(
            f"the model's output has shape {tuple(logits.shape)}; expected N×classes logits "
            "(a segmentation or feature model needs a head that pools to class scores)"
        )
    return logits


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside the block; the module's own flags are
    restored afterwards, so a user's module comes back exactly as it was."""
    # Per module, since a wrapper's own flag need not match the module it wraps.
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode
