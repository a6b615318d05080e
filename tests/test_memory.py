"""micro_batch="auto": the probe backs off on out-of-memory, remembers its answer, and a run
with it gives the same images as the full batch."""

from __future__ import annotations

import pytest
import torch

import piikit
from piikit.engine.memory import CPU_MICRO_BATCH, auto_micro_batch

TINY = dict(image_size=32, stages=2, steps_per_stage=3)


class _Limited(torch.nn.Module):
    """A model that runs out of memory on batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 10, 3)
        self.limit, self.batches = limit, []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.conv(x).mean(dim=(2, 3))


def _limited(limit: int) -> tuple[_Limited, piikit.Classifier]:
    net = _Limited(limit=1)
    model = piikit.load_model(net, input_size=32)  # probes the input with one image
    net.limit, net.batches = limit, []
    return net, model


def test_probe_halves_until_it_fits_and_remembers(monkeypatch):
    # Pretend the CPU is an accelerator so the probe may start at the full batch.
    monkeypatch.setattr("piikit.engine.memory.CPU_MICRO_BATCH", 1000)
    net, model = _limited(5)
    assert auto_micro_batch(model, 32, 32, "cpu") == 4  # 32 -> 16 -> 8 -> 4
    assert net.batches == [32, 16, 8, 4]
    # Remembered: the same question, or a smaller one, probes nothing.
    assert auto_micro_batch(model, 32, 32, "cpu") == 4
    assert auto_micro_batch(model, 3, 32, "cpu") == 3
    # A larger ensemble never retries what failed before.
    assert auto_micro_batch(model, 64, 32, "cpu") == 4
    assert net.batches == [32, 16, 8, 4]
    # Another image size is another question.
    auto_micro_batch(model, 8, 48, "cpu")
    assert net.batches[4:] == [8, 4]


def test_cpu_starts_at_a_cache_friendly_size():
    net, model = _limited(100)
    assert auto_micro_batch(model, 32, 32, "cpu") == CPU_MICRO_BATCH
    assert net.batches == [CPU_MICRO_BATCH]


def test_nothing_fits_raises_out_of_memory():
    _, model = _limited(0)
    for _ in range(2):  # the second time from what was remembered
        with pytest.raises(torch.OutOfMemoryError, match="not even one 32px sample"):
            auto_micro_batch(model, 8, 32, "cpu")


def test_probe_leaves_the_model_as_it_was():
    net, model = _limited(2)
    net.train()
    auto_micro_batch(model, 4, 32, "cpu")
    assert net.training and all(p.requires_grad and p.grad is None for p in net.parameters())


def test_auto_run_equals_the_full_batch(monkeypatch):
    monkeypatch.setattr("piikit.engine.memory.CPU_MICRO_BATCH", 1000)
    net, model = _limited(6)  # k=2 images x ensemble 4 = 8 samples: auto must slice them
    auto = piikit.invert(model, [1, 2], "preview", device="cpu", progress=False, ensemble=4, micro_batch="auto", **TINY)
    probe = net.batches.index(8)
    assert net.batches[probe + 1] == 4 and max(net.batches[probe + 1 :]) == 4  # after the probe, slices of 4
    net.limit = 100
    full = piikit.invert(model, [1, 2], "preview", device="cpu", progress=False, ensemble=4, **TINY)
    assert auto.config.micro_batch == "auto" and auto.steps_done == full.steps_done
    torch.testing.assert_close(auto.images, full.images, atol=1e-5, rtol=0)


def test_micro_batch_setting_is_validated():
    assert piikit.make_config("paper", micro_batch="auto").micro_batch == "auto"
    for bad in ("big", 0, True):
        with pytest.raises(ValueError, match="micro_batch"):
            piikit.make_config("paper", micro_batch=bad)
