"""A run as a list of phases: Plug-In Inversion's stages, then optionally DeepInversion.

A phase is one step loop's settings (an :class:`InversionConfig`: its stages, augmentations
and optimizer) and its own priors. :class:`~piikit.Inversion` runs the phases one after the
other, each started from the previous one's final image, as one run: one step count, stage
numbers that run on, one history, one progress bar, one set of callbacks.

"DeepInversion after X" is written once, in :func:`deepinversion_phases`: a run's refine
phase (``InversionConfig.refine_steps``), :func:`piikit.refine` and the explorer all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from piikit.engine.config import InversionConfig
from piikit.engine.deepinversion import (DEEPINVERSION_PRESETS, DeepInversionConfig, bn_prior_enabled, loop_config,
                                         prior_terms)
from piikit.engine.objectives import LossTerm
from piikit.engine.priors import L2Prior, TotalVariation
from piikit.engine.proxy_prior import ProxyBatchNormPrior
from piikit.models import Classifier

__all__ = ["Phase", "run_phases", "deepinversion_phases", "refine_phase_config"]


@dataclass(frozen=True)
class Phase:
    """One part of a run.

    Attributes:
        config: the step loop's settings for this phase (its ``refine_steps`` is not read).
        terms: this phase's priors, besides the run's own ``terms``.
        enter: how the previous phase's image is resized to this phase's first size
            (DeepInversion's warm-up goes to full size by nearest-neighbour up-sampling).
        name: what the phase is, for messages.
    """

    config: InversionConfig
    terms: tuple[LossTerm, ...] = ()
    enter: Literal["bilinear", "nearest"] = "bilinear"
    name: str = "stages"

    @property
    def steps(self) -> int:
        return self.config.stages * self.config.steps_per_stage


def _config_priors(config: InversionConfig) -> tuple[LossTerm, ...]:
    """The optional priors an :class:`InversionConfig` asks for (the PII Fig. 4 TV ablation); PII uses none."""
    terms: list[LossTerm] = []
    if config.tv_weight > 0:
        terms.append(TotalVariation(config.tv_weight))
    if config.l2_weight > 0:
        terms.append(L2Prior(config.l2_weight))
    return tuple(terms)


def refine_phase_config(config: InversionConfig) -> DeepInversionConfig:
    """The DeepInversion settings of ``config``'s refine phase: the ``"refine"`` preset for
    ``refine_steps`` steps at ``refine_tv_weight``, the BatchNorm prior unless ``refine_bn_prior=False``,
    and the run's own speed levers."""
    return DEEPINVERSION_PRESETS["refine"].replace(
        steps=config.refine_steps, tv_weight=config.refine_tv_weight, amp=config.amp, channels_last=config.channels_last,
        compile_model=config.compile_model, fold_bn=config.fold_bn, bn_prior="auto" if config.refine_bn_prior else "off")


def run_phases(config: InversionConfig, model: Classifier, size: int,
               prior_model: Classifier | None = None) -> list[Phase]:
    """The phases of a Plug-In Inversion run: its stages, then the refine phase if ``refine_steps``
    (with ``prior_model``'s BatchNorm prior in place of the model's own, if given)."""
    phases = [Phase(config, _config_priors(config))]
    if config.refine_steps:
        phases += deepinversion_phases(model, refine_phase_config(config), size, from_image=True,
                                       prior_model=prior_model)
    return phases


def deepinversion_phases(model: Classifier, cfg: DeepInversionConfig, size: int, *, from_image: bool,
                         prior_model: Classifier | None = None) -> list[Phase]:
    """DeepInversion (Yin et al. 2020) as phases of a run on ``model`` at ``size`` px:
    from noise the published warm-up (``warmup_steps`` at ``warmup_size``) then ``steps`` at
    full size; from an image (``from_image``) ``steps`` at full size, unless ``cfg.warmup``
    says otherwise.

    The lr is converted once here: DeepInversion's is on the normalized input, piikit moves
    pixels, so it is ``lr × mean(std)`` (``init_lr`` from an image). Whether the BatchNorm
    prior is used follows :func:`~piikit.engine.deepinversion.bn_prior_enabled`; with a
    ``prior_model`` (a network with BatchNorm trained on the same data) its BatchNorm prior,
    at the same weights, takes the place of the model's own
    (:class:`~piikit.engine.proxy_prior.ProxyBatchNormPrior`: SMI's idea, for ViTs and Mixers).
    """
    if prior_model is None:
        terms = tuple(prior_terms(model, cfg, bn_prior_enabled(model, cfg)))
    else:
        terms = (*prior_terms(model, cfg, False),
                 ProxyBatchNormPrior(prior_model, cfg.bn_weight, cfg.first_bn_multiplier))
    lr = (cfg.init_lr if from_image else cfg.lr) * float(model.std.mean())
    warmup = cfg.warmup if cfg.warmup is not None else not from_image
    phases = []
    if warmup and cfg.warmup_steps > 0 and cfg.warmup_size < size:
        jitter = round(cfg.jitter * cfg.warmup_size / size)  # the same fraction of the image
        phases.append(Phase(loop_config(cfg, cfg.warmup_size, cfg.warmup_steps, jitter, lr), terms,
                            name="DeepInversion warm-up"))
    # Published: nearest-neighbour up-sampling from the warm-up size to full size.
    phases.append(Phase(loop_config(cfg, size, cfg.steps, cfg.jitter, lr), terms,
                        enter="nearest" if phases else "bilinear", name="DeepInversion"))
    return phases
