"""What a person sees while a run goes: the loss per image, and plain lines (not hundreds of
carriage-return updates) when stderr is a file or a pipe."""

import io

import torch

from piikit import invert
from piikit.engine.progress import Progress

TINY = dict(stages=3, steps_per_stage=4, ensemble=2, image_size=48, lr=0.1)


def test_history_loss_is_per_image_whatever_the_number_of_targets(tiny_cnn, device):
    one = invert(tiny_cnn, [3], "preview", seed=0, device=device, progress=False, **TINY)
    many = invert(tiny_cnn, [3, 4, 5, 6, 7, 8], "preview", seed=0, device=device, progress=False, **TINY)
    # A random 1000-class model starts near ln(1000) ~ 6.9 for every image; a sum over six
    # images would be about 6x that.
    first_one, first_many = one.history["loss"][0].item(), many.history["loss"][0].item()
    assert 0.5 < first_many / first_one < 2, (first_one, first_many)


def test_without_a_terminal_a_run_prints_one_line_per_stage(tiny_cnn, device, capsys):
    invert(tiny_cnn, [3, 4], "preview", seed=0, device=device, progress=True, **TINY)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert len(lines) == TINY["stages"], err
    assert "stage 3/3" in lines[-1] and "loss/image" in lines[-1] and "p(target)" in lines[-1]


def test_progress_false_prints_nothing(tiny_cnn, device, capsys):
    invert(tiny_cnn, 3, "preview", seed=0, device=device, progress=False, **TINY)
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_live_bar_is_drawn(tiny_cnn, device):
    from piikit.engine.inversion import StepState

    stream = _Terminal()
    progress = Progress(True, total=40, initial=0, desc="model ×1", stages=2, stream=stream)
    state = StepState(stage=0, step=20, global_step=20, total_steps=40, image=torch.zeros(1, 3, 8, 8),
                      loss=torch.tensor(2.5), prob=torch.tensor([0.25]))
    for _ in range(20):
        progress.step(state)
    progress.stage_end(state, 1.0)
    progress.close()
    text = stream.getvalue()
    assert "\r" in text and "model ×1" in text
    assert "loss/image=2.500" in text and "p(target)=0.25" in text
    assert "stage 1/2 (8 px) done" not in text  # the per-stage line is for non-terminals only
