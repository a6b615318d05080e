"""Measuring inversion quality: do *other* models recognise the images?

The rows come from :func:`score` (:mod:`piikit.models.scoring`, re-exported here: per image and
evaluator model, the target's probability, rank, top-1 / top-5, and the TV noise measure);
here they are summarized per evaluator or class (:func:`summarize`), crossed between models
(:func:`cross_matrix`) and written as a table (:func:`format_scores`), and a region's
contrast is measured (:func:`region_contrast`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from piikit.models import Classifier
from piikit.models.scoring import as_evaluator as as_evaluator
from piikit.models.scoring import default_evaluators as default_evaluators
from piikit.models.scoring import predict as predict
from piikit.models.scoring import score as score
from piikit.models.scoring import tv_per_pixel as tv_per_pixel

__all__ = ["score", "predict", "summarize", "cross_matrix", "format_scores", "tv_per_pixel", "region_contrast", "default_evaluators", "as_evaluator"]


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
    and ``targets``). Each summary
    is :func:`summarize`'s (``top1``, ``prob``, ...) over that result's images; the keys are
    ``results``' and ``judges``' own (the matrix ``plot_matrices`` draws).
    """
    return {made: {name: summarize(score([judge], r.images, r.targets, device=device)).popitem()[1]
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
