"""Choosing the device a run uses, never fixed at import time."""

from __future__ import annotations

import torch
from torch import nn

from piikit.errors import DeviceUnavailableError

__all__ = ["resolve_device", "available_devices", "module_device"]


def available_devices() -> list[str]:
    """The devices this machine can run on, e.g. ``["cpu"]`` or ``["cuda:0", "cuda:1", "cpu"]``."""
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found += [f"xpu:{i}" for i in range(xpu.device_count())]
    return [*found, "cpu"]


def resolve_device(device: str | torch.device | None = "auto", model: nn.Module | None = None) -> torch.device:
    """Turn a device request into a ``torch.device`` that exists on this machine.

    ``"auto"`` (or ``None``) prefers CUDA, then Apple's MPS, then the CPU. When a model
    is given and the request is ``"model"``, the device of its first parameter is used.

    Raises:
        DeviceUnavailableError: the name is not a device type, or this machine lacks it;
            the message lists the devices that exist here.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "model":
        if model is None:
            raise ValueError("device='model' needs a model")
        return module_device(model)
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise DeviceUnavailableError(f"{device!r} is not a device; {_choices()}") from e
    if not _exists(resolved):
        raise DeviceUnavailableError(f"device {str(resolved)!r} is not available on this machine; {_choices()}")
    return resolved


def _exists(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    backend = getattr(torch, device.type, None) if device.type != "mps" else getattr(torch.backends, "mps", None)
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        return False
    count = getattr(backend, "device_count", None)
    return device.index is None or count is None or device.index < count()


def _choices() -> str:
    return f"devices here: {', '.join(available_devices())} (or 'auto' for the best of them)"


def module_device(module: nn.Module) -> torch.device:
    """Where a module's first parameter lives (the CPU for a module without parameters)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))
