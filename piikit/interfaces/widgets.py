"""ipywidgets for notebooks that compare settings: flip through results already computed.

>>> view = result_slider([res_a, res_b, res_c], ["e=1", "e=8", "e=32"])  # doctest: +SKIP
>>> view = result_grid({("zoom", True): fig1, ("zoom", False): fig2}, ["schedule", "ColorShift"])  # doctest: +SKIP

Both show items already computed (an :class:`~piikit.InversionResult`, a matplotlib
``Figure``, an image tensor or PNG bytes) as PNGs in an ``ipywidgets.Image``; each is drawn
once, when first shown, and kept. The interactive explorer is :mod:`piikit.interfaces.explorer`.
Imported lazily (``piikit.widgets``), so ``import piikit`` never needs ipywidgets.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import ipywidgets as w
import torch

from piikit.engine.result import InversionResult
from piikit.images import figure_png, image_png

__all__ = ["ResultBrowser", "result_slider", "result_grid", "image_png", "figure_png"]


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
