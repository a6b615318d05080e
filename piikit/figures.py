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

__all__ = ["NotebookFigure", "new_figure", "to_numpy_image", "show_image", "image_grid", "with_alpha", "filmstrip", "plot_history", "plot_ablations", "plot_spectra", "mark_flags"]


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


def with_alpha(images: torch.Tensor, alpha: torch.Tensor, quantile: float = 0.8) -> torch.Tensor:
    """``images`` (K×C×H×W) composited over white through ``alpha`` (K×1×H×W, ≥ 0), each
    map first clipped at its ``quantile`` and scaled to [0, 1]: as Horama draws MaCo's
    transparency, the most-attended fifth of the image (at 0.8) is fully opaque, since the
    raw map's few brightest pixels would otherwise make all the rest look transparent."""
    flat = alpha.flatten(1).float()
    top = flat.quantile(quantile, dim=1).clamp_min(torch.finfo(flat.dtype).tiny).view(-1, 1, 1, 1)
    opacity = (alpha.float() / top).clamp(0, 1)
    return images * opacity + (1 - opacity)


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


def plot_ablations(report: Mapping[str, Any], conditions: Sequence[str] | None = None,
                   metrics: Sequence[str] = ("top1", "prob", "tv")) -> Figure:
    """Bars with spread from the results file of ``benchmarks/ablations.py``: one panel per
    metric (``top1``, ``top5``, ``prob`` per evaluator, side by side; ``tv`` once), one bar
    per condition at the mean over seeds, the error bar spanning the seeds' min to max."""
    names = [c for c in (conditions or list(report["conditions"])) if c in report["conditions"]]
    summaries = [report["conditions"][c]["summary"] for c in names]
    evaluators = [k for k in summaries[0] if k != "s_per_class"] if summaries else []
    titles = {"top1": "cross-model top-1", "top5": "cross-model top-5", "prob": "target probability",
              "tv": "TV per pixel (noise)"}
    fig = new_figure(figsize=(3.6 * len(metrics), 0.45 * len(names) + 1.4))
    axes = fig.subplots(1, len(metrics), squeeze=False).ravel()
    y = torch.arange(len(names), dtype=torch.float64).numpy()
    for ax, metric in zip(axes, metrics):
        groups = evaluators[:1] if metric == "tv" else evaluators
        height = 0.8 / len(groups)
        for g, ev in enumerate(groups):
            stats = [s[ev][metric] for s in summaries]
            means = [st["mean"] for st in stats]
            low = [st["mean"] - min(st["per_seed"]) for st in stats]
            high = [max(st["per_seed"]) - st["mean"] for st in stats]
            label = None if metric == "tv" else ev.replace("efficientnet_", "")
            ax.barh(y + (g - (len(groups) - 1) / 2) * height, means, height=height, xerr=[low, high],
                    capsize=2, label=label, error_kw={"lw": 0.8})
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(names))
        ax.invert_yaxis()
        ax.set_title(titles.get(metric, metric), fontsize=9)
        if metric in ("top1", "top5", "prob"):
            ax.set_xlim(0, 1)
            ax.legend(fontsize=7, loc="lower right")
    n = len(report.get("classes", []))
    fig.suptitle(f"{n} classes × seeds {report.get('seeds')}; bars: mean, error bars: min-max over seeds",
                 fontsize=9)
    return fig


def plot_spectra(curves: Mapping[str, tuple[torch.Tensor, torch.Tensor]], reference: bool = True) -> Figure:
    """Radially averaged power spectra (:func:`piikit.analysis.spectrum.radial_spectrum`),
    name → (frequency, power), on log-log axes, with a 1/f² line for reference (the power
    of a natural image's spectrum) through the last curve's first point: put a photo last."""
    fig = new_figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for name, (freq, power) in curves.items():
        ax.loglog(freq.numpy(), power.numpy(), label=name, lw=1.2)
    if reference and curves:
        freq, power = list(curves.values())[-1]
        anchor = float(power[0]) * float(freq[0]) ** 2
        ax.loglog(freq.numpy(), (anchor / freq**2).numpy(), "k--", lw=0.8, label="1/f² (natural images)")
    ax.set_xlabel("spatial frequency (cycles per pixel)")
    ax.set_ylabel("power")
    ax.legend(fontsize=7)
    return fig


def mark_flags(fig: Figure, report: Any) -> Figure:
    """Write under image k of ``fig`` (the axes in order) the flags of row k of ``report``
    (a :class:`~piikit.analysis.sanity.SanityReport`, from a layer above this one, hence
    untyped), red, or "sanity ok", green: what ``result.show()`` adds once checks ran."""
    for ax, row in zip(fig.axes, report.rows):
        # Two flags a line: three side by side run into the next image's caption.
        lines = [", ".join(row.flags[i : i + 2]) for i in range(0, len(row.flags), 2)]
        text = "flags: " + ",\n".join(lines) if row.flags else "sanity ok"
        ax.set_xlabel(text, fontsize=8, color="#b00020" if row.flags else "#1b7837")
    return fig
