"""``refine_steps``: DeepInversion refinement as the last phase of a Plug-In Inversion run.

The refine phase is DeepInversion's ``"refine"`` preset (the phases :func:`piikit.refine`
runs, :func:`piikit.engine.phases.deepinversion_phases`) started from the stages' final image;
these tests check that the whole reads as one run: its steps, stages, history, callbacks,
progress, chunking, stopping and failures. Whether refining makes images better is measured
in ``docs/benchmarks.md`` (48 classes x 2 seeds), not here.
"""

import pytest
import torch

from piikit import Callback, Inversion, InversionFailed, invert, make_config
from piikit.engine.features import ChannelObjective

TINY = dict(stages=2, steps_per_stage=6, ensemble=2, image_size=64, lr=0.1, refine_steps=4)


def test_the_refine_phase_runs_on_as_one_more_stage(tiny_cnn, reproducible_device):
    seen = {"steps": [], "starts": [], "ends": 0}

    class Recorder(Callback):
        def on_stage_start(self, state):
            seen["starts"].append(state.stage)

        def on_step_end(self, state):
            seen["steps"].append((state.stage, state.global_step, state.total_steps))

        def on_end(self, result):
            seen["ends"] += 1

    r = invert(tiny_cnn, [3, 4], "preview", seed=0, device=reproducible_device, progress=False, callbacks=[Recorder()], **TINY)
    without = invert(tiny_cnn, [3, 4], "preview", seed=0, device=reproducible_device, progress=False, **dict(TINY, refine_steps=0))
    assert r.steps_done == r.config.total_steps == 16 and not r.interrupted
    assert r.history["stage"].tolist() == [0] * 6 + [1] * 6 + [2] * 4
    assert len(r.snapshots) == 3 and r.images.shape == (2, 3, 64, 64)
    # The test ResNet has BatchNorm: the refine phase uses its statistics prior, which the stages never had.
    assert torch.isnan(r.history["bn"][:12]).all() and torch.isfinite(r.history["bn"][12:]).all()
    assert seen["steps"][-1] == (2, 16, 16) and [s[1] for s in seen["steps"]] == list(range(1, 17))
    assert seen["starts"] == [0, 1, 2] and seen["ends"] == 1
    assert r.config.refine_steps == 4 and r.seed == 0
    # The stages are the run without a refine phase; the refine phase then moves the image.
    assert torch.equal(r.snapshots[1], without.images)
    assert not torch.equal(r.images, without.images)


def test_progress_lines_count_the_refine_phase_as_one_more_stage_of_one_run(tiny_cnn, device, capsys):
    invert(tiny_cnn, 3, "preview", seed=0, device=device, progress=True, **TINY)
    lines = capsys.readouterr().err.splitlines()  # not a terminal: one line per stage
    assert [line.split(": ", 1)[1].split(" done, ")[0] for line in lines] == [
        "stage 1/3 (43 px)", "stage 2/3 (64 px)", "stage 3/3 (64 px, DeepInversion)"]  # the later phase named
    assert [line.split(" done, ")[1].split(",")[0] for line in lines] == ["step 6/16", "step 12/16", "step 16/16"]


def test_the_refine_tv_weight_reaches_the_refine_phase_only(tiny_cnn, reproducible_device):
    from piikit.engine.phases import refine_phase_config

    assert refine_phase_config(make_config("quick", refine_tv_weight=0.05)).tv_weight == 0.05
    assert refine_phase_config(make_config("quick")).tv_weight == 0.01  # the "refine" preset's
    light, heavy = (invert(tiny_cnn, 3, "preview", seed=0, device=reproducible_device, progress=False,
                           refine_tv_weight=w, **TINY) for w in (0.01, 10.0))
    assert torch.equal(light.snapshots[1], heavy.snapshots[1])  # the same stages
    assert not torch.equal(light.images, heavy.images)


def test_a_refined_run_in_chunks_equals_one_run(tiny_cnn, reproducible_device):
    whole = invert(tiny_cnn, 3, "preview", seed=0, device=reproducible_device, progress=False, **TINY)
    inv = Inversion(tiny_cnn, 3, "preview", seed=0, device=reproducible_device, progress=False, **TINY)
    sizes = []
    while not inv.done:
        part = inv.run(max_steps=5)  # 5, 10, 15 cross the stage and phase boundaries
        sizes.append((part.steps_done, part.interrupted))
    assert sizes == [(5, True), (10, True), (15, True), (16, False)]
    assert torch.equal(inv.result().images, whole.images)


def test_a_model_without_batchnorm_is_refined_with_tv_and_l2_and_a_warning(tiny_vit, device):
    # One rule for models without BatchNorm, as refine(): warn (the prior is unavailable)
    # unless the prior was turned off.
    with pytest.warns(UserWarning, match="no BatchNorm layers"):
        r = invert(tiny_vit, 3, "preview", seed=0, device=device, progress=False, **TINY)
    assert r.steps_done == 16 and "bn" not in r.history and torch.isfinite(r.history["tv"][12:]).all()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        invert(tiny_vit, 3, "preview", seed=0, device=device, progress=False, refine_bn_prior=False, **TINY)


def test_the_refine_phase_runs_on_the_folded_model_with_or_without_its_batchnorm_prior(tiny_cnn, device):
    r = invert(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, fold_bn=True, refine_bn_prior=False,
               **TINY)
    assert r.steps_done == 16 and "bn" not in r.history and torch.isfinite(r.history["tv"][12:]).all()
    inv = Inversion(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, fold_bn=True,
                    refine_bn_prior=False, **TINY)
    inv.run()
    assert inv.phase.name == "DeepInversion" and inv._net is not inv.model  # BatchNorm folded away: no hook needs it
    # the BatchNorm prior reads the folded convolutions' outputs (test_folding checks the values)
    with_prior = Inversion(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, fold_bn=True, **TINY)
    bn = with_prior.run().history["bn"][12:]
    assert with_prior._net is not with_prior.model and torch.isfinite(bn).all() and (bn > 0).all()


def test_stopping_in_the_refine_phase_keeps_the_work_and_resumes(tiny_cnn, device):
    inv = Inversion(tiny_cnn, 3, "preview", seed=0, device=device, progress=False,
                    callbacks=[lambda s: s.stop() if s.global_step == 14 else None], **TINY)
    r = inv.run()
    assert r.interrupted and r.stop_reason == "stopped" and r.steps_done == 14
    assert r.history["loss"].shape == (14,)
    done = inv.run()
    assert not done.interrupted and done.steps_done == 16


def test_ctrl_c_in_the_refine_phase_counts_steps_of_the_whole_run(tiny_cnn, device):
    def interrupt(state):
        if state.global_step == 13:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match=r"interrupted at step 13/16"):
        r = invert(tiny_cnn, 3, "preview", device=device, progress=False, callbacks=[interrupt], **TINY)
    assert r.interrupted and r.stop_reason == "interrupted" and r.steps_done == 13


def test_a_failure_in_the_refine_phase_keeps_the_whole_partial_run(tiny_cnn, device):
    class Poisoned(torch.nn.Module):
        """The test ResNet, whose logits turn NaN once the refine phase has begun."""

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


def test_a_feature_objective_cannot_be_refined(tiny_cnn, device):
    with pytest.raises(ValueError, match="refine_steps"):
        Inversion(tiny_cnn, None, "preview", objective=ChannelObjective("layer1", 0), device=device, **TINY)


def test_the_older_polish_spellings_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="polish_steps is now called refine_steps") as caught:
        config = make_config("preview", polish_steps=7, polish_bn_prior=False)
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert (config.refine_steps, config.refine_bn_prior) == (7, False)
    with pytest.warns(DeprecationWarning):
        assert config.polish_steps == 7
