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

from piikit.interfaces.process import configure_process
from piikit.device import resolve_device
from piikit.errors import first_line

__all__ = ["Dist", "shard", "device_for", "rendezvous", "runner_process", "sigterm_as_interrupt",
           "Signals"]


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

        def number(name: str, default: int) -> int:
            value = env.get(name, "").strip()
            if not value:
                return default
            if not value.isdigit():
                raise ValueError(f"the environment variable {name}={value!r} is not a whole number >= 0 "
                                 "(set by torchrun; unset it to run as one process)")
            return int(value)

        world = max(1, number("WORLD_SIZE", 1))
        dist = cls(number("RANK", 0), world, number("LOCAL_RANK", 0), max(1, number("LOCAL_WORLD_SIZE", world)))
        if dist.rank >= world:
            raise ValueError(f"the environment says RANK={dist.rank} of WORLD_SIZE={world}; RANK must be below "
                             "WORLD_SIZE (unset both to run as one process)")
        return dist


def device_for(request: str | torch.device | None, dist: Dist) -> torch.device:
    """The device of this rank: under torchrun, CUDA ranks take GPU ``LOCAL_RANK``. Changes nothing."""
    device = resolve_device(request)
    if device.type == "cuda" and device.index is None and dist.world_size > 1:
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return device


def rendezvous(dist: Dist, timeout_s: float | None = None) -> None:
    """Check that this torchrun job's other processes are there, in bounded time
    (``PIIKIT_RENDEZVOUS_TIMEOUT`` seconds, 300 by default): a ``WORLD_SIZE``/``RANK`` left in
    the environment by an earlier job would otherwise wait for peers that never come.
    No process group stays open: the work is split by rank and shared through file locks."""
    import datetime

    import torch.distributed as torch_dist

    if timeout_s is None:
        timeout_s = float(os.environ.get("PIIKIT_RENDEZVOUS_TIMEOUT", 300))
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    stale = (f"this process is rank {dist.rank} of {dist.world_size} by WORLD_SIZE/RANK in its environment, but "
             f"the job's other processes did not join at {where} within {timeout_s:g} s")
    hint = ("; start it with torchrun, or unset WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT "
            "(left over from an earlier job?)")
    try:
        torch_dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_s))
    except ValueError as error:  # no MASTER_ADDR / MASTER_PORT
        raise ValueError(f"this process is rank {dist.rank} of {dist.world_size} by WORLD_SIZE/RANK in its "
                         f"environment, but {first_line(error)}{hint}") from error
    except (RuntimeError, TimeoutError) as error:  # torch's DistStoreError / DistNetworkError
        raise ValueError(f"{stale} ({first_line(error)[:120]}){hint}") from error
    torch_dist.destroy_process_group()


class Signals:
    """Which signal interrupted the block (None: none, or Ctrl-C itself)."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """The shell's code for the signal: 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def runner_process(device: str | torch.device | None = "auto") -> Iterator[Signals]:
    """Process-wide set-up for a sweep run as a program (the ``piikit sweep`` command, or a
    script torchrun starts): the CUDA device and CPU share of this rank, and SIGTERM (how
    torchrun stops workers) raised as Ctrl-C while the block runs, so finished classes are kept."""
    dist = Dist.from_env()
    configure_process(device_for(device, dist), dist.local_world_size)
    with sigterm_as_interrupt() as caught:
        yield caught


@contextmanager
def sigterm_as_interrupt() -> Iterator[Signals]:
    """SIGTERM (what torchrun, a batch scheduler, ``timeout`` or a closing terminal sends)
    raised as Ctrl-C while the block runs, so the partial result is kept; the yielded
    :class:`Signals` says which signal it was. A program's setting, never a library call's."""
    caught = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def interrupt(signum: int, frame: Any) -> None:
        caught.signum = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)
