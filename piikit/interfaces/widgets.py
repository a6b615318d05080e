"""ipywidgets for notebooks that compare settings: flip through results already computed.

>>> view = result_slider([res_a, res_b, res_c], ["e=1", "e=8", "e=32"])  # doctest: +SKIP
>>> view = result_grid({("zoom", True): fig1, ("zoom", False): fig2}, ["schedule", "ColorShift"])  # doctest: +SKIP
>>> view = condition_grid(base="pixels", conditions=["base", "no_colorshift"])  # doctest: +SKIP

Both show items already computed (an :class:`~piikit.InversionResult`, a matplotlib
``Figure``, an image tensor or PNG bytes) as PNGs in an ``ipywidgets.Image``; each is drawn
once, when first shown, and kept. :func:`condition_grid` shows the ablation benchmark's saved
thumbnails (``benchmarks/ablations.py``, shipped in ``piikit/data/ablations``, read by
:mod:`piikit.analysis.ablations`): a grid of
classes per condition, switched without optimizing. The interactive explorer is :mod:`piikit.interfaces.explorer`.
Imported lazily (``piikit.widgets``), so ``import piikit`` never needs ipywidgets.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import ipywidgets as w
import torch

from piikit.analysis.ablations import ablation_results, ablation_thumbnails, summarize_ablations
from piikit.engine.result import InversionResult
from piikit.images import figure_png, image_png
from piikit.labels import label

__all__ = ["ResultBrowser", "result_slider", "result_grid", "image_png", "figure_png", "ConditionGrid",
           "condition_grid", "ablation_results", "ablation_thumbnails"]


def _png(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, InversionResult):
        return figure_png(item.show())
    if isinstance(item, torch.Tensor):
        return image_png(item)
    if hasattr(item, "savefig"):
        return figure_png(item)
    raise TypeError(f"cannot show a {type(item).__name__}: give an InversionResult, a Figure, a tensor or PNG bytes")


class ResultBrowser(w.VBox):
    """Controls over precomputed items: one control per key position, an image below.

    Build it with :func:`result_slider` or :func:`result_grid`. ``controls`` are the
    selection widgets, ``image`` the ``ipywidgets.Image`` showing the selected item and
    ``caption`` its key; ``selected`` is the key shown.
    """

    def __init__(self, items: Mapping[tuple[Hashable, ...], Any], controls: Sequence[w.ValueWidget],
                 width: str | None = None) -> None:
        self.items = dict(items)
        self.controls = list(controls)
        self.image = w.Image(format="png", layout=w.Layout(width=width) if width else w.Layout())
        self.caption = w.HTML()
        self._cache: dict[tuple[Hashable, ...], bytes] = {}
        for control in self.controls:
            control.observe(lambda _change: self._show(), names="value")
        super().__init__([w.HBox(self.controls), self.caption, self.image])
        self._show()

    @property
    def selected(self) -> tuple[Hashable, ...]:
        return tuple(c.value for c in self.controls)

    def _show(self) -> None:
        key = self.selected
        if key not in self.items:
            self.caption.value = f"<i>not computed: {', '.join(map(str, key))}</i>"
            return
        if key not in self._cache:
            self._cache[key] = _png(self.items[key])
        self.image.value = self._cache[key]
        self.caption.value = ", ".join(map(str, key))


def result_slider(items: Sequence[Any], labels: Sequence[Any] | None = None, *, description: str = "",
                  control: str = "slider", width: str | None = None) -> ResultBrowser:
    """Flip through results already computed with one slider (or dropdown, or toggle buttons).

    Args:
        items: InversionResults, matplotlib Figures, image tensors or PNG bytes.
        labels: one per item (default 0, 1, ...), shown on the control.
        description: the control's label, e.g. ``"ensemble"``.
        control: ``"slider"``, ``"dropdown"`` or ``"toggle"``.
        width: CSS width of the image, e.g. ``"600px"`` (default: the PNG's own size).

    >>> result_slider([small, large], ["e=1", "e=32"], description="ensemble")  # doctest: +SKIP
    """
    labels = list(range(len(items))) if labels is None else list(labels)
    if len(labels) != len(items) or not items:
        raise ValueError(f"need one label per item and at least one item, got {len(labels)} for {len(items)}")
    return ResultBrowser({(lab,): item for lab, item in zip(labels, items)},
                         [_control(control, labels, description)], width)


def result_grid(items: Mapping[Any, Any], names: Sequence[str], *, control: str = "toggle",
                width: str | None = None) -> ResultBrowser:
    """Flip through results keyed by several settings: one control per key position.

    Args:
        items: ``{(value_1, value_2, ...): item}``, e.g. ``{("zoom", True): result}``.
        names: the settings' names, one per key position (``["schedule", "ColorShift"]``).
        control: ``"toggle"``, ``"dropdown"`` or ``"slider"``.
        width: CSS width of the image.

    Missing combinations show "not computed".
    """
    keys = [k if isinstance(k, tuple) else (k,) for k in items]
    if not keys or any(len(k) != len(names) for k in keys):
        raise ValueError(f"every key needs {len(names)} values, one per name in {list(names)}")
    axes = [list(dict.fromkeys(k[i] for k in keys)) for i in range(len(names))]
    return ResultBrowser(dict(zip(keys, items.values())),
                         [_control(control, values, name) for values, name in zip(axes, names)], width)


_CONTROLS: dict[str, Callable[..., w.ValueWidget]] = {
    "slider": w.SelectionSlider,
    "dropdown": w.Dropdown,
    "toggle": w.ToggleButtons,
}


def _control(kind: str, values: Sequence[Any], description: str) -> w.ValueWidget:
    if kind not in _CONTROLS:
        raise ValueError(f"unknown control {kind!r}; choose one of {', '.join(_CONTROLS)}")
    options = [(str(v), v) for v in values]
    return _CONTROLS[kind](options=options, value=values[0], description=description,
                           style={"description_width": "initial"})


# ---------------------------------------------------------------- the ablation benchmark's images


def _grid_jpeg(tiles: torch.Tensor, titles: Sequence[str], ncols: int) -> bytes:
    """The tiles in rows of ``ncols``, each with its title underneath, as JPEG bytes (PIL
    only: a few milliseconds, so switching conditions is instant)."""
    from PIL import Image, ImageDraw

    n, _, h, width = tiles.shape
    line = 12
    rows = -(-n // ncols)
    canvas = Image.new("RGB", (ncols * (width + 4), rows * (h + 2 * line + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, title) in enumerate(zip(tiles, titles)):
        x, y = (i % ncols) * (width + 4), (i // ncols) * (h + 2 * line + 4)
        array = (tile.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        canvas.paste(Image.fromarray(array), (x, y))
        for j, text in enumerate(title.split("\n")[:2]):
            draw.text((x + 1, y + h + 1 + j * line), text[: width // 6], fill="black")
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _stats_html(report: Mapping[str, Any], base: str, condition: str) -> str:
    entry = summarize_ablations(report).get(base, {}).get(condition)
    if entry is None:
        return ""
    parts = []
    for ev in report["evaluators"]:
        s = entry[ev]["top1"]
        diff = (f" ({s['diff']:+.2f} vs base, 95% CI [{s['ci_diff'][0]:+.2f}, {s['ci_diff'][1]:+.2f}]"
                f"{': differs' if s['differs'] else ''})") if "diff" in s else ""
        parts.append(f"{ev.replace('efficientnet_', '').capitalize()} top-1 {s['mean']:.2f} "
                     f"[{s['ci_classes'][0]:.2f}, {s['ci_classes'][1]:.2f}]{diff}")
    tv = entry["tv"]["tv"]
    parts.append(f"TV {tv['mean']:.3f}" + (f" ({tv['diff']:+.3f})" if "diff" in tv else ""))
    seeds = ", ".join(map(str, entry["seeds"]))
    return f"<small>{'; '.join(parts)}. Over {tv['n_classes']} classes x seeds {seeds}.</small>"


class ConditionGrid(w.VBox):
    """The ablation benchmark's images, a grid of classes per (base, condition, seed).

    Build it with :func:`condition_grid`. ``controls`` holds the base, condition and seed
    selectors (``base``, ``condition``, ``seed``), ``image`` the grid (JPEG), ``caption``
    the condition's description and ``stats`` its scores with 95 % intervals over classes.
    Conditions and seeds not run yet are not offered.
    """

    def __init__(self, report: Mapping[str, Any], bases: Sequence[str], conditions: Sequence[str] | None,
                 ncols: int, width: str | None) -> None:
        self.report = report
        self.ncols = ncols
        done = [k.split("/") for k in report["units"]]
        self._done = {(b, c, int(s)) for b, c, s in done}
        self._conditions = conditions
        self._cache: dict[tuple[str, str, int], bytes] = {}
        self.base = _control("toggle", list(bases), "base")
        self.condition = w.Dropdown(description="condition", style={"description_width": "initial"})
        self.seed = w.ToggleButtons(description="seed", style={"description_width": "initial"})
        self.controls = [self.base, self.condition, self.seed]
        self.image = w.Image(format="jpeg", layout=w.Layout(width=width) if width else w.Layout())
        self.caption = w.HTML()
        self.stats = w.HTML()
        self.base.observe(lambda _change: self._offer_conditions(), names="value")
        self.condition.observe(lambda _change: self._offer_seeds(), names="value")
        self.seed.observe(lambda _change: self._show(), names="value")
        super().__init__([w.HBox([self.base, self.condition, self.seed]), self.caption, self.stats, self.image])
        self._offer_conditions()

    @property
    def selected(self) -> tuple[str, str, int]:
        return self.base.value, self.condition.value, self.seed.value

    def _offer_conditions(self) -> None:
        base = self.base.value
        names = [c for c in (self._conditions or self.report["conditions"]) if self._seeds(base, c)]
        previous = self.condition.value
        self.condition.options = names
        self.condition.value = previous if previous in names else (names[0] if names else None)
        self._offer_seeds()

    def _seeds(self, base: str, condition: str) -> list[int]:
        return sorted(s for b, c, s in self._done if (b, c) == (base, condition))

    def _offer_seeds(self) -> None:
        seeds = self._seeds(self.base.value, self.condition.value) if self.condition.value else []
        previous = self.seed.value
        self.seed.options = [(str(s), s) for s in seeds]
        self.seed.value = previous if previous in seeds else (seeds[0] if seeds else None)
        self._show()

    def _show(self) -> None:
        base, condition, seed = self.selected
        if condition is None or seed is None:
            self.caption.value = f"<i>nothing finished yet for base {base}</i>"
            self.stats.value = ""
            return
        key = (base, condition, seed)
        if key not in self._cache:
            unit = self.report["units"][f"{base}/{condition}/{seed}"]
            tiles = ablation_thumbnails(self.report, base, condition, seed)
            titles = [f"{label(img['target'])}\n" + " / ".join(f"{p:.2f}" for p in img["prob"].values())
                      for img in unit["images"]]
            self._cache[key] = _grid_jpeg(tiles, titles, self.ncols)
        self.image.value = self._cache[key]
        self.caption.value = (f"<b>{base}</b>: {self.report['conditions'][condition]['description']}, seed {seed} "
                              f"(under each image: its class, then the probability "
                              f"{' / '.join(e.replace('efficientnet_', '') for e in self.report['evaluators'])} give it)")
        self.stats.value = _stats_html(self.report, base, condition)


def condition_grid(results: str | os.PathLike | Mapping[str, Any] | None = None, *, base: str | None = None,
                   conditions: Sequence[str] | None = None, ncols: int = 8,
                   width: str | None = None) -> ConditionGrid:
    """A grid of classes for each condition of the ablation benchmark, from its saved images:
    switching base, condition or seed redraws at once, with no optimization, so it works
    where a notebook is read rather than run.

    Args:
        results: the benchmark's ``--out`` folder or its ``ablations.json``; None: the
            results shipped with piikit.
        base: show only this base (``"pixels"``, ``"readable"``; ``"paper"`` in the GPU
            results); default: every base that has results.
        conditions: the conditions to offer, in order (default: all that finished), e.g.
            ``["base", "no_colorshift"]``.
        ncols: images per row.
        width: CSS width of the image.

    Under each image: its class and the target probability each evaluator gives it; above:
    the condition's top-1 with its 95 % interval over classes and its paired difference to
    the base.
    """
    report = ablation_results(results)
    have = list(dict.fromkeys(k.split("/")[0] for k in report["units"]))
    if base is not None and base not in report.get("bases", {}):
        raise ValueError(f"unknown base {base!r}; choose one of {', '.join(report.get('bases', {}))}")
    unknown = [c for c in conditions or () if c not in report["conditions"]]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}; choose from {', '.join(report['conditions'])}")
    return ConditionGrid(report, [base] if base else have or list(report["bases"]), conditions, ncols, width)
