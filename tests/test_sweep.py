"""Sweeps: class specs, sharding, resuming, refusing changed settings, and real torchrun runs
(2 processes on the CPU with gloo) that are killed midway and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch

import piikit
from piikit.interfaces.runner import parse_classes
from piikit.interfaces.torchrun import shard

REPO = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, stages=2, steps_per_stage=3, ensemble=2)
# Real Lite0 at 64 px with the preview preset: about a second per class per process here.
CLI_SETTINGS = ["--models", "efficientnet_lite0", "--preset", "preview", "--image-size", "64", "--quiet"]


def _manifest(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.result.json")}


@pytest.fixture(scope="module")
def tiny_resnet() -> piikit.Classifier:
    torch.manual_seed(0)
    return piikit.load_model(timm.create_model("test_resnet", pretrained=False))


def test_class_specs_expand_ranges_and_keep_names():
    assert parse_classes("0-3,volcano, 17") == [0, 1, 2, 3, "volcano", 17]
    assert parse_classes(["tench, Tinca tinca", "5-6", 9]) == ["tench, Tinca tinca", 5, 6, 9]
    with pytest.raises(ValueError, match="empty class range"):
        parse_classes("9-3")
    with pytest.raises(ValueError, match="no classes"):
        parse_classes(" , ")


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_are_disjoint_and_cover_the_work(world):
    work = list(range(11))
    parts = [shard(work, r, world) for r in range(world)]
    assert sorted(x for p in parts for x in p) == work
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_ranks_sharing_a_cpu_split_its_cores():
    from piikit.interfaces.process import configure_process
    from piikit.interfaces.torchrun import Dist, device_for

    before = torch.get_num_threads()
    try:
        dist = Dist(rank=1, world_size=2, local_rank=1, local_world_size=2)
        device = device_for("cpu", dist)
        assert device == torch.device("cpu")
        assert torch.get_num_threads() == before  # choosing a device changes nothing
        configure_process(device, dist.local_world_size)
        assert torch.get_num_threads() == max(1, len(os.sched_getaffinity(0)) // 2)
    finally:
        torch.set_num_threads(before)


def test_sweep_writes_resumes_refuses_and_forces(tiny_resnet, tmp_path):
    out = tmp_path / "runs"
    summary = piikit.sweep(tiny_resnet, [1, 2, "volcano"], "preview", out, device="cpu", progress=False, **TINY)
    folder = out / "resnet"
    assert (summary.done, summary.skipped, summary.interrupted) == (3, 0, False)
    stems = ["0001_goldfish", "0002_great_white_shark", "0980_volcano"]
    for stem in stems:
        meta = json.loads((folder / f"{stem}.result.json").read_text())
        assert meta["files"] == [f"{stem}.png"] and (folder / meta["files"][0]).is_file()
        assert meta["config"]["ensemble"] == 2 and meta["steps_done"] == meta["total_steps"] == 6
        assert len(meta["targets"]) == 1 and meta["sweep"]["batch"] == 1
    assert sorted(r["class"] for r in _manifest(out)) == [1, 2, 980]
    assert (folder / "contact_sheet.png").stat().st_size > 0
    assert not (out / ".tmp").exists()

    # Same settings: nothing is redone.
    before = _mtimes(folder)
    again = piikit.sweep(tiny_resnet, [1, 2, "volcano"], "preview", out, device="cpu", progress=False, **TINY)
    assert (again.done, again.skipped) == (0, 3) and _mtimes(folder) == before

    # A class whose JSON never landed (killed between the renames) is redone, alone.
    (folder / "0002_great_white_shark.result.json").unlink()
    again = piikit.sweep(tiny_resnet, [1, 2, "volcano"], "preview", out, device="cpu", progress=False, **TINY)
    assert (again.done, again.skipped) == (1, 2)
    assert _mtimes(folder)["0001_goldfish.result.json"] == before["0001_goldfish.result.json"]

    # Other settings are refused, naming what changed; micro_batch changes no image.
    with pytest.raises(ValueError, match=r"ensemble 2 -> 3.*--force"):
        piikit.sweep(tiny_resnet, [1], "preview", out, device="cpu", progress=False, **dict(TINY, ensemble=3))
    same = piikit.sweep(tiny_resnet, [1], "preview", out, device="cpu", progress=False, **dict(TINY, micro_batch=1))
    assert same.skipped == 1
    forced = piikit.sweep(tiny_resnet, [1, 2], "preview", out, device="cpu", progress=False, force=True,
                          **dict(TINY, ensemble=3))
    assert forced.done == 2
    assert json.loads((folder / "0001_goldfish.result.json").read_text())["config"]["ensemble"] == 3


def test_batched_sweep_saves_one_result_per_class(tiny_resnet, tmp_path):
    summary = piikit.sweep(tiny_resnet, "3-5", "preview", tmp_path, batch=2, device="cpu", progress=False,
                           sheets=False, **TINY)
    assert summary.done == 3
    metas = [json.loads(p.read_text()) for p in sorted((tmp_path / "resnet").glob("*.result.json"))]
    assert [m["sweep"]["batch_targets"] for m in metas] == [[3, 4], [3, 4], [5]]
    assert [m["targets"][0]["index"] for m in metas] == [3, 4, 5]
    assert not (tmp_path / "resnet" / "contact_sheet.png").exists()


def test_bad_class_fails_before_any_work(tiny_resnet, tmp_path):
    with pytest.raises(piikit.errors.UnknownClassError, match="volcano"):
        piikit.sweep(tiny_resnet, [1, "volcanoo"], "preview", tmp_path / "x", device="cpu", progress=False, **TINY)
    assert not (tmp_path / "x").exists()


def _env() -> dict[str, str]:
    # One OpenMP thread per process, waiting passively: the machine has 2 cores.
    return dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")


def _torchrun(out: Path, classes: str, *extra: str, nproc: int = 2) -> list[str]:
    # --standalone: a rendezvous on a free local port, so parallel test runs never collide.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "piikit", "sweep", *CLI_SETTINGS, "--classes", classes, "--out", str(out), *extra]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_for_lines(out: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(_manifest(out)) < n:
        assert proc.poll() is None, "the sweep ended before it could be stopped midway"
        assert time.monotonic() < deadline, "no class finished in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_torchrun_two_processes_write_every_class_once(tmp_path):
    out = tmp_path / "runs"
    done = subprocess.run(_torchrun(out, "0-4"), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _manifest(out)
    assert sorted(r["class"] for r in rows) == [0, 1, 2, 3, 4]  # each exactly once
    assert {r["rank"] for r in rows} == {0, 1}  # both ranks worked
    folder = out / "efficientnet_lite0"
    assert len(list(folder.glob("*.png"))) == 6  # 5 classes + the contact sheet
    assert (folder / "contact_sheet.png").is_file() and not (out / ".tmp").exists()

    refused = subprocess.run(_torchrun(out, "0-4", "--ensemble", "3"), cwd=REPO, env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode != 0 and "other settings (ensemble 2 -> 3)" in refused.stderr
    assert len(_manifest(out)) == 5


@pytest.mark.slow
def test_torchrun_killed_midway_resumes_without_redoing(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen(_torchrun(out, "0-7", "--steps-per-stage", "20"), cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_lines(out, 1, proc)
    finally:
        # A crash of everything: no process gets to clean up. torchrun starts its workers
        # in sessions of their own, so they are killed one by one, after the launcher.
        workers = _children(proc.pid)
        proc.kill()
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
    folder = out / "efficientnet_lite0"
    first = _mtimes(folder)
    assert 1 <= len(first) < 8

    done = subprocess.run(_torchrun(out, "0-7", "--steps-per-stage", "20"), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _mtimes(folder)
    assert len(after) == 8 and all(after[name] == t for name, t in first.items())  # finished ones untouched
    assert sorted(r["class"] for r in _manifest(out)) == list(range(8))  # every class logged once
    assert not (out / ".tmp").exists()


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_finished_classes(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "piikit", "sweep", *CLI_SETTINGS, "--classes", "0-5",
                             "--steps-per-stage", "20", "--out", str(out)],
                            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_lines(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted; finished classes are saved" in stderr
    finished = _mtimes(out / "efficientnet_lite0")
    assert 1 <= len(finished) < 6 and len(_manifest(out)) == len(finished)
    assert not list(out.rglob("*.tmp"))  # temporaries unique to the process, removed when it stops


def test_cli_sweep_reads_specs_and_files_and_rejects_bad_names(tmp_path, capsys):
    from piikit.interfaces.cli import build_parser, main

    args = build_parser().parse_args(["sweep", "--classes", "0-2", "--micro-batch", "auto", "--batch", "2"])
    assert (args.classes, args.micro_batch, args.batch) == (["0-2"], "auto", 2)
    listing = tmp_path / "classes.txt"
    listing.write_text("tench\n5-6\n\nvolcanoo\n")
    assert main(["sweep", "--classes-file", str(listing), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    assert "volcano" in capsys.readouterr().err  # the nearest name is suggested
    assert not (tmp_path / "runs").exists()


def test_sweep_as_a_library_call_changes_no_process_setting(tiny_resnet, tmp_path, monkeypatch):
    """Threads, the CUDA device and signal handlers belong to the command (runner_process)."""
    calls = []
    monkeypatch.setattr(signal, "signal", lambda *a: calls.append(("signal", a)))
    monkeypatch.setattr(torch, "set_num_threads", lambda *a: calls.append(("threads", a)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda *a: calls.append(("cuda", a)))
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # a CPU rank sharing its cores: the command would split them
    piikit.sweep(tiny_resnet, [1], "preview", tmp_path / "runs", device="cpu", progress=False, sheets=False, **TINY)
    assert calls == []


def test_a_folder_recorded_before_polish_steps_was_renamed_has_the_same_settings():
    from piikit.interfaces.sweep_store import differences, settings_of

    now = settings_of(piikit.make_config("quick"), seed=0, batch=1)
    before = json.loads(json.dumps(now))
    before["config"]["polish_steps"] = before["config"].pop("refine_steps")
    before["config"]["polish_bn_prior"] = before["config"].pop("refine_bn_prior")
    assert differences(before, now) == []
    before["config"]["polish_steps"] = 7
    assert differences(before, now) == ["refine_steps 7 -> 50"]
