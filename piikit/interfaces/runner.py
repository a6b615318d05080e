"""Sweeps: many classes of many models, resumable, scaled out with ``torchrun``.

    piikit sweep --models efficientnet_lite0,efficientnet_lite1 --classes 0-999 --preset fast --out runs/
    torchrun --nproc_per_node=4 -m piikit sweep --models efficientnet_lite0 --classes 0-999 --out runs/

Layout of ``out``: ``settings.json`` (the settings every class was made with),
``manifest.jsonl`` (one line per class finished, appended as it finishes) and one folder per
model holding ``NNNN_name.png`` plus ``NNNN_name.result.json`` per class (the JSON
:meth:`InversionResult.save` writes, so ``piikit score runs/MODEL`` works on it) and
``contact_sheet.png``.

Resuming: every file is written to a temporary name unique to its process and renamed into
place, and a class's JSON is renamed last, so a class counts as finished exactly when its
JSON and PNG are there. Re-running the same command skips finished classes and redoes the
rest. Settings that change the images (the config except ``micro_batch``, the seed, the
batch size) are compared with ``settings.json`` (written once the device check has
passed); a change is refused unless ``force=True``, which redoes the classes made with other
settings.

Sharing a folder: any number of sweeps may run on one ``out`` at once (two terminals, two
nodes on a shared disk). Each class is claimed under an OS file lock (``.claims/``) before
it is computed and re-checked once claimed, so no class is computed twice; the settings
check and the manifest appends hold the folder's lock (``.lock``); the lock of a process
that dies is dropped by the kernel, so its classes are taken up by the next run. The last
sweep to leave the folder clears claims and temporaries and draws the contact sheets.

Scale-out: under ``torchrun`` each process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
checks that the job's other processes are there (bounded: ``PIIKIT_RENDEZVOUS_TIMEOUT``
seconds, 300 by default, so a stale ``WORLD_SIZE``/``RANK`` in the environment fails with a
message instead of waiting), takes every ``WORLD_SIZE``-th unit of the fixed (model, batch
of classes) work list, and uses GPU ``LOCAL_RANK`` when CUDA is there (or its share of the
CPU cores otherwise).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from piikit.engine.config import DEFAULT_PRESET, InversionConfig, for_device, make_config
from piikit.engine.memory import target_batch
from piikit.errors import InversionFailed
from piikit.engine.inversion import Inversion
from piikit.engine.result import InversionResult
from piikit.engine.result_files import class_stem, slug
from piikit.labels import resolve_classes
from piikit.models import Classifier, load_model
from piikit.interfaces.sweep_store import (
    MANIFEST_FILE, RUNNING_FILE, BackgroundWriter, FileLock, check_settings, claim, clear_leftovers, commit,
    complete_manifest, contact_sheet, folder_lock, is_finished, recorded_batch, settings_of,
)
from piikit.interfaces.torchrun import Dist, device_for, rendezvous, shard
from piikit.validation import check_int

__all__ = ["sweep", "SweepSummary", "parse_classes"]

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


@dataclass(frozen=True)
class SweepSummary:
    """What one process of a sweep did."""

    out: Path
    done: int  # classes this process finished in this call
    skipped: int  # classes of its shard that were already finished
    failed: tuple[str, ...]  # "model/class: reason" for runs that failed (non-finite loss, out of memory)
    interrupted: bool  # Ctrl-C / SIGTERM ended it early; finished classes are saved
    taken: int = 0  # classes another sweep in the same folder was computing (it saves them)


def parse_classes(spec: int | str | Sequence[int | str]) -> list[int | str]:
    """Class indices and names from a spec: ``"0-9,volcano"``, ``[3, "goldfinch", "10-12"]``.

    A string is split on commas; ``"a-b"`` is the inclusive range. Names are resolved
    later, per model (so a model with its own class names works too).
    """
    items = spec.split(",") if isinstance(spec, str) else [spec] if isinstance(spec, int) else list(spec)
    out: list[int | str] = []
    for item in items:
        match = _RANGE.match(item) if isinstance(item, str) else None
        if match:
            first, last = int(match[1]), int(match[2])
            if last < first:
                raise ValueError(f"empty class range {item.strip()!r}")
            out += range(first, last + 1)
        elif isinstance(item, str):
            if item.strip():
                out.append(int(item) if item.strip().isdigit() else item.strip())
        else:
            out.append(item)
    if not out:
        raise ValueError("no classes given")
    return out


def _model_name(model: str | nn.Module) -> str:
    return model if isinstance(model, str) else getattr(model, "name", type(model).__name__)


def sweep(
    models: str | nn.Module | Sequence[str | nn.Module],
    classes: int | str | Sequence[int | str],
    preset: str | InversionConfig = DEFAULT_PRESET,
    out: str | Path = "runs",
    *,
    batch: int | Literal["auto"] = 1,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    force: bool = False,
    pretrained: bool = True,
    progress: bool = True,
    sheets: bool = True,
    **overrides: Any,
) -> SweepSummary:
    """Invert every class of ``classes`` for every model, one PNG + JSON per class.

    Run it again with the same arguments to finish an interrupted sweep; run it under
    ``torchrun --nproc_per_node=N -m piikit sweep ...`` (or call it from a script that
    torchrun starts) to share the work among N processes.

    Args:
        models: model names for :func:`piikit.load_model` (comma-separated in one string
            works), or loaded models; each gets the folder ``out/<name>``.
        classes: indices, names and ``"a-b"`` ranges (see :func:`parse_classes`).
        preset: a preset name or an :class:`InversionConfig`; ``overrides`` change fields.
        out: the output folder.
        batch: classes optimized together per :func:`invert` call (their results then
            depend on which classes share the batch, so it is part of the settings).
            ``"auto"``: on CUDA enough classes to fill the device
            (:func:`~piikit.engine.memory.target_batch`: 32 at the paper's ensemble of 32),
            elsewhere 1; a folder that has settings resumes with its own batch.
        seed: the seed of every call; with ``batch=1`` a class's image does not depend on
            how the work is sharded.
        device: ``"auto"`` or a device; under torchrun, CUDA ranks take GPU ``LOCAL_RANK``.
        force: redo classes made with other settings instead of refusing.
        pretrained: for model names (``False``: random weights, for trying things out).
        progress: print a line per finished class (and a progress bar with one process).
        sheets: draw each model's ``contact_sheet.png`` at the end.

    Returns:
        A :class:`SweepSummary` of this process's part.

    Raises:
        ValueError: for settings that differ from ``out``'s, unless ``force``; bad class
            or model names fail before any work.

    >>> piikit.sweep("efficientnet_lite0", "0-9", "fast", "runs/")  # doctest: +SKIP
    """
    if batch != "auto":
        batch = check_int("batch", batch, low=1)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    config = make_config(preset, **overrides)
    model_list: list[str | nn.Module] = (
        [m.strip() for m in models.split(",") if m.strip()] if isinstance(models, str)
        else [models] if isinstance(models, nn.Module) else list(models)
    )
    if not model_list:
        raise ValueError("no models given")
    wanted = parse_classes(classes)
    folders = [slug(_model_name(m)) or "model" for m in model_list]
    if len(set(folders)) != len(folders):
        raise ValueError(f"two models share an output folder name: {', '.join(folders)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} is an existing file; give a directory (it is created if missing)")
    dist = Dist.from_env()
    run_device = device_for(device, dist)  # a device this machine lacks fails before anything is written
    config = for_device(config, run_device.type,
                        micro_batch_given=not isinstance(preset, str) or "micro_batch" in overrides)
    if batch == "auto":
        batch = recorded_batch(out) or (
            target_batch(config.ensemble, len(wanted)) if run_device.type == "cuda" else 1)
    settings = settings_of(config, seed, batch)
    if dist.world_size > 1:
        rendezvous(dist)  # a stale WORLD_SIZE/RANK fails here, in bounded time

    def load(model: str | nn.Module) -> Classifier:
        return load_model(model, pretrained=pretrained) if isinstance(model, str) else load_model(model)

    # Resolve every model's classes (and so every name) before any work; the last model
    # loaded stays loaded (a one-model sweep loads it once).
    work: list[tuple[int, tuple[int, ...]]] = []
    for m, model in enumerate(model_list):
        loaded = (m, load(model))
        targets = list(dict.fromkeys(resolve_classes(wanted, loaded[1].class_names)))
        work += [(m, tuple(targets[i : i + batch])) for i in range(0, len(targets), batch)]
    try:
        out.mkdir(parents=True, exist_ok=True)
        running = FileLock(out / RUNNING_FILE)
        running.acquire(shared=True)  # every sweep in this folder holds it; the last one out tidies up
    except OSError as error:
        raise ValueError(f"out {str(out)!r} cannot be written to ({error.strerror or error}); "
                         "give a writable directory") from error
    try:
        with folder_lock(out):  # atomic: two sweeps starting together see each other's settings
            check_settings(out, settings, force)
        mine = shard(work, dist.rank, dist.world_size)
        done = skipped = taken = 0
        failed: list[str] = []
        interrupted = False
        say = (lambda text: print(f"[rank {dist.rank}] {text}", flush=True)) if dist.world_size > 1 else (
            lambda text: print(text, flush=True))
        # Files are written by a thread of their own while the device runs the next classes; a
        # class's claims are held until its files are there. Leaving the block waits for them.
        with BackgroundWriter() as writer:
            try:  # Ctrl-C (or SIGTERM under runner_process) stops the loop; finished classes are kept
                for m, targets in mine:
                    folder = out / folders[m]
                    folder.mkdir(parents=True, exist_ok=True)
                    if loaded[0] != m:
                        loaded = (m, load(model_list[m]))
                    model = loaded[1].to(run_device)
                    claims: list[FileLock] = []
                    try:
                        todo = []
                        for t in targets:
                            stem = class_stem(t, model.class_names)
                            if is_finished(folder, stem, settings):
                                skipped += 1
                                continue
                            held = claim(out, folders[m], stem)
                            if held is None:  # another sweep in this folder is computing it
                                taken += 1
                                continue
                            claims.append(held)
                            if is_finished(folder, stem, settings):  # finished while we looked
                                skipped += 1
                            else:
                                todo.append(t)
                        if not todo:
                            continue
                        try:
                            result = Inversion(model, todo, config, seed=seed, device=run_device,
                                               progress=progress and dist.world_size == 1).run()
                        except InversionFailed as failure:
                            failed.append(f"{folders[m]}/{todo}: {failure}")
                            say(f"failed {folders[m]} {todo}: {failure}")
                            continue
                        if result.stop_reason == "interrupted":
                            interrupted = True
                            break
                        writer.submit(_committing(result, folder, batch, dist.rank, out, claims))
                        claims = []  # the writer releases them once the files are there
                    finally:
                        for held in claims:
                            held.release()
                    done += len(todo)
                    if progress:
                        probs = [] if result.final_probs is None else result.final_probs.tolist()
                        for lab, p in zip(result.labels, probs):
                            say(f"{folders[m]}: {lab}  p={p:.3f}")
            except KeyboardInterrupt:
                interrupted = True
        if interrupted:
            print(f"piikit: sweep interrupted; finished classes are saved in {out} (run it again to go on)",
                  file=sys.stderr)
        elif taken and progress:
            say(f"{taken} class(es) were being computed by another sweep in {out}; it saves them")
        _finish(out, folders, sheets and not interrupted, running, tidy=not interrupted)
    finally:
        running.release()
    return SweepSummary(out=out, done=done, skipped=skipped, failed=tuple(failed), interrupted=interrupted,
                        taken=taken)


def _committing(result: InversionResult, folder: Path, batch: int, rank: int, out: Path,
                claims: list[FileLock]) -> Callable[[], None]:
    """The writer's job for one finished call: its files and manifest lines, then its claims released."""
    def job() -> None:
        try:
            commit(result, folder, batch, rank, out)
        finally:
            for held in claims:
                held.release()
    return job


def _finish(out: Path, folders: Sequence[str], sheets: bool, running: FileLock, tidy: bool) -> None:
    """Log what killed processes committed, then, if no other sweep still works in ``out``
    (this one is the last out), clear leftover claims and temporaries and draw the contact
    sheets (an interrupted sweep only leaves)."""
    if not tidy:
        return
    bad = complete_manifest(out, folders)
    if bad:
        print(f"piikit: skipped {len(bad)} damaged line(s) of {out / MANIFEST_FILE} (line "
              f"{', '.join(map(str, bad[:5]))}{', ...' if len(bad) > 5 else ''}: cut short by a crash)",
              file=sys.stderr)
    running.release()
    last = FileLock(out / RUNNING_FILE)
    if not last.acquire(blocking=False):
        return  # another sweep still works here; the last one out tidies up
    try:
        clear_leftovers(out, folders)
        if sheets:
            for name in folders:
                contact_sheet(out / name)
    finally:
        last.release()
