"""``polish_steps``: DeepInversion refinement as the last phase of a Plug-In Inversion run.

The polish is a run of its own (``refine()``'s ``"refine"`` preset) started from the stages'
final image; these tests check that the whole reads as one run: its steps, stages, history,
callbacks, chunking, stopping and failures. Whether polishing makes images better is measured
in ``docs/benchmarks.md`` (48 classes x 2 seeds), not here.
"""

import pytest
import torch

from piikit import Callback, Inversion, InversionFailed, invert
from piikit.engine.features import ChannelObjective

TINY = dict(stages=2, steps_per_stage=6, ensemble=2, image_size=64, lr=0.1, polish_steps=4)


def test_the_polish_runs_on_as_one_more_stage(tiny_cnn, reproducible_device):
    seen = {"steps": [], "starts": [], "ends": 0}

    class Recorder(Callback):
        def on_stage_start(self, state):
            seen["starts"].append(state.stage)

        def on_step_end(self, state):
            seen["steps"].append((state.stage, state.global_step, state.total_steps))

        def on_end(self, result):
            seen["ends"] += 1

    r = invert(tiny_cnn, [3, 4], "preview", seed=0, device=reproducible_device, progress=False, callbacks=[Recorder()], **TINY)
    without = invert(tiny_cnn, [3, 4], "preview", seed=0, device=reproducible_device, progress=False, **dict(TINY, polish_steps=0))
    assert r.steps_done == r.config.total_steps == 16 and not r.interrupted
    assert r.history["stage"].tolist() == [0] * 6 + [1] * 6 + [2] * 4
    assert len(r.snapshots) == 3 and r.images.shape == (2, 3, 64, 64)
    # The test ResNet has BatchNorm: the polish uses its statistics prior, which the stages never had.
    assert torch.isnan(r.history["bn"][:12]).all() and torch.isfinite(r.history["bn"][12:]).all()
    assert seen["steps"][-1] == (2, 16, 16) and [s[1] for s in seen["steps"]] == list(range(1, 17))
    assert seen["starts"] == [0, 1, 2] and seen["ends"] == 1
    assert r.config.polish_steps == 4 and r.seed == 0
    # The stages are the run without a polish; the polish then moves the image.
    assert torch.equal(r.snapshots[1], without.images)
    assert not torch.equal(r.images, without.images)


def test_a_polished_run_in_chunks_equals_one_run(tiny_cnn, reproducible_device):
    whole = invert(tiny_cnn, 3, "preview", seed=0, device=reproducible_device, progress=False, **TINY)
    inv = Inversion(tiny_cnn, 3, "preview", seed=0, device=reproducible_device, progress=False, **TINY)
    sizes = []
    while not inv.done:
        part = inv.run(max_steps=5)  # 5, 10, 15 cross the stage and polish boundaries
        sizes.append((part.steps_done, part.interrupted))
    assert sizes == [(5, True), (10, True), (15, True), (16, False)]
    assert torch.equal(inv.result().images, whole.images)


def test_a_model_without_batchnorm_is_polished_with_tv_and_l2_only(tiny_vit, device, recwarn):
    r = invert(tiny_vit, 3, "preview", seed=0, device=device, progress=False, **TINY)
    assert r.steps_done == 16 and "bn" not in r.history and torch.isfinite(r.history["tv"][12:]).all()
    assert not [w for w in recwarn if "BatchNorm" in str(w.message)]


def test_without_its_batchnorm_prior_the_polish_runs_on_the_folded_model(tiny_cnn, device):
    r = invert(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, fold_bn=True, polish_bn_prior=False,
               **TINY)
    assert r.steps_done == 16 and "bn" not in r.history and torch.isfinite(r.history["tv"][12:]).all()
    inv = Inversion(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, fold_bn=True,
                    polish_bn_prior=False, **TINY)
    inv.run()
    assert inv._polish._net is not inv._polish.model  # BatchNorm folded away: no hook needs it
    with_prior = Inversion(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, fold_bn=True, **TINY)
    with_prior.run()
    assert with_prior._polish._net is with_prior._polish.model


def test_stopping_in_the_polish_keeps_the_work_and_resumes(tiny_cnn, device):
    inv = Inversion(tiny_cnn, 3, "preview", seed=0, device=device, progress=False,
                    callbacks=[lambda s: s.stop() if s.global_step == 14 else None], **TINY)
    r = inv.run()
    assert r.interrupted and r.stop_reason == "stopped" and r.steps_done == 14
    assert r.history["loss"].shape == (14,)
    done = inv.run()
    assert not done.interrupted and done.steps_done == 16


def test_ctrl_c_in_the_polish_counts_steps_of_the_whole_run(tiny_cnn, device):
    def interrupt(state):
        if state.global_step == 13:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match=r"interrupted at step 13/16"):
        r = invert(tiny_cnn, 3, "preview", device=device, progress=False, callbacks=[interrupt], **TINY)
    assert r.interrupted and r.stop_reason == "interrupted" and r.steps_done == 13


def test_a_failure_in_the_polish_keeps_the_whole_partial_run(tiny_cnn, device):
    class Poisoned(torch.nn.Module):
        """The test ResNet, whose logits turn NaN once the polish has begun."""

        def __init__(self):
            super().__init__()
            self.net, self.poisoned = tiny_cnn, False

        def forward(self, x):
            return self.net(x) * (float("nan") if self.poisoned else 1.0)

    model = Poisoned()
    poison = lambda state: setattr(model, "poisoned", state.global_step >= 13)  # noqa: E731
    with pytest.raises(InversionFailed, match="non-finite") as caught:
        invert(model, 3, "preview", device=device, progress=False, callbacks=[poison], **TINY)
    partial = caught.value.partial
    assert partial.interrupted and partial.history["loss"].shape[0] >= 13 and len(partial.snapshots) == 2
    assert partial.history["stage"].max() == 2 and torch.isfinite(partial.images).all()


def test_a_feature_objective_cannot_be_polished(tiny_cnn, device):
    with pytest.raises(ValueError, match="polish_steps"):
        Inversion(tiny_cnn, None, "preview", objective=ChannelObjective("layer1", 0), device=device, **TINY)
