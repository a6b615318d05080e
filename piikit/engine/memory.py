"""How many samples one forward pass can take: ``micro_batch="auto"``.

The paper uses "the largest ensemble that fits, up to 32". With micro-batching the ensemble
is always exact (gradients accumulate over slices), so what has to fit is only one slice.
:func:`auto_micro_batch` finds the largest slice that fits by trying one forward + backward,
halving on out-of-memory, and remembers the answer per model, image size and device, so a
sweep over a thousand classes probes once.

On a CPU memory is rarely the limit but cache is: forward passes of a few images run faster
per image than large ones, so the probe starts at :data:`CPU_MICRO_BATCH` there. On CUDA the
probe starts from an estimate instead of the whole batch: the free memory (:func:`free_bytes`)
over the memory one sample's forward + backward was measured to take (:func:`per_sample_bytes`),
less :data:`RESERVE` (:func:`fitting_batch`); the step loop halves the slice again if a step
still runs out (:meth:`piikit.Inversion.run`), and :func:`record_out_of_memory` keeps that for
the next run.

How many *targets* one call should optimize together to fill a GPU is another question
(:func:`target_batch`): enough that a step's samples reach :data:`GPU_FULL_SAMPLES`.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from piikit.models import frozen

__all__ = ["auto_micro_batch", "is_out_of_memory", "CPU_MICRO_BATCH", "RESERVE", "GPU_FULL_SAMPLES",
           "fitting_batch", "free_bytes", "per_sample_bytes", "record_out_of_memory", "target_batch"]

# On 2 CPU cores, passes of about 4 images of 224 px ran faster per image than 8 or more
# (benchmarks/batched_targets.py, Lite0); a larger slice only costs cache misses there.
CPU_MICRO_BATCH = 4

# Of the free memory, the share the estimate leaves to what a step holds besides one pass
# (the images, their jittered copies, Adam's state, the logits) and to fragmentation.
RESERVE = 0.2

# Samples per step from which a GPU step is taken to be full: the floor's throughput
# (bare Lite0 forward + input-gradient) flattens out by about here on large GPUs;
# benchmarks/gpu_check.py searches the floor's best batch on the GPU at hand and prints it.
GPU_FULL_SAMPLES = 1024

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


def fitting_batch(free: float, per_sample: float, cap: int, reserve: float = RESERVE) -> int:
    """The largest slice (1 to ``cap`` samples) whose estimated memory fits: ``free`` bytes,
    less the ``reserve`` share, over ``per_sample`` bytes per sample.

    >>> fitting_batch(free=100e9, per_sample=40e6, cap=4096)  # 80 GB / 40 MB
    2000
    """
    if per_sample <= 0:
        return cap
    return max(1, min(cap, int(free * (1 - reserve) // per_sample)))


def free_bytes(device: torch.device) -> int | None:
    """Memory a pass can use on a CUDA device: free on the device plus what PyTorch's cache
    holds unused; None elsewhere (no such count: the probe halves instead)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def per_sample_bytes(model: nn.Module, size: int, device: torch.device, *, channels: int = 3, amp: bool = False,
                     channels_last: bool = False, batches: tuple[int, int] = (4, 12)) -> float | None:
    """The peak memory one more sample adds to a forward + backward at ``size`` px, measured
    on CUDA as the slope between two small batches (what does not grow with the batch, such
    as workspaces, cancels); None elsewhere or if a probe runs out of memory."""
    if device.type != "cuda":
        return None
    peaks = []
    for batch in batches:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        if not _fits(model, (batch, channels, size, size), device, amp, channels_last):
            return None
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    return max(peaks[1] - peaks[0], 1) / (batches[1] - batches[0])


def target_batch(ensemble: int, classes: int, full: int = GPU_FULL_SAMPLES) -> int:
    """How many targets one call should optimize together on a GPU: the fewest whose
    samples (targets x ensemble) reach ``full``, at most ``classes``. Memory is not the
    limit here: ``micro_batch="auto"`` slices a step into passes that fit.

    >>> target_batch(ensemble=32, classes=1000)  # the paper's ensemble
    32
    >>> target_batch(ensemble=32, classes=10)
    10
    """
    return max(1, min(classes, -(-full // ensemble)))


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
    size), halving after each out-of-memory (on CUDA from :func:`fitting_batch`'s estimate
    rather than from ``samples``); the answer is remembered for this model,
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
        free = free_bytes(device)
        if free is not None and cap > max(fitted, 1):
            per_sample = per_sample_bytes(model, size, device, channels=channels, amp=amp, channels_last=channels_last)
            if per_sample is not None:
                batch = max(fitted, fitting_batch(free, per_sample, cap))
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


def record_out_of_memory(model: nn.Module, batch: int, size: int, device: torch.device | str, *, channels: int = 3,
                         amp: bool = False, channels_last: bool = False) -> None:
    """Remember that a step's slice of ``batch`` samples ran out of memory (the probe's
    estimate was too high), so later :func:`auto_micro_batch` calls stay below it."""
    known = _probed.setdefault(model, {})
    key = (channels, size, str(torch.device(device)), amp, channels_last)
    fitted, failed = known.get(key, (0, None))
    failed = batch if failed is None else min(failed, batch)
    known[key] = (fitted if 0 < fitted < failed else max(failed // 2, 1), failed)
