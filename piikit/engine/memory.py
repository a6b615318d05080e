"""How many samples one forward pass can take: ``micro_batch="auto"``.

The paper uses "the largest ensemble that fits, up to 32". With micro-batching the ensemble
is always exact (gradients accumulate over slices), so what has to fit is only one slice.
:func:`auto_micro_batch` finds the largest slice that fits by trying one forward + backward,
halving on out-of-memory, and remembers the answer per model, image size and device, so a
sweep over a thousand classes probes once.

On a CPU memory is rarely the limit but cache is: forward passes of a few images run faster
per image than large ones, so the probe starts at :data:`CPU_MICRO_BATCH` there.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from piikit.models import frozen

__all__ = ["auto_micro_batch", "is_out_of_memory", "CPU_MICRO_BATCH"]

# On 2 CPU cores, passes of about 4 images of 224 px ran faster per image than 8 or more
# (benchmarks/batched_targets.py, Lite0); a larger slice only costs cache misses there.
CPU_MICRO_BATCH = 4

# model -> {(channels, size, device, amp, channels_last): (largest size that fitted, smallest that did not)}
_probed: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[int, int | None]]]" = weakref.WeakKeyDictionary()


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's ``OutOfMemoryError`` and for MPS/other backends' "out of memory" errors."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _fits(model: nn.Module, shape: tuple[int, ...], device: torch.device, amp: bool, channels_last: bool) -> bool:
    x = torch.rand(shape, device=device, requires_grad=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        logits.float().logsumexp(-1).sum().backward()
        return True
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        return False
    finally:
        # Free the failed attempt's blocks before the next, smaller one.
        del x
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _nothing_fits(size: int, device: torch.device) -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError(f"not even one {size}px sample fits on {device} for this model")


def auto_micro_batch(
    model: nn.Module,
    samples: int,
    size: int,
    device: torch.device | str,
    *,
    channels: int = 3,
    amp: bool = False,
    channels_last: bool = False,
) -> int:
    """The largest number of samples (at most ``samples``) whose forward + backward fits.

    Probes ``model`` with random images of ``size`` px (run it at the largest stage's
    size), halving after each out-of-memory; the answer is remembered for this model,
    size, device and precision, so later calls cost nothing.

    Args:
        model: the classifier (its parameters get no gradients from the probe).
        samples: the samples one step needs (images × ensemble); the answer never exceeds it.
        size: image side in pixels.
        device: where the model runs.
        channels: the model's input channels.
        amp, channels_last: as in :class:`~piikit.InversionConfig`; they change memory use.

    Returns:
        A micro-batch between 1 and ``samples``.

    Raises:
        torch.OutOfMemoryError: if even one sample does not fit.

    >>> auto_micro_batch(load_model("efficientnet_lite0"), 32, 224, "cpu")  # doctest: +SKIP
    4
    """
    device = torch.device(device)
    cap = samples if device.type != "cpu" else min(samples, CPU_MICRO_BATCH)
    known = _probed.setdefault(model, {})
    key = (channels, size, str(device), amp, channels_last)
    fitted, failed = known.get(key, (0, None))
    if failed == 1:
        raise _nothing_fits(size, device)
    if failed is not None and cap >= failed:
        return fitted  # the probe already backed off from here
    if cap <= fitted:
        return cap
    batch = cap
    with frozen(model):
        while not _fits(model, (batch, channels, size, size), device, amp, channels_last):
            failed = batch
            if batch == 1:
                known[key] = (fitted, failed)
                raise _nothing_fits(size, device)
            batch = max(batch // 2, fitted)
            if batch == fitted:  # an earlier probe showed this size fits
                break
    known[key] = (max(fitted, batch), failed)
    return batch
