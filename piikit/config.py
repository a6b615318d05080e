"""The inversion config and its presets.

:class:`InversionConfig` defaults are the paper's settings (PII §4): 7 stages of 400 Adam
steps (lr 0.01, betas (0.5, 0.99), cosine decay to 0 within each stage, optimizer re-made
per stage), zoom + centering, jitter of up to 32 px, ColorShift with alpha = beta = 1 and an
ensemble of 32 ColorShifted copies; no regularizer.

Presets, by name:

``paper``
    exactly the defaults: about an hour per class for EfficientNet-Lite0 on 2 CPU cores.
``fast``
    the paper's 7 stages with 64 steps each, an ensemble of 4 and lr 0.03 (fewer steps
    need a larger step to move the image as far). Chosen by measuring how often *other*
    models recognise the result (``benchmarks/tune_presets.py``, Lite0 inverted, 8 classes,
    scored by Lite1 / Lite2): 64 steps at lr 0.03 gave top-1 0.88 / 0.75, top-5 1.0 / 0.88,
    TV 0.20 per pixel at 52 s per class on 2 CPU cores; 32 steps at lr 0.05 gave top-1
    0.62 / 0.62 and TV 0.23 at 27 s; lr 0.1 was noisier (TV 0.31) and no better.
    ``micro_batch=4`` changes no result: on a CPU, forward passes of about 4 images run
    faster per image than larger ones (``benchmarks/batched_targets.py``).
``clear``
    not PII's pixels but the same stages, steps (7 x 64), jitter, ColorShift and ensemble
    as ``fast``: the image is a ``1/f`` Fourier spectrum in decorrelated
    colour (``param="fourier"``, lr 0.1), grown borders are mid-grey instead of noise, and
    each copy gets a random zoom (±10 %) and rotation (±10°). Images with smooth,
    photo-like texture and recognisable objects instead of rainbow pixel noise.
    ``channels_last=True`` and ``micro_batch=8`` change only rounding: on a 2-core CPU
    channels-last made the run 1.14x faster, and with it passes of 8 samples beat 4 by
    about 7 % and 16 by 14 % (whole-process A/B runs, medians of 3-4 pairs).
    Measured with ``benchmarks/quality.py`` (Lite0 inverted, 8 classes batched, scored by
    Lite1 / Lite2, seeds 0 and 1, mean ± spread between seeds). On all 48 classes: top-1
    0.97±0.02 / 0.92±0.08, top-5 1.00 / 1.00, target probability 0.63 / 0.53, TV 0.049
    per pixel (mean absolute neighbour difference, ``benchmarks/quality.py``). Speed, 8 classes
    batched on a quiet 2-core AVX-512 CPU: 26.0 s per class (30.2 s with micro_batch 4;
    the scores were the same). On the 8-class quick set at 7 x 16 steps, one option at a time
    (top-1 Lite1 / Lite2, TV): pixels 0.31 / 0.38, 0.158; grey border 0.31 / 0.31, 0.099;
    Fourier with noise borders 0.50 / 0.50, 0.116; zoom and rotation 0.38 / 0.38, 0.154;
    Fourier with grey borders 0.88 / 0.69, 0.033; all four 0.88 / 0.69, 0.034. The Fourier
    image needs the grey border (noise encoded into its spectrum stays), zoom and rotation
    changed nothing measurable and are kept as cheap robustness. At 7 x 32 steps all four
    gave 0.88 / 0.75, TV 0.040: 64 steps are needed for Lite2. One setting for every
    architecture still: on notebook 07's 1-channel digits CNN, ViT and MLP-Mixer (32 px,
    jitter 2, ensemble 8, 48 steps per stage, seeds 0 and 1) ``clear`` against ``fast``
    gave each model's own probability 0.89-1.00 against 0.69-1.00, TV 0.087-0.107
    against 0.19-0.23, and other models' top-1 0.33-0.35 against 0.22 (mean over the six
    pairs).
``preview``
    3 stages of 10 steps, ensemble 2, lr 0.1: seconds, for tests, notebooks' smoke mode
    and trying things out (one Lite0 class: 7.9 s of CPU, 14 s of wall time on 2 AVX-512
    cores that other jobs were loading). Measured on Lite0 with volcano, goldfinch and
    goldfish in one batch, seeds 0-3, 1 and 2 threads: every target's probability rose 13x
    to 55x from about 0.001 (to 0.008-0.8; goldfinch lowest), and every image was the most
    probable of the three for its own target. Ensemble 4 rose 16x-52x (mean 0.19-0.54 against
    0.03-0.33) at about twice the time; 16 steps per stage rose 9x-53x. Both were kept out:
    the rise is already clear, and preview runs in every test and smoke-mode notebook.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .param import BORDER_FILLS, PARAM_KINDS, BorderFill, ParamKind
from .schedule import _MODES, ScheduleMode

__all__ = ["InversionConfig", "PRESETS", "make_config"]


@dataclass(frozen=True)
class InversionConfig:
    """Every setting of a Plug-In Inversion run; the defaults are the paper's."""

    # Stages (PII §3.1): the image grows from 2/8 to 8/8 of image_size over 7 stages.
    image_size: int | None = None  # None: the model's own input size (224 for most ImageNet models)
    stages: int = 7  # paper: 7
    steps_per_stage: int = 400  # paper: 400
    schedule: ScheduleMode = "zoom+center"  # paper: zoom + centering

    # Augmentations (PII §3, §3.2, §3.3).
    jitter: int = 32  # paper: a random roll of up to 32 px per axis
    flip: float = 0.0  # probability of a horizontal flip; paper: not used
    color_shift: bool = True  # paper: on
    alpha: float = 1.0  # ColorShift mean range U(-alpha, alpha); paper: 1.0
    beta: float = 1.0  # ColorShift log-scale range U(-beta, beta); paper: 1.0
    ensemble: int = 32  # ColorShifted copies per image; paper: the largest that fits, up to 32
    micro_batch: int | Literal["auto"] | None = None  # samples (images x copies) per forward pass; None: all at once; "auto": the largest that fits (piikit.memory). Exact: gradients accumulate

    # Optimizer (PII §4).
    lr: float = 0.01  # paper: 0.01
    betas: tuple[float, float] = (0.5, 0.99)  # paper: (0.5, 0.99)
    lr_schedule: Literal["cosine", "constant"] = "cosine"  # paper: cosine decay to 0 within each stage

    # Priors (PII §2.2, Fig. 4): paper PII uses none; for the Fig. 4 TV ablation.
    tv_weight: float = 0.0  # total variation (DeepInversion's 4-direction L2 form, pixel space); paper: 0
    l2_weight: float = 0.0  # L2 image prior ‖x‖₂ (pixel space); paper: 0

    # Speed, no effect on the maths beyond rounding.
    amp: bool = False  # bfloat16 autocast for the model's forward pass
    channels_last: bool = False  # channels-last memory format (faster convolutions on GPUs)

    # Image quality (piikit options, not in the paper; each off by default and in ``paper``).
    param: ParamKind = "pixels"  # what Adam moves: "pixels" (paper) or a 1/f "fourier" spectrum in decorrelated colour
    border: BorderFill = "noise"  # fill of the first image and of each grown border: "noise" (paper) or "grey"
    zoom_jitter: float = 0.0  # per-copy random zoom U(1 - z, 1 + z); paper: 0 (no zoom)
    rotate: float = 0.0  # per-copy random rotation U(-r, r) in degrees; paper: 0

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if self.stages < 1 or self.steps_per_stage < 1:
            raise ValueError(f"stages and steps_per_stage must be >= 1, got {self.stages}, {self.steps_per_stage}")
        if self.schedule not in _MODES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(_MODES)}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.micro_batch is not None and self.micro_batch != "auto" and (
            isinstance(self.micro_batch, (str, bool)) or self.micro_batch < 1
        ):
            raise ValueError(f"micro_batch must be >= 1, 'auto' or None, got {self.micro_batch!r}")
        if self.jitter < 0 or not 0.0 <= self.flip <= 1.0 or self.alpha < 0 or self.beta < 0 or self.lr <= 0:
            raise ValueError("jitter, alpha and beta must be >= 0, flip in [0, 1] and lr > 0")
        if self.tv_weight < 0 or self.l2_weight < 0:
            raise ValueError(f"tv_weight and l2_weight must be >= 0, got {self.tv_weight}, {self.l2_weight}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if self.param not in PARAM_KINDS or self.border not in BORDER_FILLS:
            raise ValueError(f"param must be one of {', '.join(PARAM_KINDS)} and border one of {', '.join(BORDER_FILLS)}, "
                             f"got {self.param!r}, {self.border!r}")
        if not 0.0 <= self.zoom_jitter < 1.0 or self.rotate < 0:
            raise ValueError(f"zoom_jitter must be in [0, 1) and rotate >= 0, got {self.zoom_jitter}, {self.rotate}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @property
    def total_steps(self) -> int:
        return self.stages * self.steps_per_stage

    def replace(self, **overrides: Any) -> "InversionConfig":
        """A copy with some fields changed; ``None`` values mean "keep"."""
        return _replace(self, overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, InversionConfig] = {
    "paper": InversionConfig(),
    "fast": InversionConfig(steps_per_stage=64, ensemble=4, lr=0.03, micro_batch=4),
    "preview": InversionConfig(stages=3, steps_per_stage=10, ensemble=2, lr=0.1),
    "clear": InversionConfig(steps_per_stage=64, ensemble=4, lr=0.1, micro_batch=8, param="fourier", border="grey",
                             zoom_jitter=0.1, rotate=10.0, channels_last=True),
}


def _replace(config: InversionConfig, overrides: dict[str, Any]) -> InversionConfig:
    fields = {f.name for f in dataclasses.fields(InversionConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        import difflib

        hints = [f"{k} (did you mean {', '.join(difflib.get_close_matches(k, fields, n=2)) or '?'})" for k in unknown]
        raise TypeError(f"unknown inversion setting(s): {'; '.join(hints)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **changes) if changes else config


def make_config(preset: str | InversionConfig = "paper", **overrides: Any) -> InversionConfig:
    """A preset by name (``"paper"``, ``"fast"``, ``"clear"``, ``"preview"``) or a config, with overrides.

    >>> make_config("paper").steps_per_stage
    400
    >>> make_config("paper", ensemble=8, lr=None).ensemble  # None keeps the preset's value
    8
    """
    if isinstance(preset, InversionConfig):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return _replace(base, overrides)
