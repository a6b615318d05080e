"""A sweep that waits for torchrun peers that never come (a stale ``WORLD_SIZE``/``RANK``) can
be stopped: SIGTERM and Ctrl-C end it at once, the ``PIIKIT_RENDEZVOUS_TIMEOUT`` bound holds,
and every case is one line (no c10d retry log, no C++ stack trace) with nothing written. Also
Ctrl-C while the command is still importing torch. Real ``python -m piikit`` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from piikit.interfaces.torchrun import Dist, rendezvous, rendezvous_timeout

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["sweep", "--models", "test_resnet", "--no-pretrained", "--device", "cpu", "--preset", "preview",
         "--classes", "0-1", "--quiet"]
# Generous limits for a loaded 2-core machine; the failure they catch is a wait without end
# (before: still waiting 7 minutes into a 300 s bound, SIGTERM ignored).
PROMPT_S = 20


def _free_port() -> int:
    """A port nobody listens on (bound and closed again), so no rank 0 ever answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stale_env(bound: float = 300, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHELASTIC_RUN_ID", "SLURM_PROCID",
                                                            "OMPI_COMM_WORLD_RANK", "PMI_RANK")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1",
               WORLD_SIZE="2", RANK="1", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               PIIKIT_RENDEZVOUS_TIMEOUT=str(bound))
    return {**env, **extra}


def _start_waiting(out: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
    """The sweep, once it has said it waits (its warning line) and the wait began."""
    proc = subprocess.Popen([sys.executable, "-m", "piikit", *SWEEP, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    warning = proc.stderr.readline()  # type: ignore[union-attr]
    return proc, warning, time.monotonic()


def _assert_one_clean_line(err: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert "frame #" not in err and "c10d" not in err and "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_a_stale_rendezvous_at_once(tmp_path, signum, code):
    out = tmp_path / "X"
    proc, warning, _ = _start_waiting(out, _stale_env())
    assert "no launcher started it (no TORCHELASTIC_RUN_ID)" in warning and "unset WORLD_SIZE, RANK" in warning
    time.sleep(2)  # well inside c10d's connect retries
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=PROMPT_S)
    assert time.monotonic() - sent < PROMPT_S
    assert proc.returncode == code, err
    _assert_one_clean_line(err)
    assert err.startswith("piikit: stopped while rank 1 of 2 waited") and "unset WORLD_SIZE, RANK" in err
    assert not out.exists()


@pytest.mark.slow
def test_the_rendezvous_bound_holds_in_one_line(tmp_path):
    out = tmp_path / "X"
    proc, _, waiting = _start_waiting(out, _stale_env(bound=8))
    _, err = proc.communicate(timeout=8 + PROMPT_S)
    waited = time.monotonic() - waiting
    assert proc.returncode == 2, err
    assert 7 < waited < 8 + PROMPT_S
    _assert_one_clean_line(err)
    assert "did not join at 127.0.0.1:" in err and "within 8 s" in err and "unset WORLD_SIZE, RANK" in err
    assert not out.exists()


def test_a_launched_rank_waits_without_a_warning(monkeypatch):
    for name, value in _stale_env(TORCHELASTIC_RUN_ID="job").items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the launcher's variable is there: no warning
        with pytest.raises(ValueError, match="did not join at 127.0.0.1:.* within 1 s"):
            rendezvous(Dist(rank=1, world_size=2), timeout_s=1)


def test_missing_master_address_fails_before_waiting(monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("MASTER_PORT", "29500")
    started = time.monotonic()
    with pytest.raises(ValueError, match="but MASTER_ADDR is not set; start it with torchrun, or unset WORLD_SIZE"):
        rendezvous(Dist(rank=1, world_size=2), timeout_s=60)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf"])
def test_a_bad_rendezvous_timeout_is_refused(monkeypatch, value):
    monkeypatch.setenv("PIIKIT_RENDEZVOUS_TIMEOUT", value)
    with pytest.raises(ValueError, match="PIIKIT_RENDEZVOUS_TIMEOUT=.* is not a positive number of seconds"):
        rendezvous_timeout()


def _loading(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see torch loading")
@pytest.mark.parametrize("library", ["libtorch_cpu", "libtorch_python"])
def test_ctrl_c_while_torch_imports_is_one_line(tmp_path, library):
    # The moment torch's shared libraries appear in the process's memory map it is inside
    # `import torch` (the parser's preset choices import it, before any work).
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen([sys.executable, "-m", "piikit", *SWEEP, "--out", str(tmp_path / "X")], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _loading(proc.pid, library) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "piikit: interrupted before any work was done\n"
    assert not (tmp_path / "X").exists()


def test_a_rendezvous_that_fails_at_once_says_why(monkeypatch):
    for name, value in _stale_env(TORCHELASTIC_RUN_ID="job", MASTER_PORT="abc").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=r"joining the job's other processes at 127.0.0.1:abc failed \(.*'abc'\); "
                                         r"start it with torchrun, or unset WORLD_SIZE"):
        rendezvous(Dist(rank=1, world_size=2), timeout_s=60)
