"""What a person watching a run sees: a live bar where one can be drawn, a line per stage
where it cannot.

In a notebook kernel ``tqdm.auto`` draws an ipywidgets bar, and on a terminal a
carriage-return bar. When stderr is a file or a pipe (``make demo > log``, CI, ``tee``) a
bar would write hundreds of carriage-return updates into it, so the run prints one plain
line per finished stage instead. Either way the loss shown is the mean per image (the
loss the optimizer sees is summed over the images, so it grows with their number) next to
the mean target probability, the two numbers a person can compare between runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from piikit.engine.callbacks import StepState

__all__ = ["Progress"]

# The bar's numbers are refreshed every this many steps: reading them waits for the device.
_POSTFIX_EVERY = 20


def _draws_live_bar(stream: TextIO) -> bool:
    """True in a notebook kernel (``tqdm.auto`` picked its widget bar) or on a terminal."""
    import warnings

    from tqdm.std import tqdm as std_tqdm

    with warnings.catch_warnings():  # autonotebook warns that it is experimental; tqdm.auto does the same
        warnings.simplefilter("ignore")
        from tqdm.autonotebook import tqdm as auto_tqdm
    if auto_tqdm is not std_tqdm:  # it picked the notebook bar: we are in a kernel
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Progress of one run: ``step`` after every step, ``stage_end`` after every stage,
    ``close`` at the end (also after an interruption).

    Args:
        enabled: False shows nothing.
        total: steps in the whole run; ``initial`` of them are already done (a resumed run).
        desc: what is running, e.g. ``"efficientnet_lite0 ×4"``.
        stages: the run's number of stages, for "stage 3/7".
        stream: where to write; ``sys.stderr`` at the time of the call by default.
    """

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, stages: int,
                 stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.desc, self.stages, self.total = desc, stages, total
        self.bar = None
        self.lines = False
        if not enabled:
            return
        if _draws_live_bar(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, file=self.stream)
        else:
            self.lines = True

    @staticmethod
    def _numbers(state: "StepState") -> tuple[float, float | None]:
        prob = float(state.prob.float().mean()) if state.prob.numel() and bool((state.prob > 0).any()) else None
        return float(state.loss), prob

    def step(self, state: "StepState") -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if state.global_step % _POSTFIX_EVERY == 0:
            loss, prob = self._numbers(state)
            postfix = {"stage": f"{state.stage + 1}/{self.stages}", "loss/image": f"{loss:.3f}"}
            if prob is not None:
                postfix["p(target)"] = f"{prob:.2f}"
            self.bar.set_postfix(postfix)

    def stage_end(self, state: "StepState", elapsed_s: float, phase: str | None = None) -> None:
        """One line per finished stage; ``phase`` names the part of a run with several
        (PII's stages, then DeepInversion), all counted as stages of the one run."""
        if not self.lines:
            return
        loss, prob = self._numbers(state)
        side = state.image.shape[-1]
        where = f"{side} px, {phase}" if phase else f"{side} px"
        text = (f"{self.desc}: stage {state.stage + 1}/{self.stages} ({where}) done, "
                f"step {state.global_step}/{self.total}, loss/image {loss:.3f}")
        if prob is not None:
            text += f", p(target) {prob:.2f}"
        print(f"{text}, {elapsed_s:.1f} s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
