"""Side-by-side runs: the same model, classes and seed under several settings.

The paper's ablations (PII §3-4: schedules, ColorShift, ensemble sizes, TV weights) all
have one shape: invert once per setting, keep the time each took, look at the images next
to each other and score them with other models. :func:`compare_settings` does the runs and
:class:`SettingsComparison` holds them, with a figure, a table of numbers and a widget that flips
through the results.

>>> runs = compare_settings("efficientnet_lite0", "volcano", {"e=1": {"ensemble": 1}, "e=8": {"ensemble": 8}}, "fast")  # doctest: +SKIP
>>> runs.show()  # one column per setting, titled with target probability and seconds  # doctest: +SKIP
>>> runs.seconds  # doctest: +SKIP
{'e=1': 14.2, 'e=8': 61.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from piikit.engine.config import DEFAULT_PRESET, InversionConfig
from piikit.engine.inversion import invert
from piikit.errors import renamed_attribute
from piikit.models import Classifier, load_model
from piikit.engine.result import InversionResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from piikit.interfaces.widgets import ResultBrowser

__all__ = ["SettingsComparison", "compare_settings"]

# old name -> new, kept for one release (a DeprecationWarning on use).
_RENAMED = {"compare": "compare_settings", "Comparison": "SettingsComparison"}


@dataclass
class SettingsComparison:
    """Results of the same inversion under several settings, by setting name (in order)."""

    results: dict[str, InversionResult]

    @property
    def names(self) -> list[str]:
        return list(self.results)

    @property
    def seconds(self) -> dict[str, float]:
        """Wall-clock seconds each run took."""
        return {name: r.elapsed_s for name, r in self.results.items()}

    def images(self, index: int = 0) -> torch.Tensor:
        """Image ``index`` (one target) of every setting, S×C×H×W (resized to the largest)."""
        side = max(r.images.shape[-1] for r in self.results.values())
        picked = [r.images[index : index + 1] for r in self.results.values()]
        picked = [p if p.shape[-1] == side else nn.functional.interpolate(p, size=(side, side), mode="bilinear",
                                                                          align_corners=False) for p in picked]
        return torch.cat(picked)

    def titles(self, index: int = 0) -> list[str]:
        out = []
        for name, r in self.results.items():
            prob = "" if r.final_probs is None else f"p={float(r.final_probs[index]):.2f}, "
            out.append(f"{name}\n{prob}{r.elapsed_s:.{1 if r.elapsed_s < 10 else 0}f}s")
        return out

    def show(self, index: int = 0, ncols: int | None = None, **kwargs: Any) -> "Figure":
        """Target ``index``'s image under every setting, titled with the model's target
        probability and the seconds the run took."""
        from piikit.figures import image_grid

        fig = image_grid(list(self.images(index)), self.titles(index), ncols=ncols, **kwargs)
        fig.suptitle(next(iter(self.results.values())).labels[index], fontsize=10)  # the model's own class name
        return fig

    def table(self) -> list[dict[str, Any]]:
        """One row per setting: seconds, steps, mean final target probability, mean
        total variation per pixel (noise)."""
        from piikit.analysis.evaluate import tv_per_pixel

        rows = []
        for name, r in self.results.items():
            rows.append({
                "setting": name,
                "seconds": round(r.elapsed_s, 2),
                "steps": r.steps_done,
                "prob": None if r.final_probs is None else round(float(r.final_probs.mean()), 4),
                "tv": round(float(tv_per_pixel(r.images.float()).mean()), 4),
            })
        return rows

    def score(self, evaluators: Any = None, **kwargs: Any) -> dict[str, dict[str, float]]:
        """Each setting's images scored by other models (:func:`piikit.score`), summarized
        over evaluators and images: setting → ``n``, ``top1``, ``top5``, ``prob``, ``tv`` (4 decimals)."""
        from piikit.analysis.evaluate import summarize

        out = {}
        for name, r in self.results.items():
            rows = r.score(evaluators, **kwargs)
            for row in rows:
                row["setting"] = name
            out[name] = {k: round(v, 4) for k, v in summarize(rows, by="setting")[name].items()}
        return out

    def widget(self, index: int = 0, control: str = "toggle") -> "ResultBrowser":
        """A control that flips through the settings' images (needs ipywidgets)."""
        from piikit.figures import image_grid
        from piikit.interfaces.widgets import result_slider

        figures = [image_grid([img], [title], size=3.2) for img, title in zip(self.images(index), self.titles(index))]
        return result_slider(figures, self.names, description="setting", control=control)


def compare_settings(
    model: Classifier | nn.Module | str,
    targets: int | str | Sequence[int | str] | None,
    settings: Mapping[str, Mapping[str, Any]],
    preset: str | InversionConfig = DEFAULT_PRESET,
    *,
    seed: int | None = 0,
    progress: bool = False,
    **common: Any,
) -> SettingsComparison:
    """Invert the same targets once per setting, with the same seed.

    Args:
        model: a classifier, module or name (loaded once).
        targets: as for :func:`piikit.invert`.
        settings: name → config overrides for that run, e.g. ``{"no ColorShift":
            {"color_shift": False}}``; keys :func:`piikit.invert` takes besides config fields
            (``terms``, ``objective``, ``num_images``...) work too.
        preset: the base config every setting starts from.
        seed: the same for every run, so only the setting differs.
        progress: a progress bar per run.
        **common: overrides applied to every run (a setting's own win), e.g. ``image_size=128``.

    Returns:
        A :class:`SettingsComparison` in the order of ``settings``.
    """
    if not settings:
        raise ValueError("compare_settings needs at least one setting")
    clf = load_model(model)
    results = {}
    for name, overrides in settings.items():
        results[name] = invert(clf, targets, preset, seed=seed, progress=progress, **{**common, **overrides})
    return SettingsComparison(results)


def __getattr__(name: str) -> Any:
    return renamed_attribute(__name__, _RENAMED, name, globals())
