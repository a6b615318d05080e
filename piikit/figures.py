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

__all__ = ["NotebookFigure", "new_figure", "to_numpy_image", "show_image", "image_grid", "with_alpha", "filmstrip", "plot_history", "plot_ablations", "plot_ablation_grid", "plot_spectra", "mark_flags"]


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


_ABLATION_TITLES = {"top1": "cross-model top-1", "top5": "cross-model top-5", "prob": "target probability",
                    "tv": "TV per pixel (noise)"}


def plot_ablations(summary: Mapping[str, Any], conditions: Sequence[str], bases: Sequence[str] = ("pixels", "readable"),
                   metrics: Sequence[str] = ("top1", "prob", "tv"), labels: Mapping[str, str] | None = None,
                   report: Mapping[str, Any] | None = None) -> Figure:
    """The ablation benchmark's summary (:func:`piikit.summarize_ablations`) as intervals: a
    row of panels per base, one panel per metric; per condition and evaluator a dot at the
    mean with its 95 % interval over classes, the base's interval on the same seeds shaded
    behind (one band per evaluator), and ``*`` where the paired difference to the base
    excludes 0. A condition without results says "not measured yet"; given the results'
    ``report`` (:func:`piikit.ablation_results`), a base's panels leave out the conditions the
    benchmark does not run on that base."""
    labels = dict(labels or {})
    plan = (report or {}).get("conditions", {})
    # Rows the benchmark never runs on a base would be empty lines: each base lists its own.
    per_base = [[n for n in conditions if base in plan.get(n, {}).get("bases", [base])] for base in bases]
    fig = new_figure(figsize=(3.4 * len(metrics) + 1.6, sum(0.42 * len(n) + 0.9 for n in per_base)))
    grid = fig.subplots(len(bases), len(metrics), squeeze=False,
                        gridspec_kw={"height_ratios": [max(len(n), 1) + 2 for n in per_base]})
    colours = ["#1f77b4", "#d62728"]
    for row, base, names in zip(grid, bases, per_base):
        y = torch.arange(len(names), dtype=torch.float64).numpy()
        rows = summary.get(base, {})
        first = next(iter(rows.values()), {})
        evaluators = [k for k, v in first.items() if isinstance(v, Mapping) and k != "tv"]
        for ax, metric in zip(row, metrics):
            groups = ["tv"] if metric == "tv" else evaluators
            for g, ev in enumerate(groups):
                colour = colours[g % len(colours)]
                offset = (g - (len(groups) - 1) / 2) * 0.22
                for k, name in enumerate(names):
                    entry = rows.get(name)
                    if entry is None:
                        if g == 0:
                            ax.text(0.02, y[k], "not measured yet", va="center", fontsize=7, color="0.5",
                                    transform=ax.get_yaxis_transform())
                        continue
                    stats = entry[ev][metric]
                    low, high = stats["ci_classes"]
                    # The band is the base's interval on this row's own seeds, so that a row
                    # measured on fewer seeds is held against a base of the same seeds.
                    band = stats["ci_classes"] if name == "base" else stats.get("base_ci")
                    if band is not None:
                        ax.fill_betweenx([y[k] - 0.45, y[k] + 0.45], *band, color=colour, alpha=0.12, lw=0)
                    label = None if metric == "tv" or ax.get_legend_handles_labels()[1].count(
                        ev.replace("efficientnet_", "")) else ev.replace("efficientnet_", "")
                    ax.errorbar(stats["mean"], y[k] + offset, xerr=[[stats["mean"] - low], [high - stats["mean"]]],
                                fmt="o", ms=4, color=colour, capsize=2, lw=1, label=label)
                    if stats.get("differs"):
                        ax.annotate("*", (high, y[k] + offset), xytext=(3, -4), textcoords="offset points",
                                    fontsize=11, color=colour)
            ax.set_yticks(y, [labels.get(n, n) for n in names] if ax is row[0] else [""] * len(names), fontsize=8)
            ax.set_ylim(len(names) - 0.5, -0.5)
            ax.set_title(f"{base}: {_ABLATION_TITLES.get(metric, metric)}", fontsize=9)
            if metric in ("top1", "top5", "prob"):
                ax.set_xlim(-0.02, 1.08)
    handles, names_ = grid[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names_, loc="outside lower center", ncols=len(handles), fontsize=8)
    fig.suptitle("mean with 95 % interval over classes; shaded: the base's interval on the row's seeds; "
                 "* the paired difference to the base excludes 0", fontsize=9)
    return fig


def plot_ablation_grid(rows: Mapping[str, torch.Tensor | None], classes: Sequence[str], size: float = 1.05,
                       labels: Mapping[str, str] | None = None) -> Figure:
    """Small multiples: one row of images per condition (``rows``: name -> N×3×h×w, or None
    for "not measured yet"), one column per class (``classes``: the column titles)."""
    labels = dict(labels or {})
    n = len(classes)
    # A row not measured yet is one line of text high, not a row of empty frames.
    heights = [1.0 if images is not None else 0.25 for images in rows.values()]
    fig = new_figure(figsize=(size * n + 1.2, size * sum(heights) + 0.5))
    grid = fig.subplots(len(rows), n, squeeze=False, gridspec_kw={"height_ratios": heights})
    for axes, (name, images) in zip(grid, rows.items()):
        for j, ax in enumerate(axes):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if images is not None:
                show_image(ax, images[j])
            elif j == 0:
                ax.text(0, 0.5, "not measured yet", fontsize=8, color="0.5", va="center", transform=ax.transAxes)
        axes[0].set_ylabel(labels.get(name, name), fontsize=8, rotation=0, ha="right", va="center")
    for ax, title in zip(grid[0], classes):
        ax.set_title(title.split(": ", 1)[-1][:14], fontsize=7)
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
