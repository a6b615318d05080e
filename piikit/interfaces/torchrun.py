"""Running as one of ``torchrun``'s processes: this rank's place in the job, its share of the
work, its device, and the process-wide settings a sweep run as a program makes (never a
library call): the current CUDA device, each CPU rank's share of the cores, SIGTERM as Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from piikit.device import resolve_device

__all__ = ["Dist", "shard", "device_for", "configure_process", "runner_process"]


def shard(work: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Rank ``rank``'s part of a work list: every ``world_size``-th item, so the parts are
    disjoint, cover the list, and a rank's part depends only on the list (never on what
    other ranks have already done)."""
    return list(work[rank::world_size])


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "Dist":
        env = os.environ
        world = int(env.get("WORLD_SIZE", 1))
        return cls(int(env.get("RANK", 0)), world, int(env.get("LOCAL_RANK", 0)),
                   int(env.get("LOCAL_WORLD_SIZE", world)))


def device_for(request: str | torch.device | None, dist: Dist) -> torch.device:
    """The device of this rank: under torchrun, CUDA ranks take GPU ``LOCAL_RANK``. Changes nothing."""
    device = resolve_device(request)
    if device.type == "cuda" and device.index is None and dist.world_size > 1:
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return device


def configure_process(device: torch.device, dist: Dist) -> None:
    """The runner's process-wide settings (the ``piikit sweep`` command makes them, a library
    call of :func:`sweep` does not): the current CUDA device, and each CPU rank's share of the cores."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # what nccl and bare .cuda() calls in user models use
    elif device.type == "cpu" and dist.local_world_size > 1:
        # torchrun sets OMP_NUM_THREADS=1; ranks sharing a CPU split its cores instead.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // dist.local_world_size))


@contextmanager
def runner_process(device: str | torch.device | None = "auto") -> Iterator[None]:
    """Process-wide set-up for a sweep run as a program (the ``piikit sweep`` command, or a
    script torchrun starts): the CUDA device and CPU share of this rank, and SIGTERM (how
    torchrun stops workers) raised as Ctrl-C while the block runs, so finished classes are kept."""
    dist = Dist.from_env()
    configure_process(device_for(device, dist), dist)
    with _sigterm_as_interrupt():
        yield


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """torchrun stops its workers with SIGTERM: treat it as Ctrl-C, so finished classes
    are kept and the running one is dropped cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
