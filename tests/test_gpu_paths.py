"""The GPU paths, checked on the CPU where they can be and on CUDA with ``--device cuda``
(benchmarks/gpu_check.sh runs this file so): the micro-batch estimate from memory numbers,
target batching, a step that runs out of memory redone in smaller slices from the same draws,
the sweep's background writer, presets unchanged on a CPU, the NaN check read a check late
and ``compile_model`` on CUDA."""

from __future__ import annotations

import json
import threading
import time

import pytest
import timm
import torch

import piikit
from piikit.engine.config import PRESETS, for_device
from piikit.engine.inversion import Inversion
from piikit.engine.memory import RESERVE, auto_micro_batch, fitting_batch, record_out_of_memory, target_batch
from piikit.errors import InversionFailed
from piikit.interfaces.sweep_store import BackgroundWriter

TINY = dict(image_size=32, stages=2, steps_per_stage=3)


class _Limited(torch.nn.Module):
    """Runs out of memory on batches larger than ``limit`` (settable between steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 10, 3)
        self.limit, self.batches = 1, []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.conv(x).mean(dim=(2, 3))


def _limited() -> tuple[_Limited, piikit.Classifier]:
    net = _Limited()
    model = piikit.load_model(net, input_size=32)
    net.batches = []
    return net, model


# ----------------------------------------------------------------------------- sizes from numbers
def test_fitting_batch_divides_free_memory_less_the_reserve():
    assert fitting_batch(free=100e9, per_sample=40e6, cap=10_000) == int(100e9 * (1 - RESERVE) // 40e6)
    assert fitting_batch(free=100e9, per_sample=40e6, cap=128) == 128  # never more than a step needs
    assert fitting_batch(free=10e6, per_sample=40e6, cap=128) == 1  # the probe then finds whether 1 fits
    assert fitting_batch(free=1e9, per_sample=0, cap=64) == 64  # nothing measured: start from the cap
    assert fitting_batch(free=1e9, per_sample=1e8, cap=64, reserve=0.5) == 5


def test_target_batch_fills_a_step_with_samples():
    assert target_batch(ensemble=32, classes=1000) == 32
    assert target_batch(ensemble=32, classes=1000, full=2048) == 64
    assert target_batch(ensemble=3, classes=1000) == 342
    assert target_batch(ensemble=32, classes=7) == 7
    assert target_batch(ensemble=4096, classes=1000) == 1


def test_a_recorded_out_of_memory_keeps_later_probes_below_it(monkeypatch):
    monkeypatch.setattr("piikit.engine.memory.CPU_MICRO_BATCH", 1000)
    net, model = _limited()
    net.limit = 100
    assert auto_micro_batch(model, 64, 32, "cpu") == 64
    record_out_of_memory(model, 64, 32, "cpu")
    assert auto_micro_batch(model, 64, 32, "cpu") == 32  # from what was recorded, without a probe
    assert auto_micro_batch(model, 16, 32, "cpu") == 16
    record_out_of_memory(model, 1, 32, "cpu")
    with pytest.raises(torch.OutOfMemoryError, match="not even one"):
        auto_micro_batch(model, 8, 32, "cpu")


# ----------------------------------------------------------------------------- the step's back-off
class _Shrink(piikit.Callback):
    """Lowers the model's memory limit when the first stage starts (after the probe)."""

    def __init__(self, net: _Limited, limit: int) -> None:
        self.net, self.limit = net, limit

    def on_stage_start(self, state):
        self.net.limit = self.limit


def test_a_step_out_of_memory_is_redone_in_smaller_slices_from_the_same_draws(monkeypatch):
    monkeypatch.setattr("piikit.engine.memory.CPU_MICRO_BATCH", 1000)
    net, model = _limited()
    net.limit = 8
    options = dict(device="cpu", progress=False, ensemble=4, seed=5, **TINY)
    backed = piikit.invert(model, [1, 2], "preview", micro_batch="auto", callbacks=[_Shrink(net, 3)], **options)
    probe = net.batches.index(8)
    assert net.batches[probe + 1 : probe + 4] == [8, 4, 2]  # the first step: 8 and 4 ran out, 2 fits
    assert max(net.batches[probe + 4 :]) == 2
    net.limit = 100
    fixed = piikit.invert(model, [1, 2], "preview", micro_batch=2, **options)
    assert torch.equal(backed.images, fixed.images)  # the same draws, the same slices: the same images
    assert torch.equal(backed.history["loss"], fixed.history["loss"])


def test_a_fixed_micro_batch_still_fails_with_a_hint():
    net, model = _limited()
    net.limit = 3
    with pytest.raises(InversionFailed, match="micro_batch=4"):
        piikit.invert(model, [1, 2], "preview", device="cpu", progress=False, ensemble=4, micro_batch=8, **TINY)


# ----------------------------------------------------------------------------- CPU results unchanged
def test_presets_keep_their_micro_batch_off_cuda_and_take_auto_on_it():
    for name, config in PRESETS.items():
        for device in ("cpu", "mps"):
            assert for_device(config, device, micro_batch_given=False) is config, name
        assert for_device(config, "cuda", micro_batch_given=False).micro_batch == "auto"
        assert for_device(config, "cuda", micro_batch_given=True) is config


def test_a_cpu_run_by_preset_name_is_the_run_of_its_config():
    model = piikit.load_model(timm.create_model("test_resnet", pretrained=False))
    options = dict(device="cpu", progress=False, seed=2, image_size=32, stages=2, steps_per_stage=2, refine_steps=2)
    inv = Inversion(model, [3, 4], "quick", **options)
    assert inv.config.micro_batch == 8 and not inv._auto_batch
    named = inv.run()
    as_config = piikit.invert(model, [3, 4], PRESETS["quick"], **options)
    assert torch.equal(named.images, as_config.images)


# ----------------------------------------------------------------------------- the sweep's writer
def test_writer_runs_every_job_in_order_and_close_waits_for_them():
    done: list[int] = []

    def job(i: int):
        def run():
            time.sleep(0.002 * (i % 3))
            done.append(i)
        return run

    with BackgroundWriter(backlog=2) as writer:
        for i in range(20):
            writer.submit(job(i))
        main_thread = threading.current_thread()
    assert done == list(range(20))
    assert main_thread is threading.main_thread()


def test_writer_errors_surface_and_later_jobs_still_run():
    done: list[int] = []

    def fail():
        raise OSError("disk full")

    writer = BackgroundWriter()
    writer.submit(fail)
    writer.submit(lambda: done.append(1))
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    assert done == [1]  # a job after a failed one runs (it releases its own claims)
    writer = BackgroundWriter()
    writer.submit(fail)
    time.sleep(0.2)
    with pytest.raises(OSError, match="disk full"):
        writer.submit(lambda: done.append(2))  # the next submit raises it
    writer.close()


def test_writer_finishes_its_jobs_when_the_block_is_interrupted():
    done: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter() as writer:
            writer.submit(lambda: (time.sleep(0.1), done.append(1)))
            raise KeyboardInterrupt
    assert done == [1]


def test_sweep_batch_auto_is_one_on_a_cpu_and_a_folder_keeps_its_own(tmp_path):
    model = piikit.load_model(timm.create_model("test_resnet", pretrained=False))
    options = dict(device="cpu", progress=False, sheets=False, image_size=32, stages=1, steps_per_stage=1, ensemble=2)
    out = tmp_path / "cpu"
    summary = piikit.sweep(model, "0-2", "preview", out, batch="auto", **options)
    assert summary.done == 3
    assert json.loads((out / "settings.json").read_text())["settings"]["batch"] == 1
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["class"] for line in lines] == [0, 1, 2]  # written in order, none lost
    made = tmp_path / "made"
    piikit.sweep(model, "0-3", "preview", made, batch=2, **options)
    again = piikit.sweep(model, "0-5", "preview", made, batch="auto", **options)  # resumes with batch 2
    assert again.skipped == 4 and again.done == 2


# ----------------------------------------------------------------------------- CUDA only
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class _Exploding(torch.nn.Module):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 10, 3)
        self.calls, self.after = 0, after

    def forward(self, x):
        self.calls += 1
        out = self.conv(x).mean(dim=(2, 3))
        return out * float("nan") if self.calls > self.after else out


@cuda
def test_cuda_nan_check_read_a_check_late_keeps_a_finite_image(device):
    if device.type != "cuda":
        pytest.skip("run with --device cuda")
    model = piikit.load_model(_Exploding(after=40), input_size=32)
    with pytest.raises(InversionFailed, match="non-finite at step 50") as info:
        piikit.invert(model, 3, "preview", device=device, progress=False, image_size=32, stages=1,
                      steps_per_stage=200)
    partial = info.value.partial
    assert torch.isfinite(partial.images).all() and partial.stop_reason == "nonfinite"


@cuda
def test_cuda_presets_run_with_auto_and_compile_matches_eager(device):
    if device.type != "cuda":
        pytest.skip("run with --device cuda")
    from piikit.engine.memory import per_sample_bytes

    model = piikit.load_model("efficientnet_lite0", device=device)
    assert (per_sample_bytes(model, 64, device) or 0) > 0
    options = dict(device=device, progress=False, image_size=64, stages=2, steps_per_stage=3)
    inv = Inversion(model, [1, 2], "quick", **options)
    assert inv.config.micro_batch == "auto"
    eager = inv.run()
    compiled = piikit.invert(model, [1, 2], "quick", compile_model=True, **options)
    assert (eager.images - compiled.images).abs().max() < 0.05  # rounding, not another image
