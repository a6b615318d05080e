"""DeepInversion (Yin et al. 2020) as a refinement step, e.g. of a Plug-In Inversion result.

DeepInversion optimizes an image for cross-entropy plus image priors (total variation, an
L2 norm) and a feature-statistics prior that makes the batch statistics of every
BatchNorm layer's input match the layer's running statistics. PII §5.2 / Fig. 9: started
from PII's output instead of noise, DeepInversion keeps PII's layout and semantics and
adds natural colours and textures.

:func:`refine` runs the same step loop as :func:`piikit.invert` (:class:`piikit.Inversion`)
with DeepInversion's settings: no ColorShift, an ensemble of 1, jitter and flips, one
full-size stage, and the priors of :mod:`piikit.refinement.priors` as loss terms. It returns an
:class:`~piikit.InversionResult`, so showing, saving and scoring work unchanged.

>>> pii = piikit.invert("efficientnet_lite0", ["volcano", "goldfinch"], preset="fast")  # doctest: +SKIP
>>> refined = refine("efficientnet_lite0", init=pii)  # doctest: +SKIP
>>> refined.history["bn"]  # the BatchNorm prior at every step  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from piikit.engine.config import ConfigBase, InversionConfig
from piikit.device import resolve_device
from piikit.errors import UnsupportedModelError
from piikit.engine.inversion import Callback, Inversion, StepState, as_init_images
from piikit.models import Classifier, load_model
from piikit.engine.objectives import LossTerm
from piikit.refinement.priors import BatchNormPrior, L2Prior, TotalVariation, has_batchnorm
from piikit.engine.result import InversionResult

__all__ = ["DeepInversionConfig", "DEEPINVERSION_PRESETS", "refine"]

BNPriorMode = Literal["auto", "required", "off"]
BN_PRIOR_MODES: tuple[str, ...] = get_args(BNPriorMode)


@dataclass(frozen=True)
class DeepInversionConfig(ConfigBase):
    """DeepInversion's settings; the defaults are its published ImageNet ones.

    ``image_size``, ``lr_schedule``, ``param``, ``amp`` and ``channels_last`` are declared
    once in :class:`~piikit.engine.config.ConfigBase`; ``jitter``, ``flip``, ``lr`` and
    ``betas`` are too, and are given DeepInversion's published values here.

    Yin et al. 2020 (ImageNet, ResNet-50): loss ``CE + 1e-4·TV_L2 + 1e-5·‖x‖₂ +
    0.01·R_feat`` with the first BatchNorm layer's term ×10; Adam, lr 0.25 on the
    network's normalized input, betas (0.5, 0.9), cosine decay; random jitter of up to
    30 px and random horizontal flips. Multi-resolution synthesis: 2k iterations at
    112×112, then nearest-neighbour up-sampling to 224×224 and 1k more iterations (the
    single-resolution setting instead runs 20k iterations at 224: ``warmup_steps=0,
    steps=20000``).

    piikit optimizes pixels in [0, 1] rather than normalized inputs, so :func:`refine`
    converts: the lr becomes ``lr × mean(model std)`` (Adam moves each value by about lr,
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
    ``"off"`` never uses it. Passing ``bn_weight=`` to :func:`refine` explicitly means
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
        super().__post_init__()
        weights = (self.bn_weight, self.first_bn_multiplier, self.tv_weight, self.tv_l1_weight, self.l2_weight)
        if any(w < 0 for w in weights):
            raise ValueError("prior weights and first_bn_multiplier must be >= 0")
        if self.bn_prior not in BN_PRIOR_MODES:
            raise ValueError(f"bn_prior must be one of {', '.join(BN_PRIOR_MODES)}, got {self.bn_prior!r}")
        if self.steps < 1 or self.warmup_steps < 0:
            raise ValueError(f"need steps >= 1 and warmup_steps >= 0, got {self.steps}, {self.warmup_steps}")
        if self.warmup_size < 8:
            raise ValueError("warmup_size must be >= 8")
        if self.init_lr <= 0:
            raise ValueError("init_lr must be > 0")

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
    "fast": DeepInversionConfig(warmup_steps=200, steps=100),
    # refine()'s default from an init image: see "Refining a PII image" in DeepInversionConfig.
    "refine": DeepInversionConfig(steps=100, bn_weight=1e-4, tv_weight=1e-2),
    "preview": DeepInversionConfig(warmup_steps=6, steps=6),
}


def _config(config: str | DeepInversionConfig, overrides: dict[str, Any]) -> DeepInversionConfig:
    overrides = dict(overrides)
    # An explicit, positive bn_weight is a request for the BatchNorm prior: make it required
    # (unless bn_prior is given too), so a model without BatchNorm fails loudly.
    bn_weight = overrides.get("bn_weight")
    if bn_weight is not None and overrides.get("bn_prior") is None:
        overrides["bn_prior"] = "required" if bn_weight > 0 else "off"
    return DeepInversionConfig.make(config, **overrides)


def _bn_enabled(clf: Classifier, cfg: DeepInversionConfig) -> bool:
    """Whether to use the BatchNorm prior; raise or warn (once per call) when it cannot be."""
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
            "(ViTs, MLP-Mixers and LayerNorm/GroupNorm CNNs have none); refine with bn_prior='auto' or 'off' to "
            "use TV/L2 only"
        )
    warnings.warn(
        f"{clf.name} has no BatchNorm layers, so DeepInversion's BatchNorm feature-statistics prior is unavailable; "
        "refining with the TV and L2 priors only (pass bn_prior='off' to silence this)",
        UserWarning,
        stacklevel=3,
    )
    return False


def _terms(clf: Classifier, cfg: DeepInversionConfig, use_bn: bool) -> list[LossTerm]:
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


def _loop_config(cfg: DeepInversionConfig, size: int, steps: int, jitter: int, lr: float) -> InversionConfig:
    """The step loop's config for one DeepInversion phase: one stage at full size, no
    ColorShift, ensemble 1, DeepInversion's jitter, flips and optimizer."""
    return InversionConfig(
        image_size=size, stages=1, steps_per_stage=steps, schedule="none",
        jitter=jitter, flip=cfg.flip, color_shift=False, ensemble=1, micro_batch=None,
        lr=lr, betas=cfg.betas, lr_schedule=cfg.lr_schedule, param=cfg.param, lowres_factor=cfg.lowres_factor,
        amp=cfg.amp, channels_last=cfg.channels_last,
    )


def _merge(first: InversionResult, second: InversionResult) -> InversionResult:
    """The warm-up and full-size phases as one result (stage numbers run on)."""
    history = {}
    for key in second.history:
        a, b = first.history.get(key), second.history[key]
        if key == "stage":
            b = b + (int(a.max()) + 1 if a is not None and a.numel() else 0)
        history[key] = b if a is None else torch.cat([a, b])
    return dataclasses.replace(
        second, history=history, snapshots=[*first.snapshots, *second.snapshots],
        steps_done=first.steps_done + second.steps_done, elapsed_s=first.elapsed_s + second.elapsed_s,
    )


def refine(
    model: Classifier | nn.Module | str,
    init: InversionResult | torch.Tensor | None = None,
    targets: int | str | Sequence[int | str] | None = None,
    preset: str | DeepInversionConfig | None = None,
    *,
    config: str | DeepInversionConfig | None = None,
    seed: int | None = 0,
    device: str | torch.device | None = "auto",
    terms: Sequence[LossTerm] = (),
    callbacks: Sequence[Callback | Callable[[StepState], Any]] = (),
    progress: bool = True,
    **overrides: Any,
) -> InversionResult:
    """Refine images by DeepInversion (Yin et al. 2020), or synthesize them from noise.

    With a PII result as ``init`` this is PII → DeepInversion (PII §5.2, Fig. 9). It runs
    :class:`piikit.Inversion`'s step loop with ColorShift off, an ensemble of 1,
    DeepInversion's jitter (30 px), flips, Adam (lr 0.25 on normalized inputs from noise,
    0.05 from an init image; betas (0.5, 0.9), cosine decay) and its priors (TV 1e-4,
    L2 1e-5, BatchNorm statistics 0.01 with ×10 on the first layer): see
    :class:`DeepInversionConfig`. From noise, it first
    runs the published multi-resolution warm-up (2k steps at 112 px, then 1k at 224 px);
    from an init image it runs ``steps`` at full size only.

    On a model without BatchNorm (ViTs, MLP-Mixers) the BatchNorm prior is unavailable:
    refinement goes on with TV/L2 and warns once, or raises if the prior was asked for
    explicitly (``bn_weight=...`` or ``bn_prior="required"``).

    Args:
        model: a :class:`~piikit.Classifier`, a module or a name for :func:`piikit.load_model`.
        init: a PII :class:`~piikit.InversionResult` (its images and targets), K×C×H×W
            images in [0, 1] (C: the model's input channels), or None to start from noise.
        targets: the K target classes; default: ``init.targets`` for a result.
        preset: a preset name or a :class:`DeepInversionConfig` (the same argument as
            :func:`piikit.invert`'s; ``config=`` is its older name and still works). Default: ``"refine"``
            (settings measured to keep a PII image's class and smooth it) with an init
            image, ``"paper"`` (the published settings) from noise. Also ``"fast"``
            (200 + 100 steps of the published weights, for CPUs) and ``"preview"`` (seconds).
        seed: seeds the loop's generators (jitter, flips, noise); None draws one.
        device: ``"auto"`` or any torch device.
        terms: extra loss terms added to DeepInversion's.
        callbacks: as for :func:`piikit.invert`; with a warm-up, each phase counts its steps
            from 0.
        progress: show a progress bar.
        **overrides: any :class:`DeepInversionConfig` field; ``None`` keeps the value.

    Returns:
        An :class:`~piikit.InversionResult` with the history of every term (``"tv"``,
        ``"l2"``, ``"bn"``, ``"loss"``, ``"prob"``...) over all steps; ``extra`` holds the
        DeepInversion config.

    Raises:
        UnsupportedModelError: the BatchNorm prior was required but the model has none.

    >>> refined = refine("efficientnet_lite0", init=pii_result)  # doctest: +SKIP
    """
    if preset is None:
        preset = config  # the older keyword
    if preset is None:
        preset = "paper" if init is None else "refine"
    cfg = _config(preset, overrides)
    dev = resolve_device(device)
    clf = load_model(model).to(dev)
    images: torch.Tensor | None
    if isinstance(init, InversionResult):
        images = init.images
        targets = init.targets if targets is None else targets
    else:
        images = None if init is None else as_init_images(init)  # arrays, uint8, PNG paths
    if images is not None:
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != clf.in_chans:
            raise ValueError(f"init must be K×{clf.in_chans}×H×W images in [0, 1] (the model's channels), "
                             f"got shape {tuple(images.shape)}")
    if targets is None:
        raise ValueError("refine needs target classes (targets=..., or a PII result as init)")
    use_bn = _bn_enabled(clf, cfg)
    size = cfg.image_size or clf.input_size[0]
    # Normalized-input lr → pixel lr (see DeepInversionConfig); a gentler one from an init image.
    lr = (cfg.lr if images is None else cfg.init_lr) * float(clf.std.mean())
    warmup = cfg.warmup if cfg.warmup is not None else images is None
    all_terms = [*_terms(clf, cfg, use_bn), *terms]
    common = dict(seed=seed, device=dev, callbacks=callbacks, progress=progress, terms=all_terms)
    extra = {"method": "deepinversion", "deepinversion": cfg.to_dict(), "bn_prior_used": use_bn}

    first: InversionResult | None = None
    if warmup and cfg.warmup_steps > 0 and cfg.warmup_size < size:
        jitter = round(cfg.jitter * cfg.warmup_size / size)  # the same fraction of the image
        loop = _loop_config(cfg, cfg.warmup_size, cfg.warmup_steps, jitter, lr)
        first = Inversion(clf, targets, loop, init=images, **common).run()  # type: ignore[arg-type]
        if first.interrupted:
            first.extra.update(extra)
            return first
        # Published: nearest-neighbour up-sampling from the warm-up size to full size (the
        # loop's own bilinear resize of init is then the identity).
        images = F.interpolate(first.images, size=(size, size), mode="nearest")
        if seed is not None:
            common["seed"] = seed + 1  # fresh jitter/flip draws for the second phase
    loop = _loop_config(cfg, size, cfg.steps, cfg.jitter, lr)
    result = Inversion(clf, targets, loop, init=images, **common).run()  # type: ignore[arg-type]
    if first is not None:
        result = _merge(first, result)
    result.seed = seed
    result.extra.update(extra)
    return result
