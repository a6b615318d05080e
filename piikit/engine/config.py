"""The inversion config and its presets.

:class:`InversionConfig` defaults are the paper's settings (PII §4): 7 stages of 400 Adam
steps (lr 0.01, betas (0.5, 0.99), cosine decay to 0 within each stage, optimizer re-made
per stage), zoom + centering, jitter of up to 32 px, ColorShift with alpha = beta = 1 and an
ensemble of 32 ColorShifted copies; no regularizer.

Presets, by name:

``paper``
    exactly the defaults: about an hour per class for EfficientNet-Lite0 on 2 CPU cores.
``fast``
    The default of every entry point (:func:`~piikit.invert`, :func:`make_config`,
    :func:`~piikit.compare`, :func:`~piikit.sweep` and the ``piikit`` command; the explorer starts on ``glance``):
    the paper's 7 stages and augmentations with 64 steps each, an ensemble of 4 and lr 0.03
    (fewer steps need a larger step to move the image as far): still PII's method and
    pixels, at a cost that fits a laptop CPU (tens of seconds per class), and images other
    models recognise. ``micro_batch=4`` changes no result.
``clear``
    not PII's pixels but the same stages, steps (7 x 64), jitter, ColorShift and ensemble
    as ``fast``: the image is a ``1/f`` Fourier spectrum in decorrelated colour
    (``param="fourier"``, lr 0.1), grown borders are mid-grey instead of noise, and each copy
    gets a random zoom (±10 %) and rotation (±10°): smooth, photo-like textures instead of
    rainbow pixel noise. ``channels_last=True`` and ``micro_batch=8`` change only rounding.
``glance``
    ``clear`` at 160 px with 16 steps per stage: a first look in about 15 s per class on 2
    idle CPU cores, and the explorer's default (its first Run). Measured on 6 classes x 2
    seeds (Lite0 inverted): Lite1 / Lite2 top-1 0.50 / 0.17; volcano, jellyfish and daisy
    read as such, goldfinch and school bus stay grey texture (use ``clear``).
``preview``
    3 stages of 10 steps, ensemble 2, lr 0.1: seconds, for tests, notebooks' smoke mode
    and trying things out (pixel noise to the eye).

How the presets were chosen, with their measured quality and speed: ``docs/benchmarks.md``.

Both algorithms' configs derive from :class:`ConfigBase`: the settings they share are
declared there once, and ``replace`` (with "did you mean" hints), ``to_dict`` and presets
by name (:meth:`ConfigBase.make`) work the same for both.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args

from piikit.engine.param import PARAM_KINDS, ParamKind
from piikit.engine.schedule import BORDER_FILLS, SCHEDULE_MODES, BorderFill, ScheduleMode

__all__ = ["ConfigBase", "InversionConfig", "PRESETS", "DEFAULT_PRESET", "LR_SCHEDULES", "make_config"]

#: The preset every entry point uses when none is given (see the module docstring for why).
DEFAULT_PRESET = "fast"

LrSchedule = Literal["cosine", "constant"]
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)

C = TypeVar("C", bound="ConfigBase")


@dataclass(frozen=True)
class ConfigBase:
    """What every inversion algorithm's config has: the image, the optimizer and the speed
    settings the step loop needs, ``replace``, ``to_dict`` and presets by name.

    Subclasses add their own fields and may give a shared field another default (the
    paper's value for their algorithm); they set ``KIND`` (for messages) and ``presets()``.
    """

    KIND: ClassVar[str] = "inversion"

    image_size: int | None = None  # None: the model's own input size (224 for most ImageNet models)
    jitter: int = 32  # a random roll of up to this many px per axis
    flip: float = 0.0  # probability of a horizontal flip per step
    lr: float = 0.01  # Adam's learning rate
    betas: tuple[float, float] = (0.5, 0.99)  # Adam's betas
    lr_schedule: LrSchedule = "cosine"  # cosine decay to 0 (within each stage), or constant
    param: ParamKind = "pixels"  # what Adam moves: "pixels" (the papers) or a 1/f "fourier" spectrum in decorrelated colour

    # Speed, no effect on the maths beyond rounding.
    amp: bool = False  # bfloat16 autocast for the model's forward pass
    channels_last: bool = False  # channels-last memory format (faster convolutions on GPUs)

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if self.jitter < 0 or not 0.0 <= self.flip <= 1.0 or self.lr <= 0:
            raise ValueError("jitter must be >= 0, flip in [0, 1] and lr > 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.param not in PARAM_KINDS:
            raise ValueError(f"param must be one of {', '.join(PARAM_KINDS)}, got {self.param!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    def replace(self: C, **overrides: Any) -> C:
        """A copy with some fields changed; ``None`` values mean "keep"; a misspelt field
        fails with the closest names."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            hints = [f"{k} (did you mean {', '.join(difflib.get_close_matches(k, fields, n=2)) or '?'})"
                     for k in unknown]
            raise TypeError(f"unknown {self.KIND} setting(s): {'; '.join(hints)}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def presets(cls: type[C]) -> Mapping[str, C]:
        """The named configs of this algorithm."""
        raise NotImplementedError

    @classmethod
    def make(cls: type[C], preset: str | C, **overrides: Any) -> C:
        """A preset by name, or a config, with overrides (``None`` keeps the value)."""
        if isinstance(preset, cls):
            base = preset
        elif isinstance(preset, str) and preset in cls.presets():
            base = cls.presets()[preset]
        else:
            choices = ", ".join(cls.presets())
            raise ValueError(f"unknown {cls.KIND + ' ' if cls.KIND != 'inversion' else ''}preset {preset!r}; "
                             f"choose one of {choices}")
        return base.replace(**overrides)


@dataclass(frozen=True)
class InversionConfig(ConfigBase):
    """Every setting of a Plug-In Inversion run; the defaults are the paper's.

    Shared with DeepInversion (declared in :class:`ConfigBase`, paper values): ``image_size``
    (None: the model's), ``jitter`` 32 px, ``flip`` 0 (not used), ``lr`` 0.01, ``betas``
    (0.5, 0.99), ``lr_schedule`` cosine decay to 0 within each stage, ``param`` pixels,
    ``amp`` and ``channels_last`` off.
    """

    # Stages (PII §3.1): the image grows from 2/8 to 8/8 of image_size over 7 stages.
    stages: int = 7  # paper: 7
    steps_per_stage: int = 400  # paper: 400
    schedule: ScheduleMode = "zoom+center"  # paper: zoom + centering

    # Augmentations (PII §3, §3.2, §3.3); jitter (32 px) and flip (off) are in ConfigBase.
    color_shift: bool = True  # paper: on
    alpha: float = 1.0  # ColorShift mean range U(-alpha, alpha); paper: 1.0
    beta: float = 1.0  # ColorShift log-scale range U(-beta, beta); paper: 1.0
    ensemble: int = 32  # ColorShifted copies per image; paper: the largest that fits, up to 32
    micro_batch: int | Literal["auto"] | None = None  # samples (images x copies) per forward pass; None: all at once; "auto": the largest that fits (piikit.engine.memory). Exact: gradients accumulate

    # Priors (PII §2.2, Fig. 4): paper PII uses none; for the Fig. 4 TV ablation.
    tv_weight: float = 0.0  # total variation (DeepInversion's 4-direction L2 form) of the pixels; DeepInversionConfig's is of the normalized image; paper: 0
    l2_weight: float = 0.0  # L2 image prior ‖x‖₂ (pixel space); paper: 0

    # Image quality (piikit options, not in the paper; each off by default and in ``paper``).
    border: BorderFill = "noise"  # fill of the first image and of each grown border: "noise" (paper) or "grey"
    zoom_jitter: float = 0.0  # per-copy random zoom U(1 - z, 1 + z); paper: 0 (no zoom)
    rotate: float = 0.0  # per-copy random rotation U(-r, r) in degrees; paper: 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stages < 1 or self.steps_per_stage < 1:
            raise ValueError(f"stages and steps_per_stage must be >= 1, got {self.stages}, {self.steps_per_stage}")
        if self.schedule not in SCHEDULE_MODES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULE_MODES)}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.micro_batch is not None and self.micro_batch != "auto" and (
            isinstance(self.micro_batch, (str, bool)) or self.micro_batch < 1
        ):
            raise ValueError(f"micro_batch must be >= 1, 'auto' or None, got {self.micro_batch!r}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError("alpha and beta must be >= 0")
        if self.tv_weight < 0 or self.l2_weight < 0:
            raise ValueError(f"tv_weight and l2_weight must be >= 0, got {self.tv_weight}, {self.l2_weight}")
        if self.border not in BORDER_FILLS:
            raise ValueError(f"border must be one of {', '.join(BORDER_FILLS)}, got {self.border!r}")
        if not 0.0 <= self.zoom_jitter < 1.0 or self.rotate < 0:
            raise ValueError(f"zoom_jitter must be in [0, 1) and rotate >= 0, got {self.zoom_jitter}, {self.rotate}")

    @property
    def total_steps(self) -> int:
        return self.stages * self.steps_per_stage

    @classmethod
    def presets(cls) -> Mapping[str, InversionConfig]:
        return PRESETS


PRESETS: dict[str, InversionConfig] = {
    "paper": InversionConfig(),
    "fast": InversionConfig(steps_per_stage=64, ensemble=4, lr=0.03, micro_batch=4),
    "preview": InversionConfig(stages=3, steps_per_stage=10, ensemble=2, lr=0.1),
    "clear": InversionConfig(steps_per_stage=64, ensemble=4, lr=0.1, micro_batch=8, param="fourier", border="grey",
                             zoom_jitter=0.1, rotate=10.0, channels_last=True),
    "glance": InversionConfig(steps_per_stage=16, image_size=160, ensemble=4, lr=0.1, micro_batch=8, param="fourier",
                              border="grey", zoom_jitter=0.1, rotate=10.0, channels_last=True),
}


def make_config(preset: str | InversionConfig = DEFAULT_PRESET, **overrides: Any) -> InversionConfig:
    """A preset by name (``"paper"``, ``"fast"`` (default), ``"clear"``, ``"preview"``) or a config, with overrides.

    >>> make_config("paper").steps_per_stage
    400
    >>> make_config("paper", ensemble=8, lr=None).ensemble  # None keeps the preset's value
    8
    """
    return InversionConfig.make(preset, **overrides)
