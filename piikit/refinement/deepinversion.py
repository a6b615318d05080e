"""DeepInversion (Yin et al. 2020) as a refinement step, e.g. of a Plug-In Inversion result.

DeepInversion optimizes an image for cross-entropy plus image priors (total variation, an
L2 norm) and a feature-statistics prior that makes the batch statistics of every
BatchNorm layer's input match the layer's running statistics. PII §5.2 / Fig. 9: started
from PII's output instead of noise, DeepInversion keeps PII's layout and semantics and
adds natural colours and textures.

:func:`refine` runs DeepInversion's phases (:func:`piikit.engine.phases.deepinversion_phases`,
the same ones a run's refine phase uses: ``InversionConfig.refine_steps``) in the step loop of
:func:`piikit.invert` (:class:`piikit.Inversion`): no ColorShift, an ensemble of 1, jitter and
flips, one full-size stage (after a warm-up from noise), and the priors of
:mod:`piikit.engine.priors` as loss terms. It returns an :class:`~piikit.InversionResult`, so
showing, saving and scoring work unchanged.

>>> pii = piikit.invert("efficientnet_lite0", ["volcano", "goldfinch"], preset="fast")  # doctest: +SKIP
>>> refined = refine("efficientnet_lite0", init=pii)  # doctest: +SKIP
>>> refined.history["bn"]  # the BatchNorm prior at every step  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from piikit.device import resolve_device
from piikit.engine.callbacks import Callback, StepState
from piikit.engine.deepinversion import DEEPINVERSION_PRESETS, DeepInversionConfig, make_deepinversion_config
from piikit.engine.inversion import Inversion
from piikit.engine.objectives import LossTerm
from piikit.engine.phases import deepinversion_phases
from piikit.engine.result import InversionResult
from piikit.images import as_batch, as_init_images
from piikit.models import Classifier, load_model

__all__ = ["DeepInversionConfig", "DEEPINVERSION_PRESETS", "refine"]


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
    prior_model: Classifier | nn.Module | str | None = None,
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
        prior_model: a network with BatchNorm trained on the same data (a CNN: Lite0 for
            ImageNet models, the digits CNN for the digits models) whose BatchNorm prior is
            borrowed in place of the model's own (SMI, Hu et al. 2024;
            :class:`~piikit.engine.proxy_prior.ProxyBatchNormPrior`, weighted by ``bn_weight``
            and ``first_bn_multiplier``): DeepInversion's feature-statistics prior for a ViT
            or a Mixer. ``refine(vit, init=result, prior_model=cnn)``.
        callbacks: as for :func:`piikit.invert`; a warm-up and the full-size phase are one run
            (steps and stages counted over both).
        progress: show a progress bar.
        **overrides: any :class:`DeepInversionConfig` field; ``None`` keeps the value (except image_size and warmup, where None is a value: see :meth:`~piikit.engine.config.ConfigBase.replace`).

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
    cfg = make_deepinversion_config(preset, overrides)
    dev = resolve_device(device)
    clf = load_model(model).to(dev)
    images: torch.Tensor | None
    if isinstance(init, InversionResult):
        images = init.images
        targets = init.targets if targets is None else targets
    else:
        images = None if init is None else as_init_images(init)  # arrays, uint8, PNG paths
    if images is not None:
        images = as_batch(images, "init", clf.in_chans, count="K")
    if targets is None:
        raise ValueError("refine needs target classes (targets=..., or a PII result as init)")
    proxy = None if prior_model is None else load_model(prior_model).to(dev)
    size = cfg.image_size or clf.input_size[0]
    phases = deepinversion_phases(clf, cfg, size, from_image=images is not None, prior_model=proxy)
    result = Inversion(clf, targets, phases[-1].config, phases=phases, init=images, seed=seed, device=dev,
                       terms=terms, callbacks=callbacks, progress=progress).run()
    result.extra.update({"method": "deepinversion", "deepinversion": cfg.to_dict()})
    return result
