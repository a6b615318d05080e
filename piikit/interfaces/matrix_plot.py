"""Cross-model matrices as heat maps: rows the model that made the images, columns the model
that scored them (notebook 07, ``benchmarks/architectures.py``).

A matrix is a mapping ``made_by -> {scored_by -> value}`` (a float, or a dict holding
``metric`` and optionally ``f"{metric}_spread"``); a row that is missing or ``None`` (a method
that refused that model, e.g. DeepInversion on a model without BatchNorm) is drawn hatched
with its reason.

>>> fig = plot_matrices({"PII": {"cnn": {"cnn": 1.0, "vit": 0.5}, "vit": {"cnn": 0.9, "vit": 1.0}}})
>>> len(fig.axes)  # one panel and the colour bar
2
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from matplotlib.figure import Figure

from piikit.figures import new_figure

__all__ = ["plot_matrices", "off_diagonal_mean", "recorded_matrices", "architecture_results", "RECORDS"]

#: The records of ``benchmarks/architectures.py`` shipped with the package (``piikit/data/architectures``):
#: the robust and standard digits trios, and the held-out trio (the digits setting and DeepInversion; the
#: ImageNet presets at 32 px).
RECORDS = ("robust_and_standard", "heldout", "heldout_paper")

Matrix = Mapping[str, "Mapping[str, Any] | None"]


def _value(cell: Any, metric: str) -> tuple[float, float | None]:
    if isinstance(cell, Mapping):
        return float(cell[metric]), (float(cell[f"{metric}_spread"]) if f"{metric}_spread" in cell else None)
    return float(cell), None


def off_diagonal_mean(matrix: Matrix, metric: str = "top1") -> float | None:
    """The mean of the cells where another model scored the images (None if there are none)."""
    values = [_value(cell, metric)[0] for made, row in matrix.items() if row
              for judge, cell in row.items() if judge != made]
    return sum(values) / len(values) if values else None


def plot_matrices(
    matrices: Mapping[str, Matrix],
    metric: str = "top1",
    *,
    models: Sequence[str] | None = None,
    notes: Mapping[str, Mapping[str, str]] | None = None,
    size: float = 3.2,
    title: str | None = None,
) -> Figure:
    """One heat map per method, side by side, with the value (± spread) in each cell.

    Args:
        matrices: method name -> matrix (see the module docstring).
        metric: the key read from dict cells (``"top1"`` or ``"prob"``).
        models: row/column order (default: every model named, in first-seen order).
        notes: method -> model -> a short reason shown on a missing row.
        size: inches per panel.
        title: a figure title.

    Returns:
        The figure; each panel's title gives the off-diagonal mean.
    """
    names: list[str] = list(models or [])
    if not names:
        for matrix in matrices.values():
            for made, row in matrix.items():
                for key in [made, *(row or {})]:
                    if key not in names:
                        names.append(key)
    n = len(names)
    fig = new_figure(figsize=(size * len(matrices) + 0.8, size + 0.5), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    image = None
    for ax, (method, matrix) in zip(axes, matrices.items()):
        grid = [[float("nan")] * n for _ in range(n)]
        for r, made in enumerate(names):
            row = matrix.get(made)
            if not row:
                ax.axhspan(r - 0.5, r + 0.5, facecolor="none", edgecolor="0.6", hatch="//", linewidth=0)
                reason = ((notes or {}).get(method) or {}).get(made, "not run")
                ax.text((n - 1) / 2, r, reason, ha="center", va="center", fontsize=7, color="0.3", wrap=True)
                continue
            for c, judge in enumerate(names):
                if judge not in row:
                    continue
                value, spread = _value(row[judge], metric)
                grid[r][c] = value
                text = f"{value:.2f}" + (f"\n±{spread:.2f}" if spread else "")
                ax.text(c, r, text, ha="center", va="center", fontsize=8,
                        color="white" if value < 0.55 else "black", fontweight="bold" if r == c else None)
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(n), names, fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        ax.set_xlabel("scored by", fontsize=8)
        ax.set_ylabel("inverted model", fontsize=8)
        off = off_diagonal_mean(matrix, metric)
        ax.set_title(f"{method}\noff-diagonal {metric} {'n/a' if off is None else f'{off:.2f}'}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label=metric)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def recorded_matrices(
    record: Mapping[str, Any], trio: str, labels: Mapping[str, str], refused: str = "refused"
) -> tuple[dict[str, Matrix], dict[str, dict[str, str]]]:
    """One trio's matrices from the results file of ``benchmarks/architectures.py``, ready for
    :func:`plot_matrices`.

    Args:
        record: the parsed JSON file.
        trio: the trio's key in ``record["trios"]`` (``"robust"``, ``"standard"``).
        labels: method key in the file (``"pii"``, ``"di"``, ...) -> the name shown; methods
            not recorded for the trio are left out, in ``labels``' order otherwise.
        refused: the note on the row of a model the method refused (see the file's ``errors``).

    Returns:
        ``(matrices, notes)``: name -> matrix (the summary over seeds, top-1 and probability
        with their spreads), and name -> refused model -> ``refused``.
    """
    methods = record["trios"][trio]["methods"]
    recorded = [(key, label) for key, label in labels.items() if key in methods]
    matrices = {label: methods[key].get("summary", {}) for key, label in recorded}
    notes = {label: {model: refused for model in methods[key]["errors"]} for key, label in recorded}
    return matrices, notes


def architecture_results(name: str = "robust_and_standard") -> dict[str, Any]:
    """A results file of ``benchmarks/architectures.py`` shipped with piikit (one of
    :data:`RECORDS`), parsed: the command, date and machine it was recorded with, the PII
    setting (``pii_config``), and per trio and method the matrices over seeds
    (:func:`recorded_matrices` reads them)."""
    if name not in RECORDS:
        from piikit.errors import InvalidValueError

        raise InvalidValueError(f"no architectures record {name!r}; the records: {', '.join(RECORDS)}")
    return json.loads((resources.files("piikit") / "data" / "architectures" / f"{name}.json").read_text())
