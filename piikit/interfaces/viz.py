"""Figures: image grids, stage filmstrips and loss curves.

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``; pass
``ax``/``axes`` to draw into a figure of your own.

How figures reach the screen: they are made with :func:`new_figure`, a ``Figure`` subclass
built without pyplot, so scripts, CI and ``MPLBACKEND=Agg`` never open a window, pyplot's
figure manager never holds them (no leak, and Jupyter's inline backend never shows them a
second time at the end of the cell), and ``fig.savefig`` works as usual. A bare ``Figure``
has no rich representation of its own: Jupyter's inline backend registers its PNG printer
only once pyplot has been imported, so before that a returned figure showed as
``<Figure size ...>``. The subclass carries ``_repr_png_``, which IPython calls when the
figure is a cell's last expression (or is passed to ``display``) whatever the backend, inline
or ``ipympl``; where the inline printer is registered it takes precedence for the same
``image/png`` slot, so a figure is never drawn twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from piikit.images import figure_png, to_numpy_image

__all__ = ["NotebookFigure", "new_figure", "to_numpy_image", "show_image", "image_grid", "filmstrip", "plot_history"]


class NotebookFigure(Figure):
    """A matplotlib ``Figure`` that Jupyter displays as a PNG without pyplot."""

    def _repr_png_(self) -> bytes:
        return figure_png(self, dpi=None, bbox_inches="tight")


def new_figure(**kwargs: Any) -> NotebookFigure:
    """A figure for piikit's plots (``Figure``'s keywords; constrained layout by default)."""
    kwargs.setdefault("layout", "constrained")
    return NotebookFigure(**kwargs)


def show_image(ax: Axes, image: torch.Tensor, **kwargs: Any) -> None:
    """Draw one image; a grayscale one in grey on a fixed [0, 1] scale (matplotlib would
    otherwise colour-map it and stretch its range)."""
    ax.imshow(to_numpy_image(image), cmap="gray", vmin=0, vmax=1, **kwargs)


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
        fig = new_figure(figsize=(size * ncols, size * nrows + (0.3 * nrows if titles else 0)))
        grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
        axes = list(grid)
        for ax in axes[n:]:
            ax.set_axis_off()
    else:
        fig = axes[0].figure
    for i, (ax, img) in enumerate(zip(axes, images)):
        show_image(ax, img)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return fig


def filmstrip(snapshots: Sequence[torch.Tensor], index: int = 0, title: str | None = None) -> Figure:
    """One image through the stages: ``snapshots[k]`` is stage k's K×3×s×s output.

    Each frame is drawn at its true size relative to the last, so zoom is visible."""
    final = snapshots[-1].shape[-1]
    fig = new_figure(figsize=(1.9 * len(snapshots), 2.3))
    axes = fig.subplots(1, len(snapshots), squeeze=False).ravel()
    for k, (ax, snap) in enumerate(zip(axes, snapshots)):
        side = snap.shape[-1]
        show_image(ax, snap[index], extent=(0, side, side, 0))
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
        fig = new_figure(figsize=(7, 3))
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
