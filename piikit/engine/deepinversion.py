"""DeepInversion's settings (:class:`DeepInversionConfig`, its presets) and what a
DeepInversion phase is made of: which priors it uses on which model, and the step loop's
config for it.

In the engine because a run may end in a refinement phase (``InversionConfig.refine_steps``,
:mod:`piikit.engine.phases`); :func:`piikit.refine` (:mod:`piikit.refinement.deepinversion`)
runs the same phases on their own.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from piikit.engine.config import ConfigBase, InversionConfig
from piikit.engine.objectives import LossTerm
from piikit.errors import UnsupportedModelError, user_stacklevel
from piikit.validation import check_float, check_int
from piikit.models import Classifier
from piikit.engine.priors import BatchNormPrior, L2Prior, TotalVariation, has_batchnorm

__all__ = ["DeepInversionConfig", "DEEPINVERSION_PRESETS", "make_deepinversion_config", "bn_prior_enabled",
           "prior_terms", "loop_config"]

BNPriorMode = Literal["auto", "required", "off"]


@dataclass(frozen=True)
class DeepInversionConfig(ConfigBase):
    """DeepInversion's settings; the defaults are its published ImageNet ones.

    ``image_size``, ``lr_schedule``, ``param`` and the speed levers (``amp``, ``channels_last``,
    ``compile_model``, ``fold_bn``) are declared
    once in :class:`~piikit.engine.config.ConfigBase`; ``jitter``, ``flip``, ``lr`` and
    ``betas`` are too, and are given DeepInversion's published values here.

    Yin et al. 2020 (ImageNet, ResNet-50): loss ``CE + 1e-4·TV_L2 + 1e-5·‖x‖₂ +
    0.01·R_feat`` with the first BatchNorm layer's term ×10; Adam, lr 0.25 on the
    network's normalized input, betas (0.5, 0.9), cosine decay; random jitter of up to
    30 px and random horizontal flips. Multi-resolution synthesis: 2k iterations at
    112×112, then nearest-neighbour up-sampling to 224×224 and 1k more iterations (the
    single-resolution setting instead runs 20k iterations at 224: ``warmup_steps=0,
    steps=20000``).

    piikit optimizes pixels in [0, 1] rather than normalized inputs, so a DeepInversion phase
    (:func:`piikit.engine.phases.deepinversion_phases`) converts: the lr becomes ``lr × mean(model std)`` (Adam moves each value by about lr,
    so this is the same step in pixels), and TV and L2 are measured on the normalized
    image, as DeepInversion does.

    Refining a given image (PII → DeepInversion) uses ``init_lr`` instead of ``lr``: the
    publication synthesizes from noise, and PII §5.2 gives no refinement setting. lr 0.25
    moves a pixel by up to 0.125 per step on a Lite model (std 0.5) and erases the init
    within a few steps, while 0.05 keeps the class and the layout and lowers TV
    (measurements: ``docs/benchmarks.md``).

    The published weights were tuned for ResNet-50 with batches of 152 images. The
    statistics here are those of the K images refined together (often 1-8), whose floor is
    far from zero, and models differ: on EfficientNet-Lite0 (TF-ported BatchNorm
    statistics) the prior is about 1e4 even on a photo, so at 0.01 its gradient outweighs
    the cross-entropy's and can pull a weak init off its class. Tune
    ``bn_weight`` per model (PII §2.2 makes exactly this point about DeepInversion).

    Refining a PII image (the ``"refine"`` preset, :func:`refine`'s default with an init):
    100 steps at init_lr, ``bn_weight`` 1e-4 and ``tv_weight`` 1e-2, pixels; how these were
    chosen, with the measurements: ``docs/benchmarks.md``.

    The BatchNorm prior exists only for models with BatchNorm layers. ``bn_prior``:
    ``"auto"`` uses it when the model has them and otherwise warns once and goes on with
    TV/L2; ``"required"`` raises :class:`~piikit.errors.UnsupportedModelError` instead;
    ``"off"`` never uses it. The same rule holds for :func:`~piikit.refine` and a run's refine
    phase (``refine_steps``; ``refine_bn_prior=False`` there means ``"off"``).
    Passing ``bn_weight=`` to :func:`~piikit.refine` explicitly means
    ``"required"`` (you asked for it; silently dropping it would mislead).
    """

    # Loss weights (Yin et al. 2020, ImageNet).
    bn_weight: float = 0.01  # a_f, BatchNorm feature-statistics prior; published: 0.01
    first_bn_multiplier: float = 10.0  # extra factor on the first BatchNorm layer; published: 10
    tv_weight: float = 1e-4  # a_tv, total variation, L2 variant (4 directions), of the normalized image; published: 1e-4
    tv_l1_weight: float = 0.0  # total variation, L1 variant; published ImageNet setting: 0
    l2_weight: float = 1e-5  # a_l2, ‖x‖₂ of the normalized image; published: 1e-5
    bn_prior: BNPriorMode = "auto"  # "auto" | "required" | "off" (see the class docstring)

    # Resolution and steps (multi-resolution synthesis); image_size (published: 224) is in ConfigBase.
    steps: int = 1000  # iterations at full size; published: 1k after the warm-up (20k single-resolution)
    warmup_steps: int = 2000  # iterations at warmup_size first; published: 2k
    warmup_size: int = 112  # published: 112 (half of 224), then nearest-neighbour up-sampling
    warmup: bool | None = None  # None: warm up only from noise (it would blur a given init image)

    # Augmentations (no ColorShift, ensemble 1: DeepInversion has neither).
    jitter: int = 30  # random roll of up to 30 px per axis (scaled with size in the warm-up); published: 30
    flip: float = 0.5  # probability of a horizontal flip per step; published: random flips

    # Optimizer.
    lr: float = 0.25  # Adam lr on the normalized input, from noise; published: 0.25 (converted to pixels by refine)
    init_lr: float = 0.05  # the same, from an init image (not published; see the class docstring)
    betas: tuple[float, float] = (0.5, 0.9)  # published: (0.5, 0.9); lr_schedule (cosine, published) is in ConfigBase

    KIND: ClassVar[str] = "DeepInversion"

    def __post_init__(self) -> None:
        super().__post_init__()  # the types of every field, then the shared ranges
        for name in ("bn_weight", "first_bn_multiplier", "tv_weight", "tv_l1_weight", "l2_weight"):
            check_float(name, getattr(self, name), low=0.0)
        check_int("steps", self.steps, low=1)
        check_int("warmup_steps", self.warmup_steps, low=0)
        check_int("warmup_size", self.warmup_size, low=8)
        check_float("init_lr", self.init_lr, low=0.0, low_open=True)

    @property
    def total_steps(self) -> int:
        """Steps from noise (with the warm-up); from an init image, ``steps`` unless
        ``warmup=True``."""
        return self.steps + (self.warmup_steps if self.warmup is not False else 0)

    @classmethod
    def presets(cls) -> Mapping[str, DeepInversionConfig]:
        return DEEPINVERSION_PRESETS


DEEPINVERSION_PRESETS: dict[str, DeepInversionConfig] = {
    "paper": DeepInversionConfig(),
    # CPU-sized, keeping the published 2:1 warm-up split: a few minutes per class on 2 cores.
    # piikit's own presets run the BatchNorm prior on the folded model (rounding only, about half the step).
    "fast": DeepInversionConfig(warmup_steps=200, steps=100, fold_bn=True),
    # refine()'s default from an init image: see "Refining a PII image" in DeepInversionConfig.
    "refine": DeepInversionConfig(steps=100, bn_weight=1e-4, tv_weight=1e-2, fold_bn=True),
    "preview": DeepInversionConfig(warmup_steps=6, steps=6),
}


def make_deepinversion_config(config: str | DeepInversionConfig, overrides: dict[str, Any]) -> DeepInversionConfig:
    overrides = dict(overrides)
    # An explicit, positive bn_weight is a request for the BatchNorm prior: make it required
    # (unless bn_prior is given too), so a model without BatchNorm fails loudly.
    bn_weight = overrides.get("bn_weight")
    if bn_weight is not None and overrides.get("bn_prior") is None:
        overrides["bn_prior"] = "required" if bn_weight > 0 else "off"
    return DeepInversionConfig.make(config, **overrides)


def bn_prior_enabled(clf: Classifier, cfg: DeepInversionConfig) -> bool:
    """Whether a DeepInversion phase uses the BatchNorm prior on ``clf``: the one rule for
    models without BatchNorm (``bn_prior`` "auto" warns and goes on with TV/L2, "required"
    raises, "off" is silent)."""
    if cfg.bn_prior == "off":
        return False
    if cfg.bn_weight == 0:
        if cfg.bn_prior == "required":
            raise ValueError("bn_prior='required' but bn_weight=0; give the prior a positive weight")
        return False
    if has_batchnorm(clf):
        return True
    if cfg.bn_prior == "required":
        raise UnsupportedModelError(
            f"the BatchNorm prior was asked for, but {clf.name} has no BatchNorm layers with running statistics "
            "(ViTs, MLP-Mixers and LayerNorm/GroupNorm CNNs have none); borrow a CNN's with refine(..., prior_model=cnn), "
            "or refine with bn_prior='auto' or 'off' to use TV/L2 only"
        )
    warnings.warn(
        f"{clf.name} has no BatchNorm layers, so DeepInversion's BatchNorm feature-statistics prior is unavailable; "
        "refining with the TV and L2 priors only (bn_prior='off', or refine_bn_prior=False in a run, silences this)",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    return False


def prior_terms(clf: Classifier, cfg: DeepInversionConfig, use_bn: bool) -> list[LossTerm]:
    """DeepInversion's priors on ``clf`` as loss terms: TV and L2 of the normalized image, and
    the feature-statistics prior from ``clf``'s own BatchNorm layers when ``use_bn``.

    The one place a phase's feature-statistics prior is chosen: a prior taken from another
    network (a proxy CNN's BatchNorm statistics for a model without BatchNorm) belongs here.
    """
    # DeepInversion measures its image priors on the network's normalized input.
    mean, std = clf.mean.flatten().cpu(), clf.std.flatten().cpu()
    terms: list[LossTerm] = []
    if cfg.tv_weight > 0:
        terms.append(TotalVariation(cfg.tv_weight, p=2, std=std))
    if cfg.tv_l1_weight > 0:
        terms.append(TotalVariation(cfg.tv_l1_weight, p=1, std=std))
    if cfg.l2_weight > 0:
        terms.append(L2Prior(cfg.l2_weight, mean=mean, std=std))
    if use_bn:
        terms.append(BatchNormPrior(cfg.bn_weight, cfg.first_bn_multiplier))
    return terms


def loop_config(cfg: DeepInversionConfig, size: int, steps: int, jitter: int, lr: float) -> InversionConfig:
    """The step loop's config for one DeepInversion phase: one stage at full size, no
    ColorShift, ensemble 1, DeepInversion's jitter, flips and optimizer (``lr`` in pixels)."""
    return InversionConfig(
        image_size=size, stages=1, steps_per_stage=steps, schedule="none",
        jitter=jitter, flip=cfg.flip, color_shift=False, ensemble=1, micro_batch=None,
        lr=lr, betas=cfg.betas, lr_schedule=cfg.lr_schedule, param=cfg.param, lowres_factor=cfg.lowres_factor,
        amp=cfg.amp, channels_last=cfg.channels_last, compile_model=cfg.compile_model, fold_bn=cfg.fold_bn,
    )
