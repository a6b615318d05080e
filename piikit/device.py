"""Choosing the device a run uses, never fixed at import time."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto", model: nn.Module | None = None) -> torch.device:
    """Turn a device request into a ``torch.device``.

    ``"auto"`` (or ``None``) prefers CUDA, then Apple's MPS, then the CPU. When a model
    is given and the request is ``"model"``, the device of its first parameter is used.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "model":
        if model is None:
            raise ValueError("device='model' needs a model")
        param = next(iter(model.parameters()), None)
        return param.device if param is not None else torch.device("cpu")
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)
