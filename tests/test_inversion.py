"""The step loop end to end: real Lite0 weights, the plug-in property on CNN / ViT / MLP
models, reproducibility, chunked runs, micro-batching, interruption and failures."""

import pytest
import torch

import piikit
from piikit import Callback, Inversion, InversionFailed, invert

TINY = dict(stages=2, steps_per_stage=6, ensemble=2, image_size=64, lr=0.1)


@pytest.fixture(scope="module")
def lite0_preview(lite0, device):
    return invert(lite0, ["volcano", "goldfinch", 1], "preview", seed=0, device=device, progress=False)


@pytest.mark.slow
def test_preview_on_real_weights_raises_target_probability(lite0_preview):
    r = lite0_preview
    start, end = r.history["prob"][0], r.final_probs
    assert r.images.shape == (3, 3, 224, 224)
    assert r.images.min() >= 0 and r.images.max() <= 1 and torch.isfinite(r.images).all()
    # Each class, from ~1/1000 at the start, at least 10x more likely at the end.
    assert (end > 10 * start).all(), (start, end)
    assert end.mean() > 0.05


@pytest.mark.slow
def test_multi_target_batch_gives_each_target_its_own_image(lite0_preview):
    r = lite0_preview
    assert r.targets == [980, 11, 1]
    assert r.labels == ["980: volcano", "11: goldfinch", "1: goldfish"]
    diffs = [(r.images[i] - r.images[j]).abs().mean() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert min(diffs) > 0.05
    # Each image is most probable for its own target among the batch's targets.
    with torch.no_grad():
        probs = piikit.load_model("efficientnet_lite0")(r.images).softmax(-1)[:, r.targets]
    assert torch.equal(probs.argmax(1), torch.arange(3))


def test_result_records_history_and_stage_snapshots(lite0_preview):
    r = lite0_preview
    cfg = r.config
    assert r.steps_done == cfg.total_steps and not r.interrupted
    assert r.history["loss"].shape == (cfg.total_steps,)
    assert r.history["prob"].shape == (cfg.total_steps, 3)
    assert r.history["stage"].tolist() == [s for s in range(cfg.stages) for _ in range(cfg.steps_per_stage)]
    lr = r.history["lr"]
    assert lr[0] == pytest.approx(cfg.lr) and lr[cfg.steps_per_stage] == pytest.approx(cfg.lr)  # re-made per stage
    assert lr[cfg.steps_per_stage - 1] < 0.05 * cfg.lr  # cosine towards 0 within the stage
    assert [s.shape[-1] for s in r.snapshots] == [112, 168, 224]


@pytest.mark.parametrize("family", ["cnn", "vit", "mixer", "resmlp"])
def test_plug_in_property_same_config_raises_the_target_logit(tiny_models, family, device):
    model = piikit.load_model(tiny_models[family])
    target = 7
    generator = torch.Generator().manual_seed(1)
    noise = torch.rand(1, 3, *model.input_size, generator=generator)
    with torch.no_grad():
        before = model(noise.to(next(model.parameters()).device))[0]
    r = invert(model, target, "preview", seed=0, device=device, progress=False)
    with torch.no_grad():
        after = model.to(device)(r.images.to(device))[0].cpu()
    # The target's margin over the mean logit grows, whatever the architecture.
    assert after[target] - after.mean() > before[target].cpu() - before.mean().cpu() + 0.1
    assert r.images.shape[-1] == model.input_size[0]


def test_same_seed_same_images_and_different_seed_differs(tiny_cnn, device):
    a = invert(tiny_cnn, [3, 4], "preview", seed=5, device=device, progress=False, **TINY)
    b = invert(tiny_cnn, [3, 4], "preview", seed=5, device=device, progress=False, **TINY)
    c = invert(tiny_cnn, [3, 4], "preview", seed=6, device=device, progress=False, **TINY)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_running_in_chunks_equals_one_run(tiny_cnn, device):
    whole = invert(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, **TINY)
    inv = Inversion(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, **TINY)
    partial = inv.run(max_steps=5)
    assert partial.interrupted and partial.steps_done == 5
    while not inv.done:
        inv.run(max_steps=4)
    assert torch.equal(inv.result().images, whole.images)


def test_micro_batching_is_exact(tiny_cnn, device):
    """Slicing the K×e samples into passes accumulates exactly the full-batch gradient."""
    grads, losses = [], []
    for micro_batch in (None, 3):
        inv = Inversion(tiny_cnn, [3, 9], "preview", seed=0, device=device, progress=False,
                        micro_batch=micro_batch, **dict(TINY, ensemble=4))
        inv.run(max_steps=1)
        grads.append(inv.image.grad.clone())
        losses.append(inv.result().history["loss"])
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-9)
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)


def test_schedules_all_run(tiny_cnn, device):
    for mode in ("zoom", "center", "none"):
        r = invert(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, schedule=mode, **TINY)
        assert r.images.shape == (1, 3, 64, 64)


def test_callbacks_see_every_step_and_stage(tiny_cnn, device):
    seen = {"start": 0, "step": [], "end": 0, "final": None}

    class Recorder(Callback):
        def on_stage_start(self, state):
            seen["start"] += 1

        def on_step_end(self, state):
            seen["step"].append((state.stage, state.step, state.image.shape[-1]))

        def on_stage_end(self, state):
            seen["end"] += 1

        def on_end(self, result):
            seen["final"] = result

    plain_calls = []
    r = invert(tiny_cnn, 3, "preview", device=device, progress=False, callbacks=[Recorder(), plain_calls.append], **TINY)
    assert seen["start"] == seen["end"] == 2
    assert len(seen["step"]) == len(plain_calls) == 12
    assert seen["step"][0] == (0, 1, 43) and seen["step"][-1] == (1, 6, 64)  # 64 px in 2 stages: 43, 64
    assert seen["final"] is r


def test_ctrl_c_returns_the_partial_result(tiny_cnn, device):
    def interrupt(state):
        if state.global_step == 7:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted"):
        r = invert(tiny_cnn, 3, "preview", device=device, progress=False, callbacks=[interrupt], **TINY)
    assert r.interrupted and r.stop_reason == "interrupted" and r.steps_done == 7
    assert r.images.shape == (1, 3, 64, 64) and len(r.snapshots) == 1
    assert r.history["loss"].shape == (7,)


def test_a_callback_can_stop_the_run(tiny_cnn, device):
    r = invert(tiny_cnn, 3, "preview", device=device, progress=False,
               callbacks=[lambda s: s.stop() if s.global_step == 3 else None], **TINY)
    assert r.interrupted and r.stop_reason == "stopped" and r.steps_done == 3


def test_user_module_is_restored_after_the_run(device):
    import timm

    model = timm.create_model("test_resnet").train()
    invert(model, 3, "preview", device=device, progress=False, **TINY)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())


class _Exploding(torch.nn.Module):
    def __init__(self, after: int, error: type[BaseException] | None = None) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 10, 3)
        self.calls, self.after, self.error = 0, after, error

    def forward(self, x):
        self.calls += 1
        out = self.conv(x).mean(dim=(2, 3))
        if self.calls > self.after:
            if self.error is not None:
                raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
            return out * float("nan")
        return out


def test_nan_loss_raises_with_the_last_finite_images(device):
    model = piikit.load_model(_Exploding(after=8), input_size=32)
    with pytest.raises(InversionFailed, match="non-finite") as info:
        invert(model, 3, "preview", device=device, progress=False, **dict(TINY, image_size=32))
    partial = info.value.partial
    assert partial is not None and partial.stop_reason == "nonfinite"
    assert torch.isfinite(partial.images).all() and partial.steps_done > 0


def test_out_of_memory_suggests_micro_batching(device):
    model = piikit.load_model(_Exploding(after=4, error=torch.OutOfMemoryError), input_size=32)
    with pytest.raises(InversionFailed, match="micro_batch=1") as info:
        invert(model, 3, "preview", device=device, progress=False, **dict(TINY, image_size=32))
    assert info.value.partial.stop_reason == "oom"
    assert info.value.partial.images.shape[0] == 1


def test_bad_targets_fail_before_any_work(lite0):
    with pytest.raises(piikit.UnknownClassError, match="volcano"):
        invert(lite0, ["volcanoo"], "preview")
    with pytest.raises(piikit.UnknownClassError, match="out of range"):
        invert(lite0, 1000, "preview")
    with pytest.raises(TypeError, match="ensemble"):
        invert(lite0, 1, "preview", ensembel=3)
