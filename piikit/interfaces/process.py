"""Process-wide settings, in one place; the library never makes them, the command and the
programs it starts do.

:func:`set_process_defaults` (the ``piikit`` command, before torch loads): OpenMP threads that
sleep instead of spinning when idle, and glibc's malloc keeping freed memory
(:func:`tune_malloc`). :func:`configure_process` (a sweep process, under torchrun or not): the
current CUDA device and each CPU rank's share of the cores. SIGTERM as Ctrl-C and the
rendezvous are torchrun's (:mod:`piikit.interfaces.torchrun`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["set_process_defaults", "tune_malloc", "configure_process"]


def set_process_defaults() -> None:
    """The command's process-wide settings, made before torch loads (never by the library).

    Idle OpenMP threads that spin make two torch processes on the same cores (a notebook next
    to a ``piikit`` run) several times slower than sharing fairly; sleeping threads do not
    (``benchmarks/shared_cpu.py``). OpenMP reads ``OMP_WAIT_POLICY`` once, when torch loads;
    a value you set yourself wins.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tune_malloc()


# glibc's mallopt parameters (malloc.h) and the values the command sets: the largest mmap
# threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2), and a trim threshold and top pad large
# enough that the heap keeps a step's activations between steps.
_MALLOPT = {"M_TRIM_THRESHOLD": (-1, 1 << 30), "M_TOP_PAD": (-2, 64 << 20), "M_MMAP_THRESHOLD": (-3, 32 << 20)}


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap instead of handing it back to the kernel at once.

    Each step allocates and frees the same activation tensors (tens of MB); by default glibc
    serves blocks that large with fresh ``mmap`` calls (or trims the heap when they are
    freed), so every step pays page faults to zero new pages: system time. Raising the mmap
    threshold, the trim threshold and the top pad (what the ``MALLOC_*_`` environment
    variables do at start) through ``mallopt`` at run time keeps those pages: measured in
    ``docs/benchmarks.md`` ("Process levers"). A no-op returning False where the C library
    is not glibc (macOS, Windows, musl) or a value is refused.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in _MALLOPT.values())


def configure_process(device: torch.device, local_world_size: int = 1) -> None:
    """A sweep process's settings (the ``piikit sweep`` command, or a script under torchrun,
    makes them through :func:`piikit.interfaces.torchrun.runner_process`; a library call of
    :func:`~piikit.sweep` does not): the current CUDA device, and each CPU rank's share of the
    cores when ``local_world_size`` ranks share this machine."""
    import torch

    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # what nccl and bare .cuda() calls in user models use
    elif device.type == "cpu" and local_world_size > 1:
        # torchrun sets OMP_NUM_THREADS=1; ranks sharing a CPU split its cores instead.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // local_world_size))
