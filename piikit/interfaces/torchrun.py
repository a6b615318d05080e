"""Running as one of ``torchrun``'s processes: this rank's place in the job, its share of the
work, its device, and the process-wide settings a sweep run as a program makes (never a
library call): the current CUDA device, each CPU rank's share of the cores, SIGTERM as Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from piikit.interfaces.process import configure_process
from piikit.device import resolve_device

__all__ = ["Dist", "shard", "device_for", "rendezvous", "rendezvous_timeout", "runner_process",
           "sigterm_as_interrupt", "Signals", "Terminated"]


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


# What a launcher sets besides WORLD_SIZE/RANK: torchrun (the elastic agent), Slurm, Open MPI,
# MPICH/Intel MPI. With none of them the rank variables are likely left over from an earlier job.
_LAUNCHER_VARS = ("TORCHELASTIC_RUN_ID", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_UNSET = "unset WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT"


def rendezvous_timeout() -> float:
    """``PIIKIT_RENDEZVOUS_TIMEOUT`` in seconds (300 when unset)."""
    value = os.environ.get("PIIKIT_RENDEZVOUS_TIMEOUT", "").strip() or "300"
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"the environment variable PIIKIT_RENDEZVOUS_TIMEOUT={value!r} is not a positive number "
                         "of seconds (the longest wait for a torchrun job's other processes; 300 when unset)")
    return seconds


def rendezvous(dist: Dist, timeout_s: float | None = None) -> None:
    """Check that this torchrun job's other processes are there, in bounded time
    (``PIIKIT_RENDEZVOUS_TIMEOUT`` seconds, 300 by default): a ``WORLD_SIZE``/``RANK`` left in
    the environment by an earlier job would otherwise wait for peers that never come.
    No process group stays open: the work is split by rank and shared through file locks.

    The wait ends at the bound, or at once on Ctrl-C or SIGTERM (under
    :func:`sigterm_as_interrupt`) with a :class:`KeyboardInterrupt` whose message names the
    variables to unset. c10d's connect blocks in C++, retries through signals and logs each
    retry with a C++ stack trace, so the process group is joined (and left) by a child process
    that is killed when the wait ends; a thread could not be stopped, and one waking while the
    interpreter exits aborts it. Rank variables that no launcher set (no ``TORCHELASTIC_RUN_ID``,
    Slurm or MPI rank) are warned about before waiting.
    """
    if timeout_s is None:
        timeout_s = rendezvous_timeout()
    who = f"this process is rank {dist.rank} of {dist.world_size} by WORLD_SIZE/RANK in its environment"
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name, "").strip()]
    if missing:
        raise ValueError(f"{who}, but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; "
                         f"start it with torchrun, or {_UNSET} (left over from an earlier job?)")
    where = f"{os.environ['MASTER_ADDR'].strip()}:{os.environ['MASTER_PORT'].strip()}"
    if not any(os.environ.get(name) for name in _LAUNCHER_VARS):
        warnings.warn(f"{who}, but no launcher started it (no TORCHELASTIC_RUN_ID): waiting up to {timeout_s:g} s "
                      f"for the other ranks at {where}; if the variables are left over from an earlier job, "
                      f"{_UNSET}", stacklevel=2)
    with subprocess.Popen([sys.executable, "-c", _JOIN_AND_LEAVE, repr(timeout_s)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as child:
        try:
            said, _ = child.communicate(timeout=timeout_s)  # a signal's handler runs here
        except subprocess.TimeoutExpired:
            raise ValueError(f"{who}, but the job's other processes did not join at {where} within {timeout_s:g} s; "
                             f"start it with torchrun, or {_UNSET} (left over from an earlier job?)") from None
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM under sigterm_as_interrupt: leave at once
            stop.args = (f"stopped while rank {dist.rank} of {dist.world_size} waited for the job's other processes "
                         f"at {where}; nothing was written (left over from an earlier job? {_UNSET})",)
            raise
        finally:
            child.kill()  # a no-op once it has ended
    if child.returncode != 0:
        raise ValueError(f"{who}, but joining the job's other processes at {where} failed "
                         f"({said.strip()[:120] or f'exit status {child.returncode}'}); start it with torchrun, "
                         f"or {_UNSET} (left over from an earlier job?)")


# The child's program: join the job's process group and leave it; on failure, print why (one line).
_JOIN_AND_LEAVE = """
import datetime, sys
import torch.distributed as dist
try:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=float(sys.argv[1])))
    dist.destroy_process_group()
except Exception as error:
    print((str(error).strip() or type(error).__name__).splitlines()[0])
    sys.exit(1)
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM raised as Ctrl-C by :func:`sigterm_as_interrupt`; a program exits with ``exit_code``."""

    exit_code = 128 + signal.SIGTERM


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
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)
