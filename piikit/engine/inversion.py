"""The Plug-In Inversion step loop.

One step (PII §3.4): jitter the image (one random roll for the whole batch), optionally
flip it, repeat each image ``ensemble`` times, ColorShift every copy with its own random
mean and scale, run the model, and take one Adam step on the mean cross-entropy of each
image's copies; then clamp the image to [0, 1]. Stages grow the image (zoom + centering,
:mod:`piikit.engine.schedule`), each with a fresh optimizer and its own cosine decay. A run
is a list of phases (:mod:`piikit.engine.phases`): the stages, then optionally DeepInversion
from their image, all run by this one loop.

The loop knows nothing of widgets or plots (progress goes through :mod:`piikit.engine.progress`): it calls
:class:`Callback` hooks, and :class:`Inversion` can be advanced a chunk of steps at a time
(``run(max_steps=...)``), which is how a notebook explorer keeps its Stop button live.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from piikit.engine.augment import ColorShift, Flip, Jitter, RandomAffine
from piikit.engine.callbacks import Callback, StepState, as_callback
from piikit.engine.config import DEFAULT_PRESET, InversionConfig, for_device, make_config
from piikit.device import resolve_device
from piikit.errors import InversionFailed, first_line
from piikit.images import as_init_images, checked_init
from piikit.labels import resolve_classes
from piikit.engine.memory import auto_micro_batch, record_out_of_memory
from piikit.engine.memory import is_out_of_memory as _is_oom
from piikit.models import Classifier, frozen, load_model
from piikit.models.folding import folded
from piikit.engine.objectives import Batch, ClassObjective, CompositeObjective, LossTerm, Objective, attached
from piikit.engine.param import make_param
from piikit.engine.progress import Progress
from piikit.engine.phases import Phase, run_phases
from piikit.engine.proxy_prior import ProxyBatchNormPrior
from piikit.engine.priors import BatchNormPrior
from piikit.engine.result import InversionResult
from piikit.engine.schedule import StageSchedule
from piikit.validation import check_int, check_targets

__all__ = ["invert", "Inversion", "Callback", "StepState"]


@contextlib.contextmanager
def _prepared(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """The model frozen for the run (eval, no parameter gradients; restored afterwards),
    in channels-last memory format if asked (and back to the usual layout afterwards if it
    was in it: a user's weights should not come back with other strides)."""
    restore = channels_last and all(p.is_contiguous() for p in model.parameters())
    with frozen(model):
        if channels_last:
            model.to(memory_format=torch.channels_last)
        try:
            yield
        finally:
            if restore:
                model.to(memory_format=torch.contiguous_format)


class _NotCopied:
    """What a module keeps for itself (its compiled version): a deep copy or a pickle of the
    module gets an empty holder, since a compiled module cannot be copied and belongs to
    the original."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> _NotCopied:
        return _NotCopied()

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return _NotCopied, ()


def _compiled(net: nn.Module) -> nn.Module:
    """``torch.compile(net)``, made once per network: kept in the module's own ``__dict__``
    (not as a submodule), so it lives and dies with it and a sweep compiles once.

    Static shapes: one compile per stage size. Left dynamic, the second stage size recompiled
    the network for symbolic shapes, which took over 15 minutes on a 2-core CPU."""
    holder = net.__dict__.get("_piikit_compiled")
    if holder is None or holder.value is None:
        holder = net.__dict__["_piikit_compiled"] = _NotCopied(torch.compile(net, dynamic=False))
    return holder.value


def _reads_only_logits(part: Objective | LossTerm) -> bool:
    """Whether ``part`` hooks no layer (so a compiled model, whose layers are not the ones hooked, gives it the same values)."""
    if isinstance(part, CompositeObjective):
        return all(_reads_only_logits(p) for _, p in part.parts)
    return type(part).hooks in (Objective.hooks, LossTerm.hooks)


def _folds(part: Objective | LossTerm) -> bool:
    """Whether ``part`` gets the same values from a model with its BatchNorms folded: it reads
    the logits only, or it is the BatchNorm prior, which reads the folded statistics."""
    return type(part) is BatchNormPrior or _reads_only_logits(part)


def _check_smallest_stage(model: Classifier, schedule: StageSchedule, device: torch.device) -> None:
    """Fail now, not steps into a run, if the model cannot take the first stage's image."""
    if model.fixed_input_size:
        return  # it is resized to the model's input size anyway
    s = schedule.sizes[0]
    try:
        with torch.no_grad(), frozen(model):
            model(torch.zeros(1, schedule.channels, s, s, device=device))
    except RuntimeError as error:
        if _is_oom(error):
            raise
        raise ValueError(
            f"{model.name} cannot take the first stage's {s}×{s} image ({first_line(error)}); "
            f"use fewer stages (now {schedule.stages}) or a larger image_size (now {schedule.image_size})"
        ) from error


class Inversion:
    """A resumable run; :func:`invert` is ``Inversion(...).run()``.

    A run is a list of phases (:mod:`piikit.engine.phases`): Plug-In Inversion's stages,
    then, with ``refine_steps``, a DeepInversion refine phase from their final image. One
    loop runs them all: steps and stages are counted over the whole run, and callbacks,
    progress and the result see one run.

    ``run(max_steps=n)`` advances at most ``n`` steps and returns the result so far; call it
    again to go on. Ctrl-C, or a callback calling ``state.stop()``, ends a ``run`` early and
    returns the partial result (``interrupted=True``); a later ``run()`` resumes.
    Arguments are those of :func:`invert`, plus ``phases``: run these
    (:func:`~piikit.engine.phases.deepinversion_phases`, as :func:`piikit.refine` does)
    instead of the ones ``preset`` implies; ``preset`` is then the config the result records.
    """

    def __init__(
        self,
        model: Classifier | nn.Module | str,
        targets: int | str | Sequence[int | str] | None,
        preset: str | InversionConfig = DEFAULT_PRESET,
        *,
        seed: int | None = 0,
        device: str | torch.device | None = "auto",
        objective: Objective | None = None,
        terms: Sequence[LossTerm] = (),
        callbacks: Sequence[Callback | Callable[[StepState], Any]] = (),
        progress: bool = True,
        init: torch.Tensor | None = None,
        num_images: int | None = None,
        phases: Sequence[Phase] | None = None,
        refine_prior_model: Classifier | nn.Module | str | None = None,
        **overrides: Any,
    ) -> None:
        config = make_config(preset, **overrides)
        self.device = resolve_device(device)
        self.config = for_device(config, self.device.type,
                                 micro_batch_given=not isinstance(preset, str) or "micro_batch" in overrides)
        self.model = load_model(model).to(self.device)
        self.objective = objective if objective is not None else ClassObjective()
        if self.config.refine_steps and phases is None and not isinstance(self.objective, ClassObjective):
            raise ValueError("refine_steps refines class inversions (DeepInversion's cross-entropy); "
                             "a feature objective needs refine_steps=0")
        self._user_terms = list(terms)
        self.callbacks = [as_callback(c) for c in callbacks]
        self.progress = progress
        if num_images is not None:
            num_images = check_int("num_images", num_images, low=1)
        if targets is None:
            if self.objective.needs_targets:
                raise ValueError("class inversion needs target classes (pass targets=..., or an objective)")
            if init is not None:
                init = as_init_images(init)
            k = num_images or (len(init) if init is not None and init.ndim == 4 else 1)
            self.targets = [-1] * k
        else:
            self.targets = resolve_classes(check_targets(targets), self.model.class_names)
        size = self.config.image_size or self.model.input_size[0]
        if refine_prior_model is not None and (phases is not None or not self.config.refine_steps):
            raise ValueError("refine_prior_model lends its BatchNorm prior to the refine phase: it needs "
                             "refine_steps > 0 (and no phases=)")
        proxy = None if refine_prior_model is None else load_model(refine_prior_model).to(self.device)
        self.phases = list(phases) if phases is not None else run_phases(self.config, self.model, size, proxy)
        for phase in self.phases:
            c = phase.config
            schedule = StageSchedule(c.image_size or size, c.stages, c.schedule, channels=self.model.in_chans)
            _check_smallest_stage(self.model, schedule, self.device)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        seed = check_int("seed", seed, low=0, high=2**64 - 1)
        self.seed = seed
        self._target_tensor = torch.tensor(self.targets, device=self.device)
        self._has_targets = self.targets[0] >= 0
        self._init = None if init is None else checked_init(init, len(self.targets), self.model.in_chans)
        self._transparency: torch.Tensor | None = None  # an earlier phase's (MaCo's) transparency map
        self.stage = -1  # over the whole run
        self.global_step = 0
        self.image: torch.Tensor | None = None
        self.canvas: torch.Tensor | None = None
        self._last_good: torch.Tensor | None = None
        self._pending_check: tuple[torch.Tensor, Any, torch.Tensor, int] | None = None  # _check_finite's, read a check later
        self._history: list[dict[str, Any]] = []
        self._history_done: dict[str, list[torch.Tensor]] = {}
        self._history_len = 0
        self.snapshots: list[torch.Tensor] = []
        self.elapsed_s = 0.0
        self.stop_reason: str | None = None
        self._enter_phase(0)

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    @property
    def done(self) -> bool:
        return self.global_step >= self.total_steps

    # ----------------------------------------------------------------- phases and stages
    def _enter_phase(self, index: int) -> None:
        """Set up phase ``index``'s loop: its config, priors, network, schedule, augmentations
        and generators (seeded ``seed + index``); its first stage starts from the previous
        phase's final image."""
        self._carry = None if self.image is None else self._view().detach().clamp(0, 1)
        if self.image is not None and self.param.transparency() is not None:
            self._transparency = self.param.transparency()
        self.phase_index = index
        self.phase = phase = self.phases[index]
        self.loop = cfg = phase.config
        self._step0 = self.global_step
        self._stage0 = self.stage + 1
        self.step_in_stage = cfg.steps_per_stage  # "the previous stage is finished"
        self.terms = [*phase.terms, *self._user_terms]
        # The network the steps run: the model, or its copy with BatchNorm folded in when
        # nothing reads a layer the folding changes.
        logits_only = all(_reads_only_logits(p) for p in [self.objective, *self.terms])
        net = folded(self.model) if cfg.fold_bn and all(_folds(p) for p in [self.objective, *self.terms]) else self.model
        # Compiled only when no hook reads a layer: a compiled module's layers are not the ones hooked.
        self._is_compiled = cfg.compile_model and logits_only
        self._net = _compiled(net) if self._is_compiled else net
        size = cfg.image_size or self.model.input_size[0]
        self.schedule = StageSchedule(size, cfg.stages, cfg.schedule, channels=self.model.in_chans)
        # Host-side draws (jitter shift, flip) come from a CPU generator so they never make
        # the device wait; tensors (noise, ColorShift) from one on the run's device.
        seed = (self.seed + index) % 2**64
        self.host_rng = torch.Generator().manual_seed(seed)
        self.rng = torch.Generator(self.device).manual_seed(seed)
        self.jitter = Jitter(cfg.jitter)
        self.flip = Flip(cfg.flip)
        self.color_shift = ColorShift(cfg.alpha, cfg.beta)
        self.affine = RandomAffine(cfg.zoom_jitter, cfg.rotate)
        # What the optimizer moves (self.image): the pixels themselves (the paper), or
        # parameters that self.param decodes into pixels.
        self.param = make_param(cfg.param, cfg.lowres_factor)
        self._owner = torch.arange(len(self.targets), device=self.device).repeat_interleave(cfg.ensemble)
        self._sample_targets = self._target_tensor.repeat_interleave(cfg.ensemble)
        # "auto" (and on CUDA None, "all at once", which then backs off only where that does
        # not fit): probed in run(), halved by a step that still runs out of memory.
        self._auto_batch = cfg.micro_batch == "auto" or (cfg.micro_batch is None and self.device.type == "cuda")
        self._micro_batch = None if self._auto_batch else cfg.micro_batch

    def _compiling(self) -> contextlib.AbstractContextManager[Any]:
        """Around a compiled network's passes: its backward keeps its buffers, because
        passes of ``micro_batch`` samples share the image's graph and so backpropagate with
        ``retain_graph=True``, which a backward that reuses (donates) them refuses."""
        if not self._is_compiled:
            return contextlib.nullcontext()
        return torch._functorch.config.patch(donated_buffer=False)

    @property
    def _phase_done(self) -> bool:
        return self.global_step >= self._step0 + self.phase.steps

    def _begin_stage(self) -> None:
        self.stage += 1
        self.step_in_stage = 0
        local = self.stage - self._stage0
        if local == 0:
            k = len(self.targets)
            self.canvas = self.schedule.canvas(k, self.rng, self.device, border=self.loop.border)
            start = self._carry if self._carry is not None else self._init
            if start is not None:
                s = self.schedule.sizes[0]
                mode = self.phase.enter if self._carry is not None else "bilinear"
                image = torch.nn.functional.interpolate(
                    start.detach().float().to(self.device), size=(s, s), mode=mode,
                    **({"align_corners": False} if mode == "bilinear" else {})).clamp(0, 1)
            else:
                image = self.schedule.initial(k, self.rng, self.device, border=self.loop.border)
        else:
            assert self.image is not None
            pixels = self.param.decode(self.image.detach())
            image = self.schedule.grow(pixels, local, self.rng, self.canvas, border=self.loop.border)
        self.image = self.param.encode(image).requires_grad_(True)
        self._last_good = self.image.detach().clone()
        cfg = self.loop
        self.param.start_stage(len(self.targets), self._view().shape[-1], self.device,
                               lambda earlier: self.schedule.grow(earlier, local, border="black"))
        self.optimizer = torch.optim.Adam([self.image], lr=cfg.lr, betas=cfg.betas)
        self._call("on_stage_start", self._state(None, None, {}, cfg.lr))

    def _end_stage(self) -> None:
        self.snapshots.append(self._view().detach().cpu())
        self._flush_history()
        self._call("on_stage_end", self._last_state)

    def _view(self) -> torch.Tensor:
        assert self.image is not None
        return self.schedule.model_input(self.param.decode(self.image), self.canvas)

    # ----------------------------------------------------------------- one step
    def _lr(self) -> float:
        cfg = self.loop
        if cfg.lr_schedule == "constant":
            return cfg.lr
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * self.step_in_stage / cfg.steps_per_stage))

    def _step(self) -> StepState:
        """One step; with an automatic micro-batch, a step that runs out of memory is redone
        from the same random draws in slices half as large."""
        if not self._auto_batch:
            return self._try_step()
        states = self.host_rng.get_state(), self.rng.get_state()
        while True:
            chunk = self._micro_batch or len(self.targets) * self.loop.ensemble
            try:
                return self._try_step()
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not _is_oom(error) or chunk == 1:
                    raise
            # Out of the except block: its traceback no longer holds the failed pass's tensors.
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            record_out_of_memory(self.model, chunk, self.schedule.sizes[-1], self.device, channels=self.schedule.channels,
                                 amp=self.loop.amp, channels_last=self.loop.channels_last)
            self._micro_batch = max(1, chunk // 2)
            self.host_rng.set_state(states[0])
            self.rng.set_state(states[1])

    def _try_step(self) -> StepState:
        cfg = self.loop
        k, e = len(self.targets), cfg.ensemble
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)

        view = self._view()
        if self.param.watches_gradient:
            view.retain_grad()
        shifted = self.flip(self.jitter(view, generator=self.host_rng), generator=self.host_rng)
        n = k * e
        if cfg.color_shift:
            mu, sigma = self.color_shift.sample_params(torch.Size((n, view.shape[1])), generator=self.rng)
        if self.affine.active:
            zoom, angle = self.affine.sample_params(torch.Size((n,)), generator=self.rng)
        chunk = self._micro_batch or n
        total = torch.zeros((), device=self.device)
        prob = torch.zeros(k, device=self.device)
        term_values: dict[str, torch.Tensor] = {}
        # Samples are image-major (image i's copies are i*e .. i*e+e-1); a pass takes any
        # contiguous slice of them, so a pass holds at most micro_batch samples.
        with self._compiling():  # once per step, not per pass
            for start in range(0, n, chunk):
                part = slice(start, min(start + chunk, n))
                owner = self._owner[part]
                x = shifted.index_select(0, owner)
                if self.affine.active:
                    x = self.affine(x, params=(zoom[part], angle[part]))
                if cfg.color_shift:
                    x = self.color_shift(x, params=(mu[part], sigma[part]))
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                    logits = self._net(x)
                batch = Batch(view, x, logits, self._sample_targets[part], owner, e)
                # Sum over copies / e: each image's loss is the mean over its whole ensemble,
                # so chunking (gradient accumulation) gives exactly the full-batch gradient.
                loss = self.objective(batch).sum() / e
                fraction = len(owner) / n  # terms count once per step, whatever the chunking
                for term in self.terms:
                    value = term(batch) * fraction
                    term_values[term.name] = term_values.get(term.name, 0) + value.detach()
                    loss = loss + term.weight * value
                loss.backward(retain_graph=part.stop < n)
                total += loss.detach()
                if self._has_targets:
                    p = logits.detach().float().softmax(-1).gather(1, batch.targets[:, None]).view(-1)
                    prob.index_add_(0, owner, p / e)
        if self.param.watches_gradient and view.grad is not None:
            self.param.observe(view.grad)
        self.optimizer.step()
        if self.param.clamp:
            with torch.no_grad():
                self.image.clamp_(0, 1)
        self.step_in_stage += 1
        self.global_step += 1
        # Recorded per image: the summed loss would grow with the number of targets.
        per_image = total / k
        self._history.append({"loss": per_image, "prob": prob, "lr": lr, "stage": self.stage, **term_values})
        return self._state(per_image, prob, term_values, lr)

    def _state(self, loss: torch.Tensor | None, prob: torch.Tensor | None, terms: dict[str, torch.Tensor], lr: float) -> StepState:
        zero = torch.zeros((), device=self.device)
        self._last_state = StepState(
            stage=self.stage, step=self.step_in_stage, global_step=self.global_step, total_steps=self.total_steps,
            image=self._view().detach(), loss=zero if loss is None else loss,
            prob=torch.zeros(len(self.targets), device=self.device) if prob is None else prob, terms=terms, lr=lr,
        )
        return self._last_state

    def _call(self, hook: str, arg: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(arg)

    def _flush_history(self) -> None:
        """Move the pending per-step records to the CPU in one transfer per stage. A term that
        only some phases have reads NaN in the others' steps."""
        if not self._history:
            return
        n = len(self._history)
        for key in dict.fromkeys([*self._history_done, *self._history[0]]):
            if key in self._history[0]:
                values = [h[key] for h in self._history]
                stacked = torch.stack(values).cpu() if isinstance(values[0], torch.Tensor) else torch.tensor(values)
            else:
                like = self._history_done[key][-1]
                stacked = torch.full((n, *like.shape[1:]), float("nan"), dtype=like.dtype)
            if key not in self._history_done and self._history_len:
                self._history_done[key] = [torch.full((self._history_len, *stacked.shape[1:]), float("nan"),
                                                      dtype=stacked.dtype)]
            self._history_done.setdefault(key, []).append(stacked)
        self._history_len += n
        self._history = []

    def _check_finite(self, wait: bool = True) -> None:
        """Stop on a non-finite loss, keeping the last image that was finite.

        With ``wait=False`` (on CUDA, within a stage) the check is read one check later: the
        device copies its answer to the host as it gets there, so the host never waits for the
        device in a stage's steps. A stage's last step is checked at once (``wait=True``): the
        next stage grows from its image."""
        assert self.image is not None
        pending, self._pending_check = self._pending_check, None
        if pending is not None:
            finite, ready, image, step = pending
            ready.synchronize()  # recorded a check ago: normally long done
            if not bool(finite):
                self._fail_nonfinite(step)
            self._last_good = image
        last = self._history[-1]["loss"] if self._history else None
        if last is not None and not wait:
            finite = torch.empty((), dtype=torch.bool, pin_memory=True)
            finite.copy_(torch.isfinite(last), non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
            self._pending_check = (finite, ready, self.image.detach().clone(), self.global_step)
            return
        if last is not None and not torch.isfinite(last):
            self._fail_nonfinite(self.global_step)
        self._last_good = self.image.detach().clone()

    def _fail_nonfinite(self, step: int) -> None:
        """Raise :class:`InversionFailed` for a non-finite loss at ``step``, the image back at the last finite one."""
        assert self.image is not None
        with torch.no_grad():
            self.image.copy_(self._last_good)
        self.stop_reason = "nonfinite"
        if not self._model_is_finite():
            raise InversionFailed(
                f"the loss became non-finite at step {step} (stage {self.stage + 1}) because the "
                "model's logits are NaN/inf on the last finite image: check the model's weights and mean/std "
                "(not the lr); the partial result holds that image.", partial=self.result(),
            )
        raise InversionFailed(
            f"the loss became non-finite at step {step} (stage {self.stage + 1}); "
            "the partial result holds the last finite image. A smaller lr, or amp=False, usually helps.",
            partial=self.result(),
        )

    def _model_is_finite(self) -> bool:
        """Whether the model gives finite logits on the last finite image (False: the model,
        not the optimization, makes the loss non-finite)."""
        try:
            with torch.no_grad(), frozen(self.model):
                view = self.schedule.model_input(self.param.decode(self._last_good), self.canvas)
                return bool(torch.isfinite(self.model(view[:1]).float()).all())
        except (RuntimeError, ValueError):
            return True

    # ----------------------------------------------------------------- driving
    def run(self, max_steps: int | None = None) -> InversionResult:
        """Advance up to ``max_steps`` steps (default: to the end) and return the result."""
        self.stop_reason = None
        started = time.perf_counter()
        stages = sum(p.config.stages for p in self.phases)
        progress = Progress(self.progress, self.total_steps, min(self.global_step, self.total_steps),
                            f"{self.model.name} ×{len(self.targets)}", stages)
        done_here = 0
        try:
            while not self.done and self.stop_reason is None and (max_steps is None or done_here < max_steps):
                if self._phase_done:
                    self._enter_phase(self.phase_index + 1)
                left = None if max_steps is None else max_steps - done_here
                done_here += self._run_phase(progress, left, started)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            # A warning, not a print: a notebook shows it once; the command formats it as one line.
            warnings.warn(f"interrupted at step {self.global_step}/{self.total_steps}; returning the partial result",
                          stacklevel=2)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not _is_oom(error):
                raise
            self.stop_reason = "oom"
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            n = len(self.targets) * self.loop.ensemble
            half = max(1, (self._micro_batch or n) // 2)
            raise InversionFailed(
                f"out of memory on {self.device} with {len(self.targets)} image(s) × ensemble {self.loop.ensemble}. "
                f"Try micro_batch={half} (the same result in smaller forward passes), fewer targets per run, or a smaller ensemble.",
                partial=self.result(),
            ) from error
        finally:
            progress.close()
            self.elapsed_s += time.perf_counter() - started
        result = self.result()
        self._call("on_end", result)
        return result

    def _run_phase(self, progress: Progress, max_steps: int | None, started: float) -> int:
        """Steps of the current phase, up to its end, ``max_steps`` or a stop; returns how many."""
        cfg = self.loop
        # Checking the loss needs a host sync; on an accelerator do it now and then, on CUDA
        # read one check late (_check_finite) so that the steps of a stage never wait.
        check_every = 1 if self.device.type == "cpu" else 25
        lagged = self.device.type == "cuda"
        if self._micro_batch is None and cfg.micro_batch == "auto":
            self._micro_batch = auto_micro_batch(
                self.model, len(self.targets) * cfg.ensemble, self.schedule.sizes[-1], self.device,
                channels=self.schedule.channels, amp=cfg.amp, channels_last=cfg.channels_last,
            )
        done = 0
        with _prepared(self._net, cfg.channels_last), attached(self._net, [self.objective, *self.terms]):
            while not self._phase_done and (max_steps is None or done < max_steps):
                if self.step_in_stage >= cfg.steps_per_stage:
                    self._begin_stage()
                state = self._step()
                done += 1
                progress.step(state)
                stage_end = self.step_in_stage == cfg.steps_per_stage
                if stage_end or self.global_step % check_every == 0:
                    self._check_finite(wait=stage_end or not lagged)
                self._call("on_step_end", state)
                if self.step_in_stage == cfg.steps_per_stage:
                    self._end_stage()
                    # The phases after the first are named: "stage 5/5 (224 px, DeepInversion)".
                    phase = self.phases[self.phase_index].name if self.phase_index > 0 else None
                    progress.stage_end(state, self.elapsed_s + time.perf_counter() - started, phase)
                if state.stop_requested:
                    self.stop_reason = state.stop_requested
                    break
        return done

    def _final_probs(self, view: torch.Tensor) -> torch.Tensor | None:
        """The model's target probability on the clean images, or None if the model fails
        on them (the images themselves must survive any such failure)."""
        try:
            with torch.no_grad(), frozen(self.model):
                return self.model(view).float().softmax(-1).gather(1, self._target_tensor[:, None]).view(-1).cpu()
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not _is_oom(error):
                raise
            return None

    def result(self) -> InversionResult:
        """The result so far (the full result once :attr:`done`)."""
        self._flush_history()
        history = {k: torch.cat(v) for k, v in self._history_done.items()}
        if self.image is None:
            images = torch.empty(0, self.model.in_chans, 0, 0)
            probs = None
        else:
            view = self._view().detach().clamp(0, 1)
            images = view.float().cpu()
            probs = self._final_probs(view) if self._has_targets and self.stop_reason != "oom" else None
        return InversionResult(
            images=images, targets=list(self.targets), class_names=self.model.class_names, config=self.config,
            seed=self.seed, model_name=self.model.name, history=history, snapshots=list(self.snapshots),
            final_probs=probs, alpha=self._transparency_map(), interrupted=not self.done,
            stop_reason=self.stop_reason if not self.done else None,
            steps_done=self.global_step, total_steps=self.total_steps,
            elapsed_s=self.elapsed_s, device=str(self.device), extra=self._extra(),
        )

    def _transparency_map(self) -> torch.Tensor | None:
        """The transparency map of this phase's parameterization, else an earlier phase's."""
        current = self.param.transparency() if self.image is not None else None
        return current if current is not None else self._transparency

    def _extra(self) -> dict[str, Any]:
        """What the result records of its phases: with a DeepInversion phase, whether its
        BatchNorm prior was used, and the network it was borrowed from, if any."""
        if not any(p.name.startswith("DeepInversion") for p in self.phases):
            return {}
        terms = [t for p in self.phases for t in p.terms]
        proxies = [t.proxy.name for t in terms if isinstance(t, ProxyBatchNormPrior)]
        return {"bn_prior_used": any(isinstance(t, BatchNormPrior) for t in terms),
                **({"prior_model": proxies[0]} if proxies else {})}


def invert(
    model: Classifier | nn.Module | str,
    targets: int | str | Sequence[int | str] | None,
    preset: str | InversionConfig = DEFAULT_PRESET,
    **options: Any,
) -> InversionResult:
    """Invert a classifier: synthesize one image per target class by Plug-In Inversion.

    Args:
        model: a :class:`Classifier`, any ``nn.Module`` returning logits, or a name for
            :func:`piikit.load_model` (``"efficientnet_lite0"`` works offline).
        targets: a class index or name, or a list (a 1-d array or tensor) of them; integer-likes
            (``np.int64(5)``, ``torch.tensor(5)``, ``5.0``) count as indices. All are optimized
            together in one batch, each with its own image and its own ColorShift ensemble.
        preset: ``"fast"`` (the default, as for every entry point: the paper's stages and
            augmentations with 64 steps per stage and an ensemble of 4, tens of seconds per
            class for Lite0 on 2 CPU cores), ``"paper"`` (7 stages × 400 steps, ensemble 32:
            the paper's settings, about an hour per class on such a CPU), ``"clear"``
            (as long, smoother images: a Fourier image, grey borders), ``"quick"`` (fewer
            steps, then a DeepInversion polish: images other models read more often, in about
            half the time), ``"glance"`` (a first look in seconds), ``"preview"``
            (seconds), or an :class:`InversionConfig`.
        seed: the same seed on the same device gives the same images; None draws one
            (recorded in the result).
        device: ``"auto"`` (CUDA, then MPS, then CPU) or any torch device.
        objective: what to optimize instead of the class cross-entropy (feature objectives).
        terms: extra weighted loss terms (priors), e.g. total variation.
        callbacks: :class:`Callback` objects, or functions called after every step.
        progress: show progress: a bar in a notebook or on a terminal, one line per
            stage when stderr is a file or a pipe (:mod:`piikit.engine.progress`).
        init: K×C×H×W images in [0, 1] to start from instead of noise (C: the model's
            input channels): a tensor, a numpy array or nested list, or a PNG path (or a list
            of paths); uint8 pixels are divided by 255; other values outside [0, 1] are
            clamped with a warning, NaN/inf refused.
        num_images: how many images a feature objective makes when ``targets`` is None.
        refine_prior_model: with ``refine_steps``, a network with BatchNorm trained on the same
            data (Lite0 for an ImageNet ViT or Mixer) whose BatchNorm statistics prior the
            refine phase uses in place of the model's own
            (:class:`~piikit.engine.proxy_prior.ProxyBatchNormPrior`; SMI, Hu et al. 2024).
        **overrides: any :class:`InversionConfig` field, e.g. ``ensemble=8`` or
            ``refine_steps=50`` (then a DeepInversion refine phase in the same run); a field
            left out keeps the preset's value, as does ``None`` except for ``image_size`` and
            ``micro_batch``, where None is a value (the model's own size; all at once).

    Returns:
        An :class:`InversionResult`; after Ctrl-C, the partial result with ``interrupted=True``.

    Raises:
        InversionFailed: on a non-finite loss or out of memory; ``.partial`` holds the work done.

    >>> result = invert("efficientnet_lite0", ["volcano", 1], preset="fast")  # doctest: +SKIP
    >>> result.images.shape  # doctest: +SKIP
    torch.Size([2, 3, 224, 224])
    """
    if "phases" in options:
        raise TypeError("invert() takes no phases: run them with Inversion(..., phases=...).run()")
    return Inversion(model, targets, preset, **options).run()


# invert's parameters are Inversion's, declared once on Inversion.__init__, less ``phases``:
# help(), IDEs and the API docs read this signature (the arguments are documented above).
_INVERSION_SIGNATURE = inspect.signature(Inversion.__init__)
invert.__signature__ = _INVERSION_SIGNATURE.replace(  # type: ignore[attr-defined]
    parameters=[p for name, p in _INVERSION_SIGNATURE.parameters.items() if name not in ("self", "phases")],
    return_annotation="InversionResult",
)
