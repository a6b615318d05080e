"""The paper's architecture comparison (PII §5.1, Fig. 7): one setting, many models, each model's
inversions scored by all the others.

:func:`load_models` loads whichever of a list of model names can be had here (a weight file in a
folder, the local Hugging Face cache, or a reachable hub) and says in one line why each other one
cannot; :func:`compare_architectures` inverts the same classes with the same setting on every model
and builds the cross-model matrix (rows the model
inverted, columns the model scoring, as
:func:`~piikit.analysis.evaluate.cross_matrix` on the digits). The result draws the paper's Fig. 7 layout (rows: models,
columns: classes) and the matrix (:func:`~piikit.interfaces.matrix_plot.plot_matrices`).

>>> models, skipped = load_models(["resnet50", "vit_base_patch16_224", "mixer_b16_224"], weights_dir="weights/")  # doctest: +SKIP
>>> comparison = compare_architectures(models, ["volcano", "goldfinch"], "quick")  # doctest: +SKIP
>>> comparison.figure(); comparison.matrix_figure()  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from piikit.analysis.evaluate import score, summarize
from piikit.device import resolve_device
from piikit.engine.config import InversionConfig
from piikit.engine.inversion import invert
from piikit.engine.result import InversionResult
from piikit.errors import HubUnavailableError, ModelLoadError, first_line
from piikit.models import Classifier, load_model

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["WEIGHT_SUFFIXES", "ArchitectureComparison", "compare_architectures", "load_models", "weight_file"]

# The suffixes :func:`load_models` looks for, in this order, in ``weights_dir``: ``<name><suffix>``.
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def weight_file(name: str, weights_dir: str | os.PathLike | None) -> Path | None:
    """``weights_dir/<name>.safetensors`` (or ``.pth``, ``.pt``, ``.bin``) if there is one."""
    if weights_dir is None:
        return None
    for suffix in WEIGHT_SUFFIXES:
        path = Path(weights_dir) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def load_models(
    names: Sequence[str],
    *,
    weights_dir: str | os.PathLike | None = None,
    model_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device | None = None,
) -> tuple[dict[str, Classifier], dict[str, str]]:
    """The models of ``names`` that can be loaded here, and a one-line reason for each that cannot.

    Each name (timm's, e.g. ``"vit_base_patch16_224"``) is loaded from ``weights_dir/<name>.safetensors``
    (or ``.pth``/``.pt``/``.bin``: a state dict for that architecture, ``load_model(name, checkpoint=path)``)
    when the file exists, else with its published weights (``load_model(name)``: the local Hugging Face
    cache, or a hub if one is reachable; without either it fails at once).

    Args:
        names: model names, in the order the comparison shows them.
        weights_dir: a folder of weight files named after the models.
        model_kwargs: name -> keywords for ``timm.create_model`` (e.g. ``{"num_blocks": 2}`` for a
            smaller checkpoint of that architecture).
        device: where to put the models (default: leave them on the CPU).

    Returns:
        ``(models, skipped)``: name -> :class:`~piikit.Classifier` for those loaded, and name -> why not.
    """
    models: dict[str, Classifier] = {}
    skipped: dict[str, str] = {}
    for name in names:
        kwargs = dict((model_kwargs or {}).get(name, {}))
        path = weight_file(name, weights_dir)
        try:
            models[name] = load_model(name, checkpoint=path, device=device, **kwargs)
        except (HubUnavailableError, ModelLoadError) as error:
            skipped[name] = first_line(error)
    return models, skipped


@dataclass
class ArchitectureComparison:
    """One setting's inversions on several models and every model's scores of every model's images.

    Attributes:
        results: model -> its :class:`~piikit.InversionResult` (the same targets, seed and setting).
        matrix: inverted model -> scoring model -> :func:`~piikit.analysis.evaluate.summarize`'s
            summary (``top1``, ``top5``, ``prob``, ``tv``) over the targets.
        probs: inverted model -> scoring model -> the target probability of each image.
        seconds: model -> wall-clock seconds of its inversion.
        skipped: models that could not be loaded -> why (from :func:`load_models`).
    """

    results: dict[str, InversionResult]
    matrix: dict[str, dict[str, dict[str, float]]]
    probs: dict[str, dict[str, list[float]]]
    seconds: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)

    def others_prob(self, made: str) -> list[float | None]:
        """Per image of ``made``: the mean target probability the *other* models give it."""
        others = [judge for judge in self.probs[made] if judge != made]
        n = len(self.results[made].targets)
        return [sum(self.probs[made][j][i] for j in others) / len(others) if others else None for i in range(n)]

    def rows(self) -> list[dict[str, Any]]:
        """One row per inverted model for :func:`piikit.tables.format_table`: seconds
        per class, its own top-1, the other models' mean top-1 and probability, and the TV metric."""
        out = []
        for made, row in self.matrix.items():
            others = [cell for judge, cell in row.items() if judge != made]
            mean = (lambda key: sum(c[key] for c in others) / len(others)) if others else (lambda key: float("nan"))
            out.append({"model": made, "s/class": self.seconds[made] / len(self.results[made].targets),
                        "own top-1": row[made]["top1"] if made in row else float("nan"),
                        "others' top-1": mean("top1"), "others' prob": mean("prob"),
                        "tv": next(iter(row.values()))["tv"]})
        return out

    def figure(self, size: float = 1.8) -> Figure:
        """The paper's Fig. 7 layout: one row per model, one column per class; each title names
        the model, the class and the mean probability the *other* models give the image."""
        from piikit.interfaces.viz import image_grid

        images, titles = [], []
        for made, result in self.results.items():
            for image, name, p in zip(result.images, result.labels, self.others_prob(made)):
                images.append(image)
                titles.append(f"{made}\n{name}" + ("" if p is None else f"\nothers: {p:.2f}"))
        return image_grid(images, titles, ncols=max(len(r.targets) for r in self.results.values()), size=size)

    def matrix_figure(self, metric: str = "top1", title: str | None = None) -> Figure:
        """The cross-model matrix as a heat map (:func:`~piikit.interfaces.matrix_plot.plot_matrices`)."""
        from piikit.interfaces.matrix_plot import plot_matrices

        return plot_matrices({"PII, one setting": self.matrix}, metric, models=list(self.results), title=title)


def compare_architectures(
    models: Mapping[str, Classifier],
    targets: int | str | Sequence[int | str],
    preset: str | InversionConfig = "quick",
    *,
    judges: Mapping[str, Classifier] | None = None,
    seed: int | None = 0,
    device: str | torch.device | None = "auto",
    progress: bool = False,
    skipped: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ArchitectureComparison:
    """Invert ``targets`` with one setting on each model, then score every model's images with
    every model (and ``judges``, if given): the paper's architecture comparison (§5.1, Fig. 7).

    Args:
        models: name -> classifier (e.g. from :func:`load_models`); all must share the classes.
        targets: class indices or names, inverted in one call per model.
        preset: a preset name or an :class:`~piikit.InversionConfig`; ``overrides`` change its fields.
        judges: further scoring models that are not inverted (default: none beyond ``models``).
        seed, device, progress: as for :func:`piikit.invert`.
        skipped: carried into the result (the second value of :func:`load_models`).

    Returns:
        An :class:`ArchitectureComparison`.
    """
    if not models:
        raise ValueError("compare_architectures needs at least one model")
    scorers = {**models, **(judges or {})}
    results: dict[str, InversionResult] = {}
    seconds: dict[str, float] = {}
    for name, model in models.items():
        start = time.perf_counter()
        results[name] = invert(model, targets, preset, seed=seed, device=device, progress=progress, **overrides)
        seconds[name] = time.perf_counter() - start
    dev = resolve_device(device)
    matrix: dict[str, dict[str, dict[str, float]]] = {}
    probs: dict[str, dict[str, list[float]]] = {}
    for made, result in results.items():
        matrix[made], probs[made] = {}, {}
        for judge, model in scorers.items():
            rows = score([model], result.images, result.targets, device=dev)
            matrix[made][judge] = summarize(rows).popitem()[1]
            probs[made][judge] = [r["prob"] for r in rows]
    return ArchitectureComparison(results, matrix, probs, seconds, dict(skipped or {}))
