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
    :func:`~piikit.compare_settings`, :func:`~piikit.sweep` and the ``piikit`` command; the explorer starts on ``glance``):
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
``quick``
    ``clear`` in 4 stages of 48 steps (sizes 90, 134, 179 and 224 px) instead of 7 of 64,
    with an ensemble of 3 instead of 4, a light total-variation prior (``tv_weight=0.1``) and
    BatchNorm folded into the convolutions (``fold_bn=True``, rounding only), then refined: 50
    steps of DeepInversion's refinement in a refine phase (``refine_steps=50``, :func:`piikit.refine`'s ``"refine"``
    preset: no ColorShift, an ensemble of 1, TV and, where the model has BatchNorm, its
    statistics prior). Other models recognise its images more often than ``clear``'s (Lite1 /
    Lite2 top-1 0.96 / 0.96 on 48 classes against 0.97 / 0.92), smoother (TV 0.035 against
    0.049), in about half ``clear``'s time (0.48-0.51 in paired runs); measured in
    ``docs/benchmarks.md``.
``glance``
    ``quick``'s stages with 32 steps each, an ensemble of 4 and no refine phase: the explorer's
    default (its first Run), a first look at one class in about 10 s on 2 idle CPU cores.
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
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args

from piikit.engine.param import ParamKind
from piikit.engine.schedule import BorderFill, ScheduleMode
from piikit.errors import warn_renamed
from piikit.validation import admits_none, check_fields, check_float, check_int, field_types

__all__ = ["ConfigBase", "InversionConfig", "PRESETS", "DEFAULT_PRESET", "LR_SCHEDULES", "make_config", "for_device"]

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
    #: Older field names still accepted by ``replace``/``make`` (and so by every entry point's
    #: overrides and ``--set``), with a DeprecationWarning, for one release.
    RENAMED: ClassVar[Mapping[str, str]] = {}

    image_size: int | None = None  # the final image's side in px; None ("none" on the command line): the model's own input size (224 for most ImageNet models)
    jitter: int = 32  # a random roll of up to this many px per axis
    flip: float = 0.0  # probability of a horizontal flip per step
    lr: float = 0.01  # Adam's learning rate
    betas: tuple[float, float] = (0.5, 0.99)  # Adam's betas
    lr_schedule: LrSchedule = "cosine"  # cosine decay to 0 (within each stage), or constant
    param: ParamKind = "pixels"  # what Adam moves: "pixels" (the papers), a 1/f "fourier" spectrum in decorrelated colour, or "maco" (its phase only)
    lowres_factor: float = 0.25  # param="lowres": pixels at this fraction of the side, upsampled bilinearly; paper: none

    # Speed, no effect on the maths beyond rounding.
    # amp and channels_last stay off by default until a GPU run has shown, on >= 16 classes, that
    # they keep cross-model top-1 and TV (benchmarks/gpu_check.py measures both with and without).
    amp: bool = False  # bfloat16 autocast for the model's forward pass
    channels_last: bool = False  # channels-last memory format (faster convolutions on GPUs)
    compile_model: bool = False  # torch.compile the network (opt-in: pays only after its warm-up, on GPUs; 1.7-2.5x slower per step on a 2-core CPU); logit objectives only
    fold_bn: bool = False  # run a copy with each BatchNorm folded into its convolution (piikit.models.folding); logit objectives and the BatchNorm prior

    def __post_init__(self) -> None:
        # Types first (one layer for the API, --set and the flags: piikit.validation), then ranges.
        for name, value in check_fields(self).items():
            object.__setattr__(self, name, value)
        if self.image_size is not None:
            check_int("image_size", self.image_size, low=8)
        check_int("jitter", self.jitter, low=0)
        check_float("flip", self.flip, low=0.0, high=1.0)
        check_float("lr", self.lr, low=0.0, low_open=True)
        for b in self.betas:
            check_float("each of betas", b, low=0.0, high=1.0, high_open=True)
        check_float("lowres_factor", self.lowres_factor, low=0.0, high=1.0, low_open=True)

    def replace(self: C, **overrides: Any) -> C:
        """A copy with some fields changed; a misspelt field fails with the closest names.

        Leave a field out to keep its value. ``None`` keeps it too, except for the fields
        where None is a value of its own (``image_size``: the model's own size,
        ``micro_batch``: all at once), which it sets."""
        for old, new in self.RENAMED.items():
            if old in overrides:
                warn_renamed(old, new)
                if new not in overrides:
                    overrides[new] = overrides[old]
                del overrides[old]
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            close = {k: difflib.get_close_matches(k, fields, n=2) for k in unknown}
            hints = [f"{k} (did you mean {', '.join(close[k])}?)" if close[k] else k for k in unknown]
            listing = "" if all(close.values()) else f"; the settings are {', '.join(sorted(fields))}"
            raise TypeError(f"unknown {self.KIND} setting(s): {'; '.join(hints)}{listing}")
        # None keeps the value, except where None is a value of the field itself (image_size:
        # the model's own size; micro_batch: all at once): there it sets it.
        types = field_types(type(self))
        changes = {k: v for k, v in overrides.items() if v is not None or admits_none(types[k])}
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each field's comment in its class body (what it does, the paper's value), by name:
        the one place a setting is described, read by the command's flags and the explorer."""
        docs: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if isinstance(klass, type) and issubclass(klass, ConfigBase):
                for line in inspect.getsource(klass).splitlines():
                    match = re.match(r"    ([a-z_]\w*): [^#]*?  # (.*)$", line)
                    if match:
                        docs[match[1]] = match[2].strip()
        return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """A config from :meth:`to_dict`'s output read back from JSON (a saved ``result.json``):
        lists become tuples again and older field names (:attr:`RENAMED`) their new ones."""
        values = {cls.RENAMED.get(k, k): v for k, v in values.items()}
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise TypeError(f"unknown {cls.KIND} setting(s) in a saved config: {', '.join(unknown)} "
                            "(written by a newer piikit?)")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @classmethod
    def presets(cls: type[C]) -> Mapping[str, C]:
        """The named configs of this algorithm."""
        raise NotImplementedError

    @classmethod
    def make(cls: type[C], preset: str | C, **overrides: Any) -> C:
        """A preset by name, or a config, with overrides (``None`` keeps the value, except where it is the field's own value: :meth:`replace`)."""
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

    ``refine_steps`` > 0 ends the run with a refine phase (:mod:`piikit.engine.phases`):
    DeepInversion from the stages' final image, counted as one more stage of the same run.

    Shared with DeepInversion (declared in :class:`ConfigBase`, paper values): ``image_size``
    (None: the model's), ``jitter`` 32 px, ``flip`` 0 (not used), ``lr`` 0.01, ``betas``
    (0.5, 0.99), ``lr_schedule`` cosine decay to 0 within each stage, ``param`` pixels,
    ``amp``, ``channels_last`` and ``compile_model`` off.
    """

    # Stages (PII §3.1): the image grows from 2/8 to 8/8 of image_size over 7 stages.
    stages: int = 7  # how many times the image grows, from 2/8 to 8/8 of image_size; paper: 7
    steps_per_stage: int = 400  # Adam steps per stage (fresh optimizer and lr decay each); paper: 400
    schedule: ScheduleMode = "zoom+center"  # how the image grows between stages; paper: zoom + centering

    # Augmentations (PII §3, §3.2, §3.3); jitter (32 px) and flip (off) are in ConfigBase.
    color_shift: bool = True  # ColorShift each copy (random per-channel shift and scale); paper: on
    alpha: float = 1.0  # ColorShift mean range U(-alpha, alpha); paper: 1.0
    beta: float = 1.0  # ColorShift log-scale range U(-beta, beta); paper: 1.0
    ensemble: int = 32  # ColorShifted copies per image; paper: the largest that fits, up to 32
    micro_batch: int | Literal["auto"] | None = None  # samples (images x copies) per forward pass; None: all at once (on CUDA: backing off where that does not fit); "auto": the largest that fits (piikit.engine.memory; on CUDA a preset by name takes it). Exact: gradients accumulate

    # Priors (PII §2.2, Fig. 4): paper PII uses none; for the Fig. 4 TV ablation.
    tv_weight: float = 0.0  # total variation (DeepInversion's 4-direction L2 form) of the pixels; DeepInversionConfig's is of the normalized image; paper: 0
    l2_weight: float = 0.0  # L2 image prior ‖x‖₂ (pixel space); paper: 0

    # Image quality (piikit options, not in the paper; each off by default and in ``paper``).
    border: BorderFill = "noise"  # fill of the first image and of each grown border: "noise" (paper), "grey" or "black"
    zoom_jitter: float = 0.0  # per-copy random zoom U(1 - z, 1 + z); paper: 0 (no zoom)
    rotate: float = 0.0  # per-copy random rotation U(-r, r) in degrees; paper: 0
    refine_steps: int = 0  # then a refine phase: this many steps of DeepInversion (DEEPINVERSION_PRESETS["refine"]) from the final image, in the same run; paper: 0 (PII §5.2 refines separately)
    refine_bn_prior: bool = True  # the refine phase's BatchNorm statistics prior, where the model has BatchNorm; off: TV and L2 alone (on the folded model if fold_bn, either way)
    refine_tv_weight: float = 1e-2  # the refine phase's TV weight (DeepInversion's form, of the normalized image); 1e-2 is DEEPINVERSION_PRESETS["refine"]'s

    # Speed levers (amp, channels_last, compile_model, fold_bn) are in ConfigBase.

    RENAMED: ClassVar[Mapping[str, str]] = {"polish_steps": "refine_steps", "polish_bn_prior": "refine_bn_prior"}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("stages", self.stages, low=1)
        check_int("steps_per_stage", self.steps_per_stage, low=1)
        check_int("ensemble", self.ensemble, low=1)
        check_int("refine_steps", self.refine_steps, low=0)
        if self.micro_batch not in (None, "auto"):
            check_int("micro_batch", self.micro_batch, low=1)
        check_float("alpha", self.alpha, low=0.0)
        check_float("beta", self.beta, low=0.0)
        check_float("tv_weight", self.tv_weight, low=0.0)
        check_float("l2_weight", self.l2_weight, low=0.0)
        check_float("refine_tv_weight", self.refine_tv_weight, low=0.0)
        check_float("zoom_jitter", self.zoom_jitter, low=0.0, high=1.0, high_open=True)
        check_float("rotate", self.rotate, low=0.0)

    @property
    def total_steps(self) -> int:
        return self.stages * self.steps_per_stage + self.refine_steps

    @property
    def polish_steps(self) -> int:
        """Deprecated: the older name of :attr:`refine_steps`."""
        warn_renamed("polish_steps", "refine_steps")
        return self.refine_steps

    @property
    def polish_bn_prior(self) -> bool:
        """Deprecated: the older name of :attr:`refine_bn_prior`."""
        warn_renamed("polish_bn_prior", "refine_bn_prior")
        return self.refine_bn_prior

    @classmethod
    def presets(cls) -> Mapping[str, InversionConfig]:
        return PRESETS


PRESETS: dict[str, InversionConfig] = {
    "paper": InversionConfig(),
    "fast": InversionConfig(steps_per_stage=64, ensemble=4, lr=0.03, micro_batch=4),
    "preview": InversionConfig(stages=3, steps_per_stage=10, ensemble=2, lr=0.1),
    "clear": InversionConfig(steps_per_stage=64, ensemble=4, lr=0.1, micro_batch=8, param="fourier", border="grey",
                             zoom_jitter=0.1, rotate=10.0, channels_last=True),
}


# clear's image in fewer, longer stages (the first and smallest ones cost little and set only
# the layout), a light TV prior that keeps the fine noise out, and BatchNorm folded: the
# measurements are in the module docstring and docs/benchmarks.md.
PRESETS["glance"] = PRESETS["clear"].replace(stages=4, steps_per_stage=32, tv_weight=0.1, fold_bn=True)
# Then refined: DeepInversion's refinement sharpens the image for the model itself, without
# ColorShift, and other models read it more often than clear's; with the refine phase an ensemble of
# 3 scores as 4 did, at 0.78 of the work (docs/benchmarks.md).
PRESETS["quick"] = PRESETS["glance"].replace(steps_per_stage=48, ensemble=3, refine_steps=50)


def for_device(config: InversionConfig, device_type: str, micro_batch_given: bool) -> InversionConfig:
    """The config a run uses on a device of ``device_type``: the presets' ``micro_batch``
    values suit a CPU's cache, so on CUDA a run whose ``micro_batch`` was not given (a
    preset by name, no override) takes ``"auto"``, what fits (the same images up to rounding).

    >>> for_device(PRESETS["quick"], "cuda", micro_batch_given=False).micro_batch
    'auto'
    >>> for_device(PRESETS["quick"], "cpu", micro_batch_given=False).micro_batch
    8
    """
    if device_type != "cuda" or micro_batch_given:
        return config
    return config.replace(micro_batch="auto")


def make_config(preset: str | InversionConfig = DEFAULT_PRESET, **overrides: Any) -> InversionConfig:
    """A preset by name (``"paper"``, ``"fast"`` (default), ``"clear"``, ``"quick"``, ``"glance"``, ``"preview"``)
    or a config, with overrides.

    >>> make_config("paper").steps_per_stage
    400
    >>> make_config("paper", ensemble=8, lr=None).lr  # None keeps the preset's value
    0.01
    >>> make_config("paper", image_size=None).image_size is None  # ... but None is image_size's own value
    True
    """
    return InversionConfig.make(preset, **overrides)
