"""What the step loop tells the outside: the state after each step and the callback hooks.

The loop knows nothing of widgets or plots; progress bars, live previews and early stops
are callbacks (minGPT's trainer style).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from piikit.engine.result import InversionResult

__all__ = ["Callback", "StepState", "as_callback"]


@dataclass
class StepState:
    """What callbacks see after each step (tensors stay on the run's device; reading a
    value with ``.item()`` waits for the device, so a fast callback avoids it)."""

    stage: int
    step: int  # steps done in this stage
    global_step: int  # steps done in the run
    total_steps: int
    image: torch.Tensor  # K×C×h×w, what the model sees before augmentation (detached)
    loss: torch.Tensor  # 0-d total loss of the last step per image (the optimizer's sum / K)
    prob: torch.Tensor  # (K,) target probability averaged over the augmented copies
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    lr: float = 0.0
    stop_requested: str | None = None

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end after this step; it returns what it has so far."""
        self.stop_requested = reason


class Callback:
    """Base class for loop hooks; override the ones you need. A plain function passed
    as a callback is called as ``on_step_end``."""

    def on_stage_start(self, state: StepState) -> None: ...

    def on_step_end(self, state: StepState) -> None: ...

    def on_stage_end(self, state: StepState) -> None: ...

    def on_end(self, result: InversionResult) -> None: ...


class _StepFunction(Callback):
    def __init__(self, fn: Callable[[StepState], Any]) -> None:
        self.fn = fn

    def on_step_end(self, state: StepState) -> None:
        self.fn(state)


def as_callback(callback: Callback | Callable[[StepState], Any]) -> Callback:
    """A :class:`Callback` as it is; a plain function as one called at every step's end."""
    return callback if isinstance(callback, Callback) else _StepFunction(callback)
