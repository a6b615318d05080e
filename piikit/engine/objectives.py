"""What an inversion optimizes: objectives (per-sample losses) and loss terms (priors).

The step loop builds a :class:`Batch` for every forward pass and asks the objective for
one loss per augmented sample; it averages those over each image's ensemble and sums over
images, so each image gets exactly the gradient it would get in a run of its own. Loss
terms add weighted scalars (priors such as total variation). Both may register forward
hooks on the model for the duration of a run through :meth:`Objective.hooks`.

Objectives compose: ``ChannelObjective("blocks.3", 7) + 0.5 * ClassObjective()``; the
feature objectives (a named layer's channel, neuron or direction) are in
:mod:`piikit.engine.features`.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Batch",
    "Objective",
    "ClassObjective",
    "CompositeObjective",
    "LossTerm",
    "attached",
]


@dataclass
class Batch:
    """One forward pass of the step loop, as objectives and loss terms see it.

    Attributes:
        images: K×3×h×w, the images being optimized as the model would see them before
            augmentation (requires grad).
        inputs: N×3×h×w, the augmented copies fed to the model in this pass.
        logits: N×classes, the model's output for ``inputs``.
        targets: N, the target class of each copy (``-1`` where there is none).
        image_index: N, which of the K images each copy comes from.
        ensemble: copies per image in the whole step (a pass may hold only some of them).
    """

    images: torch.Tensor
    inputs: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    image_index: torch.Tensor
    ensemble: int


class Objective:
    """Base class: ``__call__(batch)`` returns one loss per sample (N,), lower is better.

    Objectives compose: ``a + b``, ``a - b``, ``2.0 * a`` and ``-a`` make a
    :class:`CompositeObjective` (a weighted sum of the parts' per-sample losses).
    """

    name: str = "objective"
    needs_targets: bool = False  # True if it reads ``batch.targets`` (class objectives)

    def hooks(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        """Register whatever hooks the objective needs; removed on exit."""
        return contextlib.nullcontext()

    def __call__(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    # Composition. A weighted sum is all the algebra needed; products of objectives are
    # not meaningful as losses, so only scalars multiply.
    def __add__(self, other: "Objective") -> "CompositeObjective":
        if not isinstance(other, Objective):
            return NotImplemented
        return CompositeObjective([*_weighted(self), *_weighted(other)])

    def __radd__(self, other: object) -> "Objective":
        if isinstance(other, numbers.Number) and other == 0:  # so sum([a, b, c]) works
            return self
        return NotImplemented

    def __mul__(self, scalar: float) -> "CompositeObjective":
        if not isinstance(scalar, numbers.Real) or isinstance(scalar, bool):
            return NotImplemented
        return CompositeObjective([(w * float(scalar), part) for w, part in _weighted(self)])

    __rmul__ = __mul__

    def __neg__(self) -> "CompositeObjective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "CompositeObjective":
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)


def _weighted(objective: Objective) -> list[tuple[float, Objective]]:
    if isinstance(objective, CompositeObjective):
        return list(objective.parts)
    return [(1.0, objective)]


class CompositeObjective(Objective):
    """A weighted sum of objectives' per-sample losses; made by ``+``, ``-`` and ``*``.

    >>> obj = ChannelObjective("blocks.3", 7) + 0.5 * ClassObjective()
    >>> obj.name
    'channel(blocks.3:7) + 0.5*ce'
    """

    def __init__(self, parts: Sequence[tuple[float, Objective]]) -> None:
        if not parts:
            raise ValueError("a composite objective needs at least one part")
        self.parts: list[tuple[float, Objective]] = [(float(w), p) for w, p in parts]
        self.needs_targets = any(p.needs_targets for _, p in self.parts)
        self.name = ""
        for i, (w, part) in enumerate(self.parts):
            sign = "-" if w < 0 else ("+" if i else "")
            term = part.name if abs(w) == 1.0 else f"{abs(w):g}*{part.name}"
            self.name += f"{' ' if i else ''}{sign}{' ' if i else ''}{term}"

    @contextlib.contextmanager
    def _hooked(self, model: nn.Module) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for _, part in self.parts:
                stack.enter_context(part.hooks(model))
            yield

    def hooks(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        return self._hooked(model)

    def __call__(self, batch: Batch) -> torch.Tensor:
        return sum(w * part(batch) for w, part in self.parts)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"CompositeObjective({self.name!r})"


class ClassObjective(Objective):
    """Cross-entropy of the logits against each sample's target class (PII's objective)."""

    name = "ce"
    needs_targets = True

    def __call__(self, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(batch.logits.float(), batch.targets, reduction="none")


# --------------------------------------------------------------------------- loss terms
class LossTerm:
    """Base class of a prior: a weighted scalar added to the loss at every step.

    Subclasses set ``name`` and implement ``__call__(batch) -> scalar tensor``; ``weight``
    multiplies it. Terms that need hooks override :meth:`hooks` like objectives do.
    """

    name: str = "term"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = float(weight)

    def hooks(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def __call__(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError


@contextlib.contextmanager
def attached(model: nn.Module, parts: "list[Objective | LossTerm]") -> Iterator[None]:
    """Enter every part's hooks on ``model``; all are removed on exit, even on error."""
    with contextlib.ExitStack() as stack:
        for part in parts:
            stack.enter_context(part.hooks(model))
        yield
