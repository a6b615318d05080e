"""Do two models look at the same places? Agreement between attribution maps.

An attribution (:func:`piikit.attribute`) says, per pixel, how much it mattered to one
model's score. Two models' maps of the same image *agree* where the same regions stand out
for both. :func:`map_agreement` gives one number per image: the Pearson correlation of the
two absolute maps (summed over colour channels), 1 for the same regions, 0 for unrelated
ones, below 0 for opposite ones. It ignores the maps' scales (Grad-CAM and saliency live on
very different ones), and a map at another resolution is resized to the first one's.

>>> import torch
>>> a = torch.zeros(1, 3, 4, 4); a[..., :2, :] = 1
>>> round(float(map_agreement(a, a)[0]), 3), round(float(map_agreement(a, 1 - a)[0]), 3)
(1.0, -1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["saliency_map", "map_agreement", "agreement_rows", "region_share"]


def saliency_map(attribution: torch.Tensor) -> torch.Tensor:
    """N×H×W: the absolute attribution summed over channels (N×C×H×W or N×1×H×W in; an
    N×H×W map is taken as it is, an H×W one as a single image)."""
    if attribution.ndim == 4:
        return attribution.abs().sum(1)
    if attribution.ndim == 3:
        return attribution.abs()
    if attribution.ndim == 2:
        return attribution.abs()[None]
    raise ValueError(f"an attribution must be N×C×H×W, N×H×W or H×W, got {tuple(attribution.shape)}")


def region_share(attribution: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) the share of each image's absolute attribution mass (summed over channels) that
    lies inside ``mask`` (H×W, boolean): 1 when all the evidence sits in the region, its
    area fraction when the evidence is spread evenly; 0 for an all-zero map."""
    mass = saliency_map(attribution.detach().float())
    mask = mask.to(device=mass.device, dtype=torch.bool)
    if mass.shape[-2:] != mask.shape:
        raise ValueError(f"the mask is {tuple(mask.shape)} but the maps are {tuple(mass.shape[-2:])}")
    return (mass[:, mask].sum(1) / mass.flatten(1).sum(1).clamp_min(1e-12)).cpu()


def map_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) Pearson correlation, per image, between the absolute maps of ``a`` and ``b``
    (attributions of the same N images by two models or two methods).

    ``b`` is resized (bilinear) to ``a``'s height and width when they differ. A constant
    map (no variation at all) has no correlation with anything: its entries are 0.
    """
    ma, mb = saliency_map(a.detach().float()), saliency_map(b.detach().float())
    if ma.shape[0] != mb.shape[0]:
        raise ValueError(f"the maps hold {ma.shape[0]} and {mb.shape[0]} images")
    if ma.shape[-2:] != mb.shape[-2:]:
        mb = F.interpolate(mb[:, None], size=ma.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    x, y = ma.flatten(1), mb.flatten(1)
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    denom = x.norm(dim=1) * y.norm(dim=1)
    corr = (x * y).sum(1) / denom.clamp_min(1e-12)
    return torch.where(denom > 0, corr, torch.zeros_like(corr)).cpu()


def agreement_rows(
    maps: Mapping[str, Mapping[str, torch.Tensor]], labels: Sequence[str], digits: int = 2
) -> list[dict[str, Any]]:
    """A table of agreements: one row per method (the outer key) and other model, with one
    column per image (``labels``) and their mean.

    ``maps`` is method → (model name → attributions), e.g. ``{"gradcam":
    attribute_models({"lite0": m0, "lite2": m2}, result, method="gradcam")}``; each model
    after the first is compared with the first (the inverted one).
    """
    rows = []
    for method, by_model in maps.items():
        names = list(by_model)
        if len(names) < 2:
            raise ValueError(f"{method}: need maps from at least two models, got {names}")
        first = by_model[names[0]]
        for other in names[1:]:
            values = map_agreement(first, by_model[other]).tolist()
            if len(values) != len(labels):
                raise ValueError(f"{len(values)} images but {len(labels)} labels")
            row: dict[str, Any] = {"method": method, "models": f"{names[0]} vs {other}"}
            row.update({label: round(v, digits) for label, v in zip(labels, values)})
            row["mean"] = round(sum(values) / len(values), digits)
            rows.append(row)
    return rows
