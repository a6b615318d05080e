"""The explorer: one ipywidgets panel to invert a class with any setting and watch it happen.

>>> piikit.explore("efficientnet_lite0", "980: volcano")  # doctest: +SKIP

Why a background thread (and not asyncio): the run goes in chunks of steps
(``Inversion.run(max_steps=n)``) on a worker thread, and the panel is refreshed between
chunks. torch releases the GIL inside its kernels, so the kernel's main thread goes on
handling widget messages *during* a chunk, not only between chunks: a click on Stop is seen
at once and a step callback ends the run after the current step. A coroutine on the kernel's
event loop would block that loop for a whole chunk, would depend on the ipykernel version
for whether button clicks are handled while a cell's task is pending, and would need a
running loop, which plain Python and pytest do not have; the thread works the same in a
kernel, a script and a test, and the user can go on using other cells while it runs. The
price: widgets are updated from the worker thread (ipywidgets sends those updates through
the kernel's thread-safe IOPub channel) and an ``Output`` widget cannot capture it, so the
panel shows everything through ``Image`` and ``HTML`` widgets. Interrupting the kernel does
not reach the worker; the Stop button does. The step loop itself knows nothing of this: the
explorer only passes a callback that records each step and honours Stop.
"""
from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import torch
from torch import nn

from piikit.analysis.evaluate import format_scores
from piikit.engine.callbacks import Callback, StepState
from piikit.engine.config import LR_SCHEDULES, PRESETS, InversionConfig, make_config
from piikit.engine.inversion import Inversion
from piikit.engine.param import PARAM_KINDS
from piikit.engine.result import InversionResult
from piikit.engine.schedule import BORDER_FILLS, SCHEDULE_MODES
from piikit.errors import first_line
from piikit.images import figure_png, image_png
from piikit.labels import imagenet_classes, label, resolve_class
from piikit.models import Classifier, available_models, load_model

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Explorer", "explore", "EXPLORER_PRESET", "stages_method"]


def _box(widget: type, **kw: Any) -> w.ValueWidget:
    """A control of the explorer's left column: one width, one label width."""
    return widget(style={"description_width": "110px"}, layout=w.Layout(width="330px"), **kw)


#: The explorer's own default preset: readable in seconds (see ``glance`` in :mod:`piikit.engine.config`).
EXPLORER_PRESET = "glance"

#: Image sizes offered by the image-size knob; 0 stands for "the model's own" (``image_size=None``).
IMAGE_SIZES = (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512)


def _size_label(size: int) -> str:
    return "the model's own" if size == 0 else f"{size} px"


def _knobs() -> dict[str, w.ValueWidget]:
    """One widget per InversionConfig field worth turning; keys are the field names.

    Left out on purpose: Adam's ``betas`` and the speed settings (``micro_batch``, ``amp``,
    ``channels_last``, ``compile_model``, ``fold_bn``), which change only rounding; pass them to :func:`explore` instead.
    A knob without a tooltip of its own shows its field's comment (:meth:`InversionConfig.field_docs`).
    """
    knobs = {
        # the schedule (PII §3.1)
        "stages": _box(w.IntSlider, min=1, max=10, description="stages"),
        "steps_per_stage": _box(w.BoundedIntText, min=1, max=100_000, description="steps / stage"),
        "schedule": _box(w.Dropdown, options=list(SCHEDULE_MODES), description="schedule"),
        "image_size": _box(w.Dropdown, options=[(_size_label(s), s) for s in IMAGE_SIZES], description="image size"),
        "border": _box(w.Dropdown, options=list(BORDER_FILLS), description="border fill",
                       tooltip="what fills the first image and each grown border"),
        # augmentations (PII §3)
        "ensemble": _box(w.IntSlider, min=1, max=64, description="ensemble"),
        "color_shift": _box(w.Checkbox, description="ColorShift", indent=True),
        "alpha": _box(w.FloatSlider, min=0.0, max=2.0, step=0.05, description="α (shift)"),
        "beta": _box(w.FloatSlider, min=0.0, max=2.0, step=0.05, description="β (scale)"),
        "jitter": _box(w.IntSlider, min=0, max=64, description="jitter (px)"),
        "flip": _box(w.FloatSlider, min=0.0, max=1.0, step=0.05, description="flip (prob.)"),
        "zoom_jitter": _box(w.FloatSlider, min=0.0, max=0.5, step=0.05, description="zoom (±)"),
        "rotate": _box(w.FloatSlider, min=0.0, max=45.0, step=1.0, description="rotation (±°)"),
        # the optimizer and priors
        "param": _box(w.Dropdown, options=list(PARAM_KINDS), description="optimize",
                      tooltip="pixels (the paper) or a 1/f Fourier spectrum in decorrelated colour"),
        "lowres_factor": _box(w.FloatSlider, min=0.05, max=1.0, step=0.05, description="low-res side",
                              tooltip="optimize = lowres: the image's side at this fraction, upsampled"),
        # Text boxes, not log sliders, for rates: a slider would round the preset's value.
        "lr": _box(w.BoundedFloatText, min=1e-6, max=10.0, step=0.005, description="lr"),
        "lr_schedule": _box(w.Dropdown, options=list(LR_SCHEDULES), description="lr schedule"),
        "tv_weight": _box(w.BoundedFloatText, min=0.0, max=1e6, step=1e-4, description="TV weight"),
        "l2_weight": _box(w.BoundedFloatText, min=0.0, max=1e6, step=1e-4, description="L2 weight"),
        # the refine phase (DeepInversion from the stages' image, in the same run)
        "refine_steps": _box(w.BoundedIntText, min=0, max=100_000, description="refine steps",
                             tooltip="then this many steps of DeepInversion's refinement, in the same run (0: none)"),
        "refine_bn_prior": _box(w.Checkbox, description="refine BN prior", indent=True,
                                tooltip="match the BatchNorm statistics while refining (off: TV and L2 only, ~4x cheaper)"),
        "refine_tv_weight": _box(w.BoundedFloatText, min=0.0, max=1e6, step=1e-3, description="refine TV"),
    }
    docs = InversionConfig.field_docs()
    for name, knob in knobs.items():
        knob.tooltip = knob.tooltip or docs[name]
    return knobs


#: The knobs' tabs in the panel, by title: every key of :func:`_knobs` once.
KNOB_GROUPS: dict[str, tuple[str, ...]] = {
    "stages": ("stages", "steps_per_stage", "schedule", "image_size", "border"),
    "augment": ("ensemble", "color_shift", "alpha", "beta", "jitter", "flip", "zoom_jitter", "rotate"),
    "optimizer": ("param", "lowres_factor", "lr", "lr_schedule", "tv_weight", "l2_weight"),
    "refine": ("refine_steps", "refine_bn_prior", "refine_tv_weight"),
}


def stages_method(config: InversionConfig) -> str:
    """What a run's stages are, in words: "PII" only where they are the paper's method (pixels,
    no prior); otherwise PII's stages and augmentations on another image, with its priors."""
    priors = [f"{name} {weight:g}" for name, weight in (("TV", config.tv_weight), ("L2", config.l2_weight)) if weight]
    if config.param == "pixels" and not priors:
        return "PII"
    return f"PII's stages on a {config.param} image" + (f" + {' + '.join(priors)} prior" if priors else "")


class _Feed(Callback):
    """Records every step (loss, target probability, stage) and honours Stop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.loss: list[torch.Tensor] = []
        self.prob: list[torch.Tensor] = []
        self.stage: list[int] = []
        self.last: StepState | None = None

    def on_step_end(self, state: StepState) -> None:
        self.loss.append(state.loss.detach())
        self.prob.append(state.prob.detach())
        self.stage.append(state.stage)
        self.last = state
        if self.stop.is_set():
            state.stop("stopped")

    def history(self) -> dict[str, torch.Tensor]:
        n = len(self.stage)  # lists grow on the worker thread: read a consistent prefix
        if n == 0:
            return {"loss": torch.zeros(0), "prob": torch.zeros(0, 1), "stage": torch.zeros(0, dtype=torch.long)}
        return {
            "loss": torch.stack(self.loss[:n]).float().cpu(),
            "prob": torch.stack(self.prob[:n]).float().cpu(),
            "stage": torch.tensor(self.stage[:n]),
        }


class Explorer(w.VBox):
    """One panel to invert a class with any setting, watch it optimize, stop, score and save.

    Controls: model (offline names, any extra ``models``, or any name for
    :func:`piikit.load_model` typed in), class (type to search, ``"idx: name"`` or a name),
    preset (it fills in the knobs), every :class:`~piikit.InversionConfig` knob that
    matters, including the refine phase (``refine_steps``: DeepInversion in the same run);
    buttons Run, Stop, Score (:meth:`InversionResult.score`) and Save
    (:meth:`InversionResult.save`). Shown: the image being optimized (refreshed every
    ``refresh_s`` seconds), one thumbnail per finished stage, the target-probability and
    loss curve, a status line and the scores.

    Runs go on a worker thread (see the module docstring). The same actions exist as
    methods for scripts and tests: :meth:`run`, :meth:`stop`, :meth:`wait`, :meth:`score`,
    :meth:`save`. A failing run shows its error in the status line and keeps the last good
    image and result.

    Args:
        model: the initial model name (or a key of ``models``).
        target: the initial class (``"980: volcano"``, ``"volcano"`` or an index).
        preset: the initial preset; default ``"glance"`` (not ``"fast"``, the other entry points'
            default): PII's stages and augmentations on a Fourier image with grey borders and a
            light TV prior (4 stages of 32 steps, ensemble 4), so the first Run shows a readable
            image in about 10 s on 2 idle CPU cores. It is not the paper's PII, which optimizes
            pixels with no prior (``"fast"``, ``"paper"``); the status line says which runs.
        models: extra models by name (modules or :class:`~piikit.Classifier`), offered
            first in the model box, e.g. your own fine-tuned network.
        evaluators: what Score uses (default: the offline models other than the inverted one).
        device: ``"auto"`` or any torch device.
        seed: the initial seed.
        out_dir: the initial Save directory.
        refresh_s: seconds between refreshes of the live image and curve while running.
        **overrides: initial :class:`~piikit.InversionConfig` values over the preset
            (``ensemble=8``); fields without a knob (``micro_batch=4``) apply to every run.

    Attributes:
        result: the last good :class:`~piikit.InversionResult` (None before the first run).
    """

    def __init__(self, model: str = "efficientnet_lite0", target: int | str = "980: volcano",
                 preset: str = EXPLORER_PRESET, *, models: Mapping[str, nn.Module] | None = None,
                 evaluators: Any = None, device: str | torch.device | None = "auto", seed: int = 0,
                 out_dir: str = "out/explorer", refresh_s: float = 1.0, **overrides: Any) -> None:
        initial = make_config(preset, **overrides)  # fails here, with suggestions, on a misspelt field
        self.models = dict(models or {})
        self.evaluators = evaluators
        self.device = device
        self.refresh_s = refresh_s
        self.result: InversionResult | None = None
        self.chunk = 1  # steps per chunk, adapted to refresh_s while running
        self._loaded: dict[str, Classifier] = {}
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._feed = _Feed(self._stop)
        self._started = 0.0
        self._full = 224  # the last stage's image size, for thumbnail widths
        self._pii_stages = 0  # the stages before the refine phase, for the status line
        self._method = "PII"  # what those stages run, in words (stages_method)

        self.model_box = _box(w.Combobox, options=[*self.models, *available_models()["offline"]], value=str(model),
                             description="model", ensure_option=False)
        self.class_box = _box(w.Combobox, options=[label(i) for i in range(len(imagenet_classes()))],
                             value=target if isinstance(target, str) else label(target), description="class",
                             ensure_option=False, placeholder="type to search, e.g. volcano")
        self.preset = _box(w.Dropdown, options=list(PRESETS), value=preset, description="preset")
        self.seed = _box(w.IntText, value=seed, description="seed")
        self.knobs = _knobs()
        self.run_button = w.Button(description="Run", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.score_button = w.Button(description="Score", icon="check", disabled=True,
                                     tooltip="classify the image with other models")
        self.save_button = w.Button(description="Save", icon="save", disabled=True)
        self.save_dir = _box(w.Text, value=out_dir, description="save to")

        self.image = w.Image(format="png", layout=w.Layout(width="256px", height="256px", border="1px solid #ccc"))
        self.thumbnails = w.HBox(layout=w.Layout(min_height="40px", align_items="flex-end"))
        self.curve = w.Image(format="png", layout=w.Layout(width="480px"))
        self.status = w.HTML("Choose a model and a class, then Run.")
        self.scores = w.HTML()

        # Stable CSS classes, for styling and for the browser test to find the parts.
        for name, widget in {"live": self.image, "curve": self.curve, "status": self.status, "stages": self.thumbnails,
                             **{f"knob-{k}": v for k, v in self.knobs.items()}}.items():
            widget.add_class(f"piikit-{name}")
        self.preset.observe(lambda _c: self._fill(self.knobs, PRESETS[self.preset.value]), names="value")
        self._fill(self.knobs, initial)
        # Fields without a knob (micro_batch, image_size, amp ...) still apply to every run.
        self.fixed = {k: v for k, v in overrides.items() if k not in self.knobs}
        self.run_button.on_click(lambda _b: self.run())
        self.stop_button.on_click(lambda _b: self.stop())
        self.score_button.on_click(lambda _b: self.score())
        self.save_button.on_click(lambda _b: self.save())

        # The knobs in tabs, so the panel stays about one screen high; each tab is a group of
        # InversionConfig fields (KNOB_GROUPS).
        tabs = [w.VBox([self.knobs[name] for name in names]) for names in KNOB_GROUPS.values()]
        self.tabs = w.Tab(children=tabs, titles=list(KNOB_GROUPS), layout=w.Layout(width="372px"))
        controls = w.VBox([
            self.model_box, self.class_box, self.preset, self.seed,
            w.HBox([self.run_button, self.stop_button]), self.tabs,
            w.HBox([self.score_button, self.save_button]), self.save_dir,
        ])
        view = w.VBox([self.image, w.HTML("<b>stages</b>"), self.thumbnails, self.curve, self.scores])
        super().__init__([w.HBox([controls, view]), self.status])

    # ------------------------------------------------------------------ state
    @staticmethod
    def _fill(knobs: Mapping[str, w.ValueWidget], config: Any) -> None:
        for name, widget in knobs.items():
            value = getattr(config, name)
            if name == "image_size":
                value = value or 0  # None (the model's own size) is the dropdown's 0
                sizes = {size for _, size in widget.options}
                if value not in sizes:  # a size the list lacks (image_size=100): offer it
                    widget.options = [(_size_label(size), size) for size in sorted({*sizes, value})]
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and value > getattr(widget, "max", value):
                widget.max = value  # a bounded widget would silently clip a larger setting
            widget.value = value

    def config(self) -> InversionConfig:
        """The inversion config the knobs describe (raises on an invalid combination)."""
        values = {name: wid.value for name, wid in self.knobs.items()}
        values["image_size"] = values["image_size"] or None  # the dropdown's 0: the model's own size
        return make_config(self.preset.value, **self.fixed, **values)

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    @property
    def history(self) -> dict[str, torch.Tensor]:
        """Every step of the current run so far (PII, then DeepInversion): ``loss`` (T,),
        ``prob`` (T×1, target probability under augmentation), ``stage`` (T,)."""
        return self._feed.history()

    @property
    def steps_done(self) -> int:
        return len(self._feed.stage)

    # ------------------------------------------------------------------ actions
    def run(self) -> None:
        """Start a run with the current settings (what the Run button does)."""
        self._start(self._invert)

    def stop(self) -> None:
        """Ask the running inversion to stop after its current step; it keeps what it made."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run, score or save ends; False if ``timeout`` passed first."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return not self.running

    def score(self) -> None:
        """Classify the current image with other models and show the table (Score button)."""
        self._start(self._score)

    def save(self) -> None:
        """Write the current result as PNG + result.json into the Save directory (Save button)."""
        self._start(self._save)

    def _start(self, job: Callable[[], None]) -> None:
        if self.running:
            return
        self._stop.clear()
        self._busy(True)
        self._worker = threading.Thread(target=self._guarded, args=(job,), daemon=True, name="piikit-explorer")
        self._worker.start()

    def _guarded(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as error:  # the panel must stay usable whatever a run raises
            partial = getattr(error, "partial", None)
            if isinstance(partial, InversionResult) and partial.images.numel():
                self.result = partial
            first = first_line(error) if str(error).strip() else ""
            kept = " (the last good image is kept)" if self.image.value else ""
            self.status.value = (f"<span style='color:#b00'><b>{type(error).__name__}</b>: "
                                 f"{html.escape(first)}</span>{kept}")
        finally:
            self._busy(False)

    def _busy(self, busy: bool) -> None:
        self.run_button.disabled = busy
        self.stop_button.disabled = not busy
        self.score_button.disabled = busy or self.result is None
        self.save_button.disabled = busy or self.result is None

    # ------------------------------------------------------------------ jobs (worker thread)
    def _model(self) -> Classifier:
        name = self.model_box.value.strip()
        if name not in self._loaded:
            self.status.value = f"loading {html.escape(name)} …"
            self._loaded[name] = load_model(self.models.get(name, name))
        model = self._loaded[name]
        names = [label(i, model.class_names) for i in range(len(model.class_names))]
        if list(self.class_box.options) != names:
            self.class_box.options = names
        return model

    def _target(self, model: Classifier) -> int:
        text = str(self.class_box.value).strip()
        head = text.split(":", 1)[0].strip()
        return resolve_class(head if head.isdigit() else text, model.class_names)

    def _invert(self) -> None:
        config = self.config()
        model = self._model()
        target = self._target(model)
        self._feed = _Feed(self._stop)
        self.thumbnails.children = ()
        self.scores.value = ""
        self._started = time.perf_counter()
        inversion = Inversion(model, target, config, seed=self.seed.value, device=self.device, progress=False,
                              callbacks=[self._feed])
        self._full = inversion.schedule.sizes[-1]
        self._pii_stages = config.stages
        self._method = stages_method(config)
        self.chunk = 1
        while not inversion.done and not self._stop.is_set():
            began = time.perf_counter()
            result = inversion.run(max_steps=self.chunk)
            ran = time.perf_counter()
            self.result = result
            self._refresh(result.images, result.snapshots)
            drawn = time.perf_counter() - ran
            per_step = (ran - began) / max(1, self.chunk)
            # A refresh (PNGs and a matplotlib curve) takes CPU time from the run: a chunk lasts
            # refresh_s, and at least 8 refreshes' time, so drawing costs at most ~1/9 of the run
            # (measured on 2 busy cores: refreshing every second doubled the first Run's CPU time).
            every = max(self.refresh_s, 8 * drawn) if self.refresh_s > 0 else 0.0
            self.chunk = max(1, min(200, int(every / max(per_step, 1e-6))))
        if self.result is not None and self.result.interrupted and self.result.stop_reason is None:
            self.result.stop_reason = "stopped"  # Stop came between two chunks
        if self.result is not None:
            self._refresh(self.result.images, None, final=True)

    def _refresh(self, images: torch.Tensor, snapshots: Sequence[torch.Tensor] | None, final: bool = False) -> None:
        """Show the live image, new stage thumbnails, the curve and the status line."""
        self.image.value = image_png(images[0])
        if snapshots is not None and len(snapshots) > len(self.thumbnails.children):
            # Thumbnails keep their sizes relative to the final stage, so the zoom shows.
            self.thumbnails.children = (*self.thumbnails.children, *(
                w.Image(value=image_png(s[0]), format="png",
                        layout=w.Layout(width=f"{max(24, round(96 * s.shape[-1] / self._full))}px"))
                for s in snapshots[len(self.thumbnails.children):]))
        history = self.history
        if len(history["loss"]):
            self.curve.value = figure_png(_curve(history, self.class_box.value), dpi=72)
        self.status.value = self._status_line(final)

    def _status_line(self, final: bool) -> str:
        state, result = self._feed.last, self.result
        if state is None or result is None:
            return "starting …"
        phase = "DeepInversion refine" if state.stage >= self._pii_stages else self._method
        seconds = time.perf_counter() - self._started
        line = (f"{phase} · stage {state.stage + 1} · step {self.steps_done} · "
                f"loss {float(state.loss):.3f} · p(target) {float(state.prob[0]):.3f} (augmented) · {seconds:.1f} s")
        if final:
            ending = "stopped" if result.interrupted else "done"
            probability = "" if result.final_probs is None else f"; p = {float(result.final_probs[0]):.3f} on the image"
            line = f"<b>{ending}</b>: {line}{probability}"
            if "bn_prior_used" in result.extra:
                line += ("; BatchNorm prior used" if result.extra["bn_prior_used"]
                         else "; no BatchNorm prior (the model has none, or its weight is 0): TV and L2 only")
        return line

    def _score(self) -> None:
        if self.result is None:
            raise RuntimeError("nothing to score yet: Run first")
        self.status.value = "scoring with other models …"
        rows = self.result.score(self.evaluators)
        self.scores.value = f"<pre style='font-size:11px'>{html.escape(format_scores(rows))}</pre>"
        self.status.value = f"scored by {', '.join(dict.fromkeys(r['evaluator'] for r in rows))}"

    def _save(self) -> None:
        if self.result is None:
            raise RuntimeError("nothing to save yet: Run first")
        paths = self.result.save(self.save_dir.value)
        self.status.value = (f"saved {len(paths)} PNG + result.json to "
                             f"<code>{html.escape(str(paths[0].parent))}</code>")


def _curve(history: Mapping[str, torch.Tensor], title: str) -> "Figure":
    """Target probability (from :func:`piikit.figures.plot_history`) with the loss on a twin axis."""
    from piikit.figures import plot_history

    figure = plot_history(history, [str(title)])
    ax = figure.axes[0]
    loss_axis = ax.twinx()
    loss_axis.plot(history["loss"].numpy(), color="0.5", lw=0.8, ls="--")
    loss_axis.set_ylabel("loss (dashed)")
    figure.set_size_inches(6.4, 2.6)
    return figure


def explore(model: str = "efficientnet_lite0", target: int | str = "980: volcano", preset: str = EXPLORER_PRESET,
            **kwargs: Any) -> Explorer:
    """The interactive explorer (:class:`Explorer`); display it as a notebook cell's last value.

    >>> piikit.explore("efficientnet_lite0", "goldfinch", "fast", ensemble=8)  # doctest: +SKIP
    """
    return Explorer(model, target, preset, **kwargs)
