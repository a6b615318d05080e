"""Injected faults: SIGTERM mid-run, two sweeps sharing one folder, a torn manifest line, a
write error mid-save. Nothing finished is lost and nothing is done twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import piikit
from piikit.errors import WriteFailed
from piikit.engine import result_files
from piikit.interfaces import sweep_store
from piikit.interfaces.cli import main

REPO = Path(__file__).resolve().parents[1]
# A random tiny timm ResNet at 32 px: a class takes a fraction of a second.
TINY_CLI = ["--model", "test_resnet", "--no-pretrained", "--device", "cpu", "--preset", "preview",
            "--image-size", "32"]
SWEEP_CLI = ["--models", "test_resnet", "--no-pretrained", "--device", "cpu", "--preset", "preview",
             "--image-size", "32", "--stages", "1", "--steps-per-stage", "6", "--quiet"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
                PYTHONUNBUFFERED="1")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ SIGTERM / SIGINT
def _run_until_a_stage_ends(out: Path, cwd: Path) -> tuple[subprocess.Popen, list[str]]:
    """``piikit invert`` started with 7 stages of a few seconds each, once its first stage has
    ended (the run is going); its stderr lines keep arriving in the returned list."""
    proc = subprocess.Popen([sys.executable, "-m", "piikit", "invert", *TINY_CLI, "--class", "1", "--stages", "7",
                             "--image-size", "64", "--steps-per-stage", "60", "--out", str(out)],
                            cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    deadline = time.monotonic() + 180
    while not any("stage 1/7" in line for line in lines):
        assert proc.poll() is None, "".join(lines)[-2000:]
        assert time.monotonic() < deadline, "the first stage did not end in time"
        time.sleep(0.05)
    return proc, lines


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_saves_the_partial_result(tmp_path, signum, code):
    out = tmp_path / "out"
    proc, lines = _run_until_a_stage_ends(out, tmp_path)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    time.sleep(0.2)  # the reader thread's last lines
    err = "".join(lines)
    assert proc.returncode == code, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("piikit: interrupted at step") and "saved the partial result" in last, err
    assert "Traceback" not in err and "UserWarning" not in err and "warnings.warn" not in err, err
    meta = json.loads((out / "result.json").read_text())
    assert meta["interrupted"] and 60 <= meta["steps_done"] < 7 * 60
    assert (out / meta["files"][0]).is_file() and not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_ctrl_c_while_the_model_loads_is_one_line(tmp_path):
    code = ("import signal, os, piikit.models.loading as L; real = L._load_named\n"
            "def slow(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT)\n    return real(*a, **k)\n"
            "L._load_named = slow\nfrom piikit.interfaces.cli import main\nimport sys\n"
            f"sys.exit(main(['invert', *{TINY_CLI!r}, '--class', '1', '--out', {str(tmp_path / 'o')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr.strip() == "piikit: interrupted while loading the model; nothing was run"


# ------------------------------------------------------------------ two sweeps, one folder
@pytest.mark.slow
def test_two_sweeps_on_one_folder_compute_each_class_once(tmp_path):
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "piikit", "sweep", *SWEEP_CLI, "--classes", "0-7", "--out", str(out)]
    procs = [subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err[-2000:]
    records = _records(out)
    classes = [r["class"] for r in records]
    assert sorted(classes) == list(range(8)), classes  # each class exactly once, none lost
    folder = out / "test_resnet"
    assert len(list(folder.glob("*.result.json"))) == 8
    assert (folder / "contact_sheet.png").is_file()
    assert not list(out.rglob("*.tmp")) and not (out / ".claims").exists() and not (out / ".tmp").exists()


def test_a_claimed_class_is_refused_to_another_process(tmp_path):
    code = ("import sys, time; from pathlib import Path; from piikit.interfaces.sweep_store import claim; "
            "held = claim(Path(sys.argv[1]), 'm', '0001_x'); print(held is not None, flush=True); time.sleep(30)")
    other = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "True"
        assert sweep_store.claim(tmp_path, "m", "0001_x") is None  # held by the other process
        mine = sweep_store.claim(tmp_path, "m", "0002_y")
        assert mine is not None
        mine.release()
    finally:
        other.kill()
        other.wait()
    again = sweep_store.claim(tmp_path, "m", "0001_x")  # the kernel dropped the dead process's claim
    assert again is not None
    again.release()


def test_settings_check_and_write_are_one_step_under_the_lock(tmp_path):
    settings = {"config": {"lr": 0.1}, "seed": 0, "batch": 1}
    with sweep_store.folder_lock(tmp_path):
        sweep_store.check_settings(tmp_path, settings, force=False)
    with pytest.raises(ValueError, match=r"other settings \(lr 0.1 -> 0.2\)"):
        sweep_store.check_settings(tmp_path, {**settings, "config": {"lr": 0.2}}, force=False)


def test_a_device_this_machine_lacks_writes_no_settings(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(piikit.errors.DeviceUnavailableError):
        piikit.sweep("test_resnet", [1], "preview", tmp_path / "runs", device="cuda", pretrained=False,
                     progress=False, image_size=32)
    assert not (tmp_path / "runs" / "settings.json").exists()


def test_a_stale_world_size_fails_in_bounded_time_with_a_message(tmp_path, monkeypatch):
    from piikit.interfaces.torchrun import Dist, rendezvous

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29731")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")  # as torchrun sets it: no warning about a missing launcher
    started = time.monotonic()
    with pytest.raises(ValueError, match="rank 1 of 2 by WORLD_SIZE/RANK.*unset WORLD_SIZE, RANK"):
        rendezvous(Dist(rank=1, world_size=2), timeout_s=2)
    assert time.monotonic() - started < 30


def test_a_bad_rank_environment_is_refused(monkeypatch):
    from piikit.interfaces.torchrun import Dist

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK must be below WORLD_SIZE"):
        Dist.from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x' is not a whole number"):
        Dist.from_env()


# ------------------------------------------------------------------ the manifest
def test_a_torn_manifest_line_is_ended_skipped_and_reported(tmp_path):
    path = tmp_path / "manifest.jsonl"
    sweep_store.append_line(path, {"json": "m/a.result.json", "class": 1})
    with open(path, "ab") as f:
        f.write(b'{"json": "m/b.res')  # a crash mid-append
    sweep_store.append_line(path, {"json": "m/c.result.json", "class": 3})
    lines = path.read_text().split("\n")
    assert lines[1] == '{"json": "m/b.res' and json.loads(lines[2])["class"] == 3  # never glued
    records, bad = sweep_store.read_manifest(path)
    assert [r["class"] for r in records] == [1, 3] and bad == [2]


def test_a_sweep_reports_a_torn_line_and_logs_every_class(tmp_path, capsys):
    torch.manual_seed(0)
    model = piikit.load_model("test_resnet", pretrained=False)
    out = tmp_path / "runs"
    tiny = dict(image_size=32, stages=1, steps_per_stage=2, ensemble=1)
    piikit.sweep(model, [1], "preview", out, device="cpu", progress=False, sheets=False, **tiny)
    with open(out / "manifest.jsonl", "ab") as f:
        f.write(b'{"model": "resnet", "cla')
    piikit.sweep(model, [1, 2], "preview", out, device="cpu", progress=False, sheets=False, **tiny)
    assert "skipped 1 damaged line(s)" in capsys.readouterr().err
    records, bad = sweep_store.read_manifest(out / "manifest.jsonl")
    assert sorted(r["class"] for r in records) == [1, 2] and bad == [2]


# ------------------------------------------------------------------ write errors
def _result() -> piikit.InversionResult:
    return piikit.InversionResult(
        images=torch.rand(2, 3, 16, 16), targets=[1, 2], class_names=piikit.labels.imagenet_classes(),
        config=piikit.make_config("preview"), seed=0, model_name="m", history={}, snapshots=[],
    )


def test_a_write_error_mid_save_leaves_nothing_half_written_and_keeps_the_images(tmp_path, monkeypatch):
    real_replace = os.replace
    calls = []

    def failing(src, dst):  # the disk fills up at the second file
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    result = _result()
    with pytest.raises(WriteFailed, match=r"could not write .*0002_great_white_shark.png: No space left on device; "
                                          r"the images are kept in .*piikit-unsaved-.*\.pt") as info:
        result.save(tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pt"]  # no PNG, no temporary, no result.json
    kept = Path(str(info.value).split("kept in ")[1].split(" (")[0])
    assert torch.equal(torch.load(kept)["images"], result.images)


def test_disk_full_while_writing_keeps_the_images_elsewhere(tmp_path, monkeypatch):
    import tempfile

    real_mkstemp = tempfile.mkstemp

    def full(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == tmp_path / "out":
            raise OSError(28, "No space left on device")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(WriteFailed, match="No space left on device; the images are kept in"):
        _result().save(tmp_path / "out")


def test_the_cli_reports_a_write_error_in_one_line(tmp_path, monkeypatch, capsys):
    def failing(self, *args, **kwargs):
        raise WriteFailed(f"could not write {tmp_path}/x.png: No space left on device; the images are kept in y.pt")

    monkeypatch.setattr(piikit.InversionResult, "save", failing)
    assert main(["invert", *TINY_CLI, "--class", "1", "--stages", "1", "--steps-per-stage", "1", "--quiet",
                 "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("piikit: error: could not write") and "\n" not in err


def test_sweep_temporaries_are_removed_after_a_failed_write(tmp_path, monkeypatch):
    real_write = os.fdopen

    def failing(fd, *args, **kwargs):
        f = real_write(fd, *args, **kwargs)
        f.write = lambda data: (_ for _ in ()).throw(OSError(28, "No space left on device"))  # type: ignore[method-assign]
        return f

    monkeypatch.setattr(os, "fdopen", failing)
    with pytest.raises(OSError, match="No space left"):
        result_files.write_atomic(tmp_path / "contact_sheet.png", b"png")
    assert list(tmp_path.iterdir()) == []


def test_a_stale_torchrun_environment_fails_the_command_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    argv = ["sweep", *SWEEP_CLI, "--classes", "1", "--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "rank 1 of 2 by WORLD_SIZE/RANK" in err and "MASTER_ADDR" in err and "\n" not in err
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29733")
    monkeypatch.setenv("PIIKIT_RENDEZVOUS_TIMEOUT", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")  # as torchrun sets it: no warning about a missing launcher
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "did not join at 127.0.0.1:29733 within 2 s" in err and "\n" not in err
    assert not (tmp_path / "runs").exists()  # nothing written
