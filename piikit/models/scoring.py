"""Other models' verdict on images: for each image and evaluator model, the target's
probability, its rank and whether it is top-1 / top-5, plus the image's total variation per
pixel as a noise measure (higher = noisier).

A model's score of its own inversion is near 1 and says little, so inverted images are scored
by evaluator models other than the inverted one: inverting the offline ``efficientnet_lite0``
is scored by ``efficientnet_lite1`` and ``efficientnet_lite2`` by default. Here, in the models
layer, so that a result can score itself; summaries and tables of the rows are in
:mod:`piikit.analysis.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from piikit.device import module_device, resolve_device
from piikit.errors import warn_renamed
from piikit.images import as_batch
from piikit.labels import label, resolve_classes
from piikit.models.classifier import Classifier
from piikit.models.loading import OFFLINE_MODELS, load_model
from piikit.validation import check_int

__all__ = ["score", "predict", "tv_per_pixel", "default_evaluators", "as_evaluator"]


def tv_per_pixel(images: torch.Tensor) -> torch.Tensor:
    """The TV *metric*: (N,) mean absolute difference between horizontally and vertically
    adjacent pixels, a noise measure (the TV *prior*, a loss, is
    :func:`piikit.engine.priors.tv_loss`).

    About 0.01-0.05 for photos, 0.33 for uniform noise.
    """
    dh = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(dim=(-3, -2, -1))
    dw = (images[..., :, 1:] - images[..., :, :-1]).abs().mean(dim=(-3, -2, -1))
    return (dh + dw) / 2


def default_evaluators(inverted: str | None = None) -> list[str]:
    """The offline models other than ``inverted`` (all of them if it is none of them)."""
    return [name for name in OFFLINE_MODELS if name != inverted]


@lru_cache(maxsize=4)
def _cached(name: str) -> Classifier:
    return load_model(name)


def as_evaluator(spec: str | Classifier | torch.nn.Module) -> Classifier:
    """A model name (loaded once and cached), classifier or module as a :class:`Classifier`."""
    return _cached(spec) if isinstance(spec, str) else load_model(spec)


class _Scorable(Protocol):
    """What :func:`score` reads of an :class:`~piikit.InversionResult` (and writes: its ``scores``)."""

    images: torch.Tensor
    targets: list[int]
    model_name: str
    scores: list[dict[str, Any]] | None


def _is_result(value: Any) -> bool:
    return not isinstance(value, torch.Tensor) and hasattr(value, "targets") and hasattr(value, "model_name")


@torch.no_grad()
def score(
    models: Sequence[str | Classifier | torch.nn.Module] | str | Classifier | torch.nn.Module | None = None,
    images: torch.Tensor | _Scorable | None = None,
    targets: int | str | Sequence[int | str] | None = None,
    *,
    inverted: str | None = None,
    device: str | torch.device | None = "auto",
    batch_size: int = 16,
    resize: bool = True,
    evaluators: Any = None,
) -> list[dict[str, Any]]:
    """Score images against their target classes with one or more evaluator models.

    By default each evaluator sees the images resized (bilinear, antialiased) to its own
    input size, e.g. 240 px for Lite1 and 260 px for Lite2 (square inversions keep their
    shape; a non-square photo is squashed, not cropped). Inversions are full of fine
    texture, so this rescaling matters: ``resize=False`` feeds them as they are to
    evaluators that accept any size, which for 224-px Lite0 inversions usually gives
    higher probabilities. The size each evaluator saw is in the rows.

    Models first, then what they read (the argument order of every piikit verb):
    ``score(models, images, targets)``. The older order ``score(images, targets, evaluators)``
    and the keyword ``evaluators=`` still work for one release, with a DeprecationWarning.

    Args:
        models: the evaluators: model names, classifiers or modules; None: the offline
            models other than ``inverted``.
        images: N×C×H×W in [0, 1] (or one C×H×W image); every evaluator must take C
            channels (1 for grayscale models such as the digits ones). Or an
            :class:`~piikit.InversionResult`, which brings its own targets and the name of
            the model that made it, and keeps the rows in its ``scores`` (as
            :meth:`InversionResult.score`).
        targets: N class indices or names (one per image; a single one is repeated);
            names are looked up in each evaluator's ``class_names``. Not with a result.
        inverted: the name of the model that made the images, to exclude it by default.
        device: where the evaluators run (``"auto"``: CUDA, then MPS, then the CPU).
        batch_size: images per forward pass.
        resize: resize to each evaluator's input size (see above).

    Returns:
        One row per (evaluator, image): ``evaluator``, ``image``, ``target``, ``label``,
        ``prob``, ``rank`` (1 = top-1), ``top1``, ``top5``, ``tv`` and ``size`` ([H, W]
        the evaluator saw).

    >>> rows = score(["efficientnet_lite1"], images, [980, 11])  # doctest: +SKIP
    >>> summarize(rows)["efficientnet_lite1"]["top5"]  # doctest: +SKIP
    1.0
    """
    if isinstance(models, torch.Tensor) or _is_result(models):  # the older order: images first
        warn_renamed("score(images, targets, evaluators)", "score(models, images, targets)", spelling="order")
        models, images, targets = targets, models, images
    if evaluators is not None:
        warn_renamed("score(evaluators=...)", "score(models=...)", spelling="keyword")
        models = evaluators
    if _is_result(images):
        if targets is not None:
            raise TypeError("a result brings its own targets: score(models, result), not a third positional argument")
        result = images
        result.scores = score(models, result.images, result.targets, inverted=inverted or result.model_name,
                              device=device, batch_size=batch_size, resize=resize)
        return result.scores
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be an N×C×H×W tensor or an InversionResult, got {type(images).__name__}")
    if targets is None:
        raise TypeError("score(models, images, targets) needs the images' target classes")
    images = as_batch(images)
    if models is None:
        models = default_evaluators(inverted)
    elif isinstance(models, (str, torch.nn.Module)):
        models = [models]
    dev = resolve_device(device)
    tv = tv_per_pixel(images.float()).tolist()
    rows: list[dict[str, Any]] = []
    for spec in models:
        model = as_evaluator(spec).to(dev).eval()
        if images.shape[1] != model.in_chans:
            raise ValueError(f"{model.name} takes {model.in_chans}-channel images, but the images have "
                             f"{images.shape[1]} channel(s) (shape {tuple(images.shape)})")
        # Class names are the evaluator's own (a custom model's class_names, or ImageNet's).
        target_ids = resolve_classes(targets, model.class_names)
        if len(target_ids) == 1 and len(images) > 1:
            target_ids = target_ids * len(images)
        if len(target_ids) != len(images):
            raise ValueError(f"{len(images)} images but {len(target_ids)} targets")
        if max(target_ids) >= model.num_classes:
            raise ValueError(f"target {max(target_ids)} is out of range for {model.name} ({model.num_classes} classes)")
        probs = []
        seen = list(model.input_size if resize or model.fixed_input_size else images.shape[-2:])
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(dev).float()
            if resize and tuple(x.shape[-2:]) != model.input_size:
                x = F.interpolate(x, size=model.input_size, mode="bilinear", align_corners=False, antialias=True)
            probs.append(model(x).float().softmax(-1).cpu())
        p = torch.cat(probs)
        for i, t in enumerate(target_ids):
            rank = int((p[i] > p[i, t]).sum().item()) + 1
            rows.append({
                "evaluator": model.name, "image": i, "target": t, "label": label(t, model.class_names),
                "prob": float(p[i, t]), "rank": rank, "top1": rank == 1, "top5": rank <= 5, "tv": tv[i],
                "size": seen,
            })
    return rows


def predict(
    model: str | Classifier | torch.nn.Module,
    images: torch.Tensor,
    k: int = 5,
    *,
    device: str | torch.device | None = "auto",
) -> list[dict[str, Any]]:
    """What a model sees in images: its ``k`` most probable classes for each, as rows for
    :func:`piikit.tables.format_table`. The images go in as they are (load a photo
    at the model's size with :func:`piikit.images.load_photo`).

    Returns:
        ``k`` rows per image, best first: ``image``, ``rank``, ``class`` (index), ``label``
        ("idx: name", the model's own class names) and ``prob``.

    >>> predict("efficientnet_lite0", load_photo("coffee", 224))[0]["label"]  # doctest: +SKIP
    '967: espresso'
    """
    images = as_batch(images)
    clf = as_evaluator(model).to(resolve_device(device)).eval()
    k = check_int("k", k, low=1, high=clf.num_classes)
    with torch.no_grad():
        probs = clf(images.to(module_device(clf)).float()).float().softmax(-1).cpu()
    best = probs.topk(k, dim=-1)
    return [{"image": i, "rank": r + 1, "class": int(c), "label": label(int(c), clf.class_names), "prob": float(p)}
            for i, (ps, cs) in enumerate(zip(best.values, best.indices)) for r, (p, c) in enumerate(zip(ps, cs))]
