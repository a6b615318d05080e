"""Figures: image grids, stage filmstrips and loss curves.

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``; pass
``ax``/``axes`` to draw into a figure of your own. Figures are made with
``matplotlib.figure.Figure`` directly, so nothing here needs a display or pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["to_numpy_image", "image_grid", "filmstrip", "plot_history"]


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """A 3×H×W tensor in [0, 1] as an H×W×3 float array (what matplotlib and Captum expect)."""
    if image.ndim != 3:
        raise ValueError(f"expected one 3×H×W image, got shape {tuple(image.shape)}")
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def image_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    axes: Sequence[Axes] | None = None,
    size: float = 2.4,
) -> Figure:
    """Images (N×3×H×W, or a list of 3×H×W of any sizes) in a grid with optional titles."""
    images = list(images)
    n = len(images)
    if axes is None:
        ncols = ncols or min(n, 6)
        nrows = math.ceil(n / ncols)
        fig = Figure(figsize=(size * ncols, size * nrows + (0.3 * nrows if titles else 0)), layout="constrained")
        grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
        axes = list(grid)
        for ax in axes[n:]:
            ax.set_axis_off()
    else:
        fig = axes[0].figure
    for i, (ax, img) in enumerate(zip(axes, images)):
        ax.imshow(to_numpy_image(img))
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return fig


def filmstrip(snapshots: Sequence[torch.Tensor], index: int = 0, title: str | None = None) -> Figure:
    """One image through the stages: ``snapshots[k]`` is stage k's K×3×s×s output.

    Each frame is drawn at its true size relative to the last, so zoom is visible."""
    final = snapshots[-1].shape[-1]
    fig = Figure(figsize=(1.9 * len(snapshots), 2.3), layout="constrained")
    axes = fig.subplots(1, len(snapshots), squeeze=False).ravel()
    for k, (ax, snap) in enumerate(zip(axes, snapshots)):
        side = snap.shape[-1]
        ax.imshow(to_numpy_image(snap[index]), extent=(0, side, side, 0))
        ax.set_xlim(-(final - side) / 2, side + (final - side) / 2)
        ax.set_ylim(side + (final - side) / 2, -(final - side) / 2)
        ax.set_axis_off()
        ax.set_title(f"stage {k + 1}: {side}px", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_history(history: Mapping[str, torch.Tensor], labels: Sequence[str] | None = None, ax: Axes | None = None) -> Figure:
    """Target probability per step (under augmentation) for each image, with stage bounds."""
    if ax is None:
        fig = Figure(figsize=(7, 3), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    probs = history["prob"].float()
    for k in range(probs.shape[1]):
        ax.plot(probs[:, k].numpy(), lw=1, label=labels[k] if labels else None)
    stage = history["stage"]
    for t in torch.nonzero(stage[1:] != stage[:-1]).ravel().tolist():
        ax.axvline(t + 0.5, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel("step")
    ax.set_ylabel("target probability (augmented)")
    ax.set_ylim(0, 1)
    if labels:
        ax.legend(fontsize=7, loc="best")
    return fig
