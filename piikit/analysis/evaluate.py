"""Measuring inversion quality: do *other* models recognise the images?

A model's score of its own inversion is near 1 and says little. piikit scores inverted
images with evaluator models other than the inverted one: for each image and evaluator,
the target probability, whether the target is top-1 / top-5, and its rank; plus the
image's total variation per pixel as a noise measure (higher = noisier). Inverting the
offline ``efficientnet_lite0`` is scored by ``efficientnet_lite1`` and ``efficientnet_lite2``
by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from piikit.device import module_device, resolve_device
from piikit.labels import label, resolve_classes
from piikit.models import OFFLINE_MODELS, Classifier, load_model
from piikit.validation import check_int

__all__ = ["score", "predict", "summarize", "cross_matrix", "format_scores", "tv_per_pixel", "region_contrast", "default_evaluators", "as_evaluator"]


def tv_per_pixel(images: torch.Tensor) -> torch.Tensor:
    """The TV *metric*: (N,) mean absolute difference between horizontally and vertically
    adjacent pixels, a noise measure (the TV *prior*, a loss, is
    :func:`piikit.refinement.priors.tv_loss`).

    About 0.01-0.05 for photos, 0.33 for uniform noise.
    """
    dh = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(dim=(-3, -2, -1))
    dw = (images[..., :, 1:] - images[..., :, :-1]).abs().mean(dim=(-3, -2, -1))
    return (dh + dw) / 2


def region_contrast(images: torch.Tensor, mask: torch.Tensor, ring: int = 2) -> torch.Tensor:
    """(N,) how much brighter a region is than its surround: the mean over channels and
    ``mask``'s pixels (H×W, bool) minus the mean over the ring of pixels up to ``ring`` px
    around it (inside the image). Positive: the region stands out bright, e.g. a backdoor's
    trigger patch drawn by an inversion (notebook 12).

    >>> x = torch.zeros(1, 1, 8, 8); x[..., 2:4, 2:4] = 1.0
    >>> m = torch.zeros(8, 8, dtype=torch.bool); m[2:4, 2:4] = True
    >>> round(float(region_contrast(x, m)[0]), 2)
    1.0
    """
    mask = mask.to(images.device, torch.bool)
    grown = F.max_pool2d(mask[None, None].float(), 2 * ring + 1, stride=1, padding=ring)[0, 0].bool()
    surround = grown & ~mask
    if not mask.any() or not surround.any():
        raise ValueError("the mask must select some pixels and leave a surround")
    x = images.float().mean(dim=-3) if images.ndim == 4 else images.float()
    return x[:, mask].mean(1) - x[:, surround].mean(1)


def default_evaluators(inverted: str | None = None) -> list[str]:
    """The offline models other than ``inverted`` (all of them if it is none of them)."""
    return [name for name in OFFLINE_MODELS if name != inverted]


@lru_cache(maxsize=4)
def _cached(name: str) -> Classifier:
    return load_model(name)


def as_evaluator(spec: str | Classifier | torch.nn.Module) -> Classifier:
    """A model name (loaded once and cached), classifier or module as a :class:`Classifier`."""
    return _cached(spec) if isinstance(spec, str) else load_model(spec)


class _ScoredResult(Protocol):
    """What :func:`score` needs of an :class:`~piikit.InversionResult` (which imports this
    module: a protocol, not an import, keeps the two free of a loop)."""

    targets: list[int]

    def score(self, evaluators: Any = None, **kwargs: Any) -> list[dict[str, Any]]: ...


@torch.no_grad()
def score(
    images: torch.Tensor | _ScoredResult,
    targets: int | str | Sequence[int | str] | None = None,
    evaluators: Sequence[str | Classifier | torch.nn.Module] | str | Classifier | None = None,
    *,
    inverted: str | None = None,
    device: str | torch.device | None = "auto",
    batch_size: int = 16,
    resize: bool = True,
) -> list[dict[str, Any]]:
    """Score images against their target classes with one or more evaluator models.

    By default each evaluator sees the images resized (bilinear, antialiased) to its own
    input size, e.g. 240 px for Lite1 and 260 px for Lite2 (square inversions keep their
    shape; a non-square photo is squashed, not cropped). Inversions are full of fine
    texture, so this rescaling matters: ``resize=False`` feeds them as they are to
    evaluators that accept any size, which for 224-px Lite0 inversions usually gives
    higher probabilities. The size each evaluator saw is in the rows.

    Args:
        images: N×C×H×W in [0, 1] (or one C×H×W image); every evaluator must take C
            channels (1 for grayscale models such as the digits ones). Or an
            :class:`~piikit.InversionResult`, which brings its own targets and the name of
            the model that made it (as :meth:`InversionResult.score`).
        targets: N class indices or names (one per image; a single one is repeated);
            names are looked up in each evaluator's ``class_names``. Not with a result.
        evaluators: model names, classifiers or modules; default: the offline models
            other than ``inverted``.
        inverted: the name of the model that made the images, to exclude it by default.
        device: where the evaluators run (``"auto"``: CUDA, then MPS, then the CPU).
        batch_size: images per forward pass.
        resize: resize to each evaluator's input size (see above).

    Returns:
        One row per (evaluator, image): ``evaluator``, ``image``, ``target``, ``label``,
        ``prob``, ``rank`` (1 = top-1), ``top1``, ``top5``, ``tv`` and ``size`` ([H, W]
        the evaluator saw).

    >>> rows = score(images, [980, 11], ["efficientnet_lite1"])  # doctest: +SKIP
    >>> summarize(rows)["efficientnet_lite1"]["top5"]  # doctest: +SKIP
    1.0
    """
    if not isinstance(images, torch.Tensor) and callable(getattr(images, "score", None)) and hasattr(images, "targets"):
        if targets is not None:
            raise TypeError("a result brings its own targets: score(result, evaluators=[...]), not a second "
                            "positional argument")
        return images.score(evaluators, device=device, batch_size=batch_size, resize=resize,
                            **({} if inverted is None else {"inverted": inverted}))
    if targets is None:
        raise TypeError("score(images, targets, ...) needs the images' target classes")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be an N×C×H×W tensor or an InversionResult, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"images must be N×C×H×W, got {tuple(images.shape)}")
    if evaluators is None:
        evaluators = default_evaluators(inverted)
    elif isinstance(evaluators, (str, torch.nn.Module)):
        evaluators = [evaluators]
    dev = resolve_device(device)
    tv = tv_per_pixel(images.float()).tolist()
    rows: list[dict[str, Any]] = []
    for spec in evaluators:
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
    :func:`piikit.interfaces.tables.format_table`. The images go in as they are (load a photo
    at the model's size with :func:`piikit.images.load_photo`).

    Returns:
        ``k`` rows per image, best first: ``image``, ``rank``, ``class`` (index), ``label``
        ("idx: name", the model's own class names) and ``prob``.

    >>> predict("efficientnet_lite0", load_photo("coffee", 224))[0]["label"]  # doctest: +SKIP
    '967: espresso'
    """
    if images.ndim == 3:
        images = images[None]
    clf = as_evaluator(model).to(resolve_device(device)).eval()
    k = check_int("k", k, low=1, high=clf.num_classes)
    with torch.no_grad():
        probs = clf(images.to(module_device(clf)).float()).float().softmax(-1).cpu()
    best = probs.topk(k, dim=-1)
    return [{"image": i, "rank": r + 1, "class": int(c), "label": label(int(c), clf.class_names), "prob": float(p)}
            for i, (ps, cs) in enumerate(zip(best.values, best.indices)) for r, (p, c) in enumerate(zip(ps, cs))]


def summarize(rows: Sequence[dict[str, Any]], by: str = "evaluator") -> dict[Any, dict[str, float]]:
    """Mean scores per group of rows (per evaluator by default; ``by="label"`` gives one
    entry per class): ``n``, ``top1`` and ``top5`` hit rates, mean ``prob``, mean ``tv``.

    >>> summarize([{"evaluator": "m", "top1": True, "top5": True, "prob": 0.5, "tv": 0.1},
    ...            {"evaluator": "m", "top1": False, "top5": True, "prob": 0.1, "tv": 0.3}])["m"]["top1"]
    0.5
    """
    out: dict[Any, dict[str, float]] = {}
    for key in dict.fromkeys(r[by] for r in rows):
        mine = [r for r in rows if r[by] == key]
        n = len(mine)
        out[key] = {
            "n": n,
            "top1": sum(r["top1"] for r in mine) / n,
            "top5": sum(r["top5"] for r in mine) / n,
            "prob": sum(r["prob"] for r in mine) / n,
            "tv": sum(r["tv"] for r in mine) / n,
        }
    return out


def cross_matrix(
    results: Mapping[str, Any], judges: Mapping[str, Classifier], device: str | torch.device | None = "cpu"
) -> dict[str, dict[str, dict[str, float]]]:
    """Every model's inversions scored by every model: ``made_by -> {judged_by -> summary}``.

    ``results`` maps a model to its :class:`~piikit.InversionResult` (anything with ``images``
    and ``targets``; typed loosely because the result module imports this one). Each summary
    is :func:`summarize`'s (``top1``, ``prob``, ...) over that result's images; the keys are
    ``results``' and ``judges``' own (the matrix ``plot_matrices`` draws).
    """
    return {made: {name: summarize(score(r.images, r.targets, [judge], device=device)).popitem()[1]
                   for name, judge in judges.items()}
            for made, r in results.items()}


def format_scores(rows: Sequence[dict[str, Any]], per_image: bool = True) -> str:
    """The rows of :func:`score` as a plain-text table (one line per image and evaluator,
    with the file name when rows carry a ``"file"``), then the per-evaluator summary."""
    lines = []
    if per_image and rows:
        first = "file" if any("file" in r for r in rows) else "image"
        width = max(len(first), *(len(str(r.get(first, ""))) for r in rows))
        lab = max(5, *(len(r["label"]) for r in rows))
        ev = max(9, *(len(r["evaluator"]) for r in rows))
        lines.append(f"{first:<{width}}  {'class':<{lab}}  {'evaluator':<{ev}}   prob  rank  top1  top5     tv")
        for r in rows:
            lines.append(
                f"{str(r.get(first, '')):<{width}}  {r['label']:<{lab}}  {r['evaluator']:<{ev}}  {r['prob']:.3f}  "
                f"{r['rank']:>4}  {'yes' if r['top1'] else 'no':>4}  {'yes' if r['top5'] else 'no':>4}  {r['tv']:.3f}"
            )
        lines.append("")
    summary = summarize(rows)
    if summary:
        ev = max(9, *(len(name) for name in summary))
        sizes = {r["evaluator"]: r.get("size") for r in rows}
        lines.append(f"{'evaluator':<{ev}}    n  top1  top5  mean prob  mean tv  seen at")
        for name, s in summary.items():
            size = "x".join(map(str, sizes[name])) if sizes.get(name) else "?"
            lines.append(f"{name:<{ev}}  {s['n']:>3}  {s['top1']:.2f}  {s['top5']:.2f}  {s['prob']:>9.3f}  "
                         f"{s['tv']:>7.3f}  {size}")
    return "\n".join(lines)
