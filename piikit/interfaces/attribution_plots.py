"""Plots of Captum attributions: image | heat map | overlay per image, and one model's
attributions against another's (:func:`piikit.attribute`, :func:`piikit.attribute_models`).

Drawn with Captum's ``visualize_image_attr(..., use_pyplot=False)``; figures are returned,
never shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from piikit.errors import renamed_attribute
from piikit.figures import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_attributions", "plot_model_attributions"]

# old name -> new, kept for one release (a DeprecationWarning on use).
_RENAMED = {"plot_comparison": "plot_model_attributions"}


def _hwc(t: torch.Tensor) -> np.ndarray:
    """C×H×W (or H×W) tensor → H×W×C (or H×W) float numpy, as Captum's plots expect."""
    t = t.detach().float().cpu()
    return t.permute(1, 2, 0).numpy() if t.ndim == 3 else t.numpy()


def _draw_attr(ax: "Axes", attr: np.ndarray, image: np.ndarray, method: str, sign: str,
               outlier_perc: float, cmap: Any, alpha: float) -> None:
    from captum.attr import visualization as viz

    flat = attr.sum(axis=2) if attr.ndim == 3 else attr
    kept = {"positive": np.maximum(flat, 0), "negative": np.minimum(flat, 0)}.get(sign, flat)
    if not np.any(kept):
        # Captum cannot normalize an all-zero map (it asserts); show an empty panel instead.
        ax.imshow(_gray(image) if method == "blended_heat_map" else np.zeros_like(flat), cmap="gray", vmin=0, vmax=1)
        ax.text(0.5, 0.5, f"no {sign.replace('_', ' ')} attribution", transform=ax.transAxes, ha="center",
                va="center", fontsize=8, color="tab:red")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    viz.visualize_image_attr(attr, image, method=method, sign=sign, plt_fig_axis=(ax.figure, ax),
                             outlier_perc=outlier_perc, cmap=cmap, alpha_overlay=alpha, use_pyplot=False)


def _gray(image: np.ndarray) -> np.ndarray:
    """H×W×1 → H×W (matplotlib draws no one-channel H×W×1 array); others unchanged."""
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def _image_panel(ax: "Axes", image: np.ndarray, title: str | None) -> None:
    ax.imshow(_gray(image), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)


def _check_pair(images: torch.Tensor, attr: torch.Tensor, who: str = "attributions") -> torch.Tensor:
    if attr.ndim == 3 and images.ndim == 4:  # N×H×W maps
        attr = attr[:, None]
    if attr.ndim != 4 or len(attr) != len(images) or attr.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"{who} of shape {tuple(attr.shape)} do not match images of shape {tuple(images.shape)}")
    return attr


def _figure_axes(nrows: int, ncols: int, size: float, axes: Sequence["Axes"] | None) -> tuple["Figure", list["Axes"]]:
    if axes is not None:
        axes = list(np.ravel(axes))
        if len(axes) < nrows * ncols:
            raise ValueError(f"need {nrows * ncols} axes, got {len(axes)}")
        return axes[0].figure, axes
    fig = new_figure(figsize=(size * ncols, size * nrows + 0.4))
    return fig, list(fig.subplots(nrows, ncols, squeeze=False).ravel())


def plot_attributions(
    images: torch.Tensor,
    attributions: torch.Tensor,
    titles: Sequence[str] | None = None,
    *,
    sign: str = "absolute_value",
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha: float = 0.5,
    axes: Sequence["Axes"] | None = None,
    size: float = 2.4,
) -> "Figure":
    """One row per image: the image | its attribution heat map | the map over the image.

    Drawn with Captum's ``visualize_image_attr(..., use_pyplot=False)`` (channels summed,
    the top ``outlier_perc`` % clipped, as Captum does); never shows the figure.

    Args:
        images: N×C×H×W in [0, 1] (or one C×H×W; C = 1 draws in grey).
        attributions: N×C×H×W or N×H×W from :func:`piikit.attribute`.
        titles: one per image (e.g. ``result.labels``), shown on the image panel.
        sign: ``"absolute_value"``, ``"positive"``, ``"negative"`` or ``"all"`` (Captum's).
        axes: N×3 axes to draw into (default: a new figure).

    Returns:
        The matplotlib ``Figure`` (N×3 axes).
    """
    if images.ndim == 3:
        images, attributions = images[None], attributions[None]
    attributions = _check_pair(images, attributions)
    n = len(images)
    fig, axs = _figure_axes(n, 3, size, axes)
    for i in range(n):
        img, attr = _hwc(images[i].clamp(0, 1)), _hwc(attributions[i])
        ax_img, ax_heat, ax_over = axs[3 * i : 3 * i + 3]
        _image_panel(ax_img, img, None if titles is None else titles[i])
        _draw_attr(ax_heat, attr, img, "heat_map", sign, outlier_perc, cmap, alpha)
        _draw_attr(ax_over, attr, img, "blended_heat_map", sign, outlier_perc, cmap, alpha)
        if i == 0:
            ax_heat.set_title(f"attribution ({sign.replace('_', ' ')})", fontsize=9)
            ax_over.set_title("overlay", fontsize=9)
    return fig


def plot_model_attributions(
    images: torch.Tensor,
    attributions: Mapping[str, torch.Tensor],
    titles: Sequence[str] | None = None,
    *,
    overlay: bool = True,
    sign: str = "absolute_value",
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha: float = 0.5,
    axes: Sequence["Axes"] | None = None,
    size: float = 2.4,
) -> "Figure":
    """One row per image: the image, then each model's attribution (overlaid on the image,
    or as a plain heat map with ``overlay=False``); columns headed by the model names.

    ``attributions`` is what :func:`piikit.attribute_models` returns. Returns the ``Figure``
    (N × (1 + models) axes).
    """
    if images.ndim == 3:
        images = images[None]
        attributions = {k: v[None] for k, v in attributions.items()}
    maps = {name: _check_pair(images, a, f"{name}'s attributions") for name, a in attributions.items()}
    n, ncols = len(images), 1 + len(maps)
    fig, axs = _figure_axes(n, ncols, size, axes)
    method = "blended_heat_map" if overlay else "heat_map"
    for i in range(n):
        img = _hwc(images[i].clamp(0, 1))
        row = axs[ncols * i : ncols * (i + 1)]
        _image_panel(row[0], img, None if titles is None else titles[i])
        for ax, (name, attr) in zip(row[1:], maps.items()):
            _draw_attr(ax, _hwc(attr[i]), img, method, sign, outlier_perc, cmap, alpha)
            if i == 0:
                ax.set_title(name, fontsize=9)
    return fig


def __getattr__(name: str) -> Any:
    return renamed_attribute(__name__, _RENAMED, name, globals())
