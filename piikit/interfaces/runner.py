"""Sweeps: many classes of many models, resumable, scaled out with ``torchrun``.

    piikit sweep --models efficientnet_lite0,efficientnet_lite1 --classes 0-999 --preset fast --out runs/
    torchrun --nproc_per_node=4 -m piikit sweep --models efficientnet_lite0 --classes 0-999 --out runs/

Layout of ``out``: ``settings.json`` (the settings every class was made with),
``manifest.jsonl`` (one line per class finished, appended as it finishes) and one folder per
model holding ``NNNN_name.png`` plus ``NNNN_name.result.json`` per class (the JSON
:meth:`InversionResult.save` writes, so ``piikit score runs/MODEL`` works on it) and
``contact_sheet.png``.

Resuming: every file is written to a temporary name and renamed into place, and a class's
JSON is renamed last, so a class counts as finished exactly when its JSON and PNG are
there. Re-running the same command skips finished classes and redoes the rest. Settings
that change the images (the config except ``micro_batch``, the seed, the batch size) are
compared with ``settings.json``; a change is refused unless ``force=True``, which redoes
the classes made with other settings.

Scale-out: under ``torchrun`` each process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
takes every ``WORLD_SIZE``-th unit of the fixed (model, batch of classes) work list,
uses GPU ``LOCAL_RANK`` when CUDA is there (or its share of the CPU cores otherwise), and
rank 0 draws the contact sheets once all ranks have passed a barrier.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from piikit.engine.config import DEFAULT_PRESET, InversionConfig, make_config
from piikit.device import resolve_device
from piikit.errors import InversionFailed
from piikit.engine.inversion import Inversion
from piikit.labels import resolve_classes
from piikit.models import Classifier, load_model
from piikit.engine.result import InversionResult

__all__ = ["sweep", "SweepSummary", "parse_classes", "shard", "contact_sheet"]

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.jsonl"
SHEET_FILE = "contact_sheet.png"
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


@dataclass(frozen=True)
class SweepSummary:
    """What one process of a sweep did."""

    out: Path
    done: int  # classes this process finished in this call
    skipped: int  # classes of its shard that were already finished
    failed: tuple[str, ...]  # "model/class: reason" for runs that failed (non-finite loss, out of memory)
    interrupted: bool  # Ctrl-C / SIGTERM ended it early; finished classes are saved


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


def shard(work: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Rank ``rank``'s part of a work list: every ``world_size``-th item, so the parts are
    disjoint, cover the list, and a rank's part depends only on the list (never on what
    other ranks have already done)."""
    return list(work[rank::world_size])


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "Dist":
        env = os.environ
        world = int(env.get("WORLD_SIZE", 1))
        return cls(int(env.get("RANK", 0)), world, int(env.get("LOCAL_RANK", 0)),
                   int(env.get("LOCAL_WORLD_SIZE", world)))


def device_for(request: str | torch.device | None, dist: Dist) -> torch.device:
    """The device of this rank: under torchrun, CUDA ranks take GPU ``LOCAL_RANK``. Changes nothing."""
    device = resolve_device(request)
    if device.type == "cuda" and device.index is None and dist.world_size > 1:
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return device


def configure_process(device: torch.device, dist: Dist) -> None:
    """The runner's process-wide settings (the ``piikit sweep`` command makes them, a library
    call of :func:`sweep` does not): the current CUDA device, and each CPU rank's share of the cores."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # what nccl and bare .cuda() calls in user models use
    elif device.type == "cpu" and dist.local_world_size > 1:
        # torchrun sets OMP_NUM_THREADS=1; ranks sharing a CPU split its cores instead.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // dist.local_world_size))


@contextmanager
def runner_process(device: str | torch.device | None = "auto") -> Iterator[None]:
    """Process-wide set-up for a sweep run as a program (the ``piikit sweep`` command, or a
    script torchrun starts): the CUDA device and CPU share of this rank, and SIGTERM (how
    torchrun stops workers) raised as Ctrl-C while the block runs, so finished classes are kept."""
    dist = Dist.from_env()
    configure_process(device_for(device, dist), dist)
    with _sigterm_as_interrupt():
        yield


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _stem(target: int, class_names: Sequence[str]) -> str:
    return f"{target:04d}_{_slug(class_names[target].split(',')[0])}"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name beside ``path``, then rename: readers see all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    # One write() on an O_APPEND descriptor: ranks appending at once never interleave lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def _settings(config: InversionConfig, seed: int, batch: int) -> dict[str, Any]:
    """What decides the images: the config (micro_batch only changes rounding), seed, batch."""
    config_dict = {k: v for k, v in config.to_dict().items() if k != "micro_batch"}
    return json.loads(json.dumps({"config": config_dict, "seed": seed, "batch": batch}))


def _recorded_settings(meta: dict[str, Any]) -> dict[str, Any]:
    config_dict = {k: v for k, v in meta.get("config", {}).items() if k != "micro_batch"}
    return {"config": config_dict, "seed": meta.get("seed"), "batch": meta.get("sweep", {}).get("batch")}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    flat_old = {**old.get("config", {}), "seed": old.get("seed"), "batch": old.get("batch")}
    flat_new = {**new["config"], "seed": new["seed"], "batch": new["batch"]}
    return [f"{k} {flat_old.get(k)!r} -> {flat_new.get(k)!r}" for k in flat_new if flat_old.get(k) != flat_new.get(k)]


def _check_settings(out: Path, settings: dict[str, Any], force: bool, dist: Dist) -> None:
    path = out / SETTINGS_FILE
    if path.is_file():
        changed = _differences(json.loads(path.read_text()).get("settings", {}), settings)
        if changed and not force:
            raise ValueError(
                f"{out} was made with other settings ({'; '.join(changed)}); use another --out, "
                "the same settings, or --force to redo its classes with the new ones"
            )
        if not changed:
            return
    if dist.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps({"settings": settings}, indent=2).encode())


def _finished(folder: Path, stem: str, settings: dict[str, Any]) -> bool:
    meta_path = folder / f"{stem}.result.json"
    if not meta_path.is_file() or not (folder / f"{stem}.png").is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return False
    return not meta.get("interrupted") and not _differences(_recorded_settings(meta), settings)


def _one(result: InversionResult, k: int, extra: dict[str, Any]) -> InversionResult:
    """Target ``k`` of a batched result as a result of its own (batch-wide history kept)."""
    history = dict(result.history)
    if "prob" in history:
        history["prob"] = history["prob"][:, k : k + 1]
    return dataclasses.replace(
        result, images=result.images[k : k + 1], targets=[result.targets[k]], history=history,
        snapshots=[s[k : k + 1] for s in result.snapshots],
        final_probs=None if result.final_probs is None else result.final_probs[k : k + 1],
        extra={**result.extra, **extra},
    )


def _commit(result: InversionResult, folder: Path, tmp: Path, batch: int, dist: Dist, out: Path) -> None:
    """Save each target of ``result`` as NNNN_name.png + .result.json, then log it."""
    for k, target in enumerate(result.targets):
        stem = _stem(target, result.class_names)
        one = _one(result, k, {"sweep": {"batch": batch, "batch_targets": list(result.targets), "rank": dist.rank}})
        shutil.rmtree(tmp, ignore_errors=True)
        (png,) = one.save(tmp)
        meta = json.loads((tmp / "result.json").read_text())
        meta["files"] = [f"{stem}.png"]
        os.replace(png, folder / f"{stem}.png")
        # The JSON goes last: its presence is what marks the class finished.
        _write_atomic(folder / f"{stem}.result.json", json.dumps(meta, indent=2).encode())
        prob = None if one.final_probs is None else round(float(one.final_probs[0]), 6)
        _append_line(out / MANIFEST_FILE, {
            "model": folder.name, "class": target, "label": one.labels[0], "png": f"{folder.name}/{stem}.png",
            "json": f"{folder.name}/{stem}.result.json", "final_prob": prob, "rank": dist.rank,
            "seconds": round(result.elapsed_s / len(result.targets), 3),
        })


def contact_sheet(folder: str | Path, size: int = 112) -> Path | None:
    """Draw every finished class in a sweep's model folder into ``contact_sheet.png``,
    titled "idx: name" and the model's target probability; None if there is none."""
    from piikit.images import figure_png, read_png
    from piikit.interfaces.viz import image_grid

    folder = Path(folder)
    metas = sorted(folder.glob("*.result.json"))
    if not metas:
        return None
    images, titles = [], []
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        image = read_png(folder / meta["files"][0])
        if image.shape[-1] > size:  # a thousand full-size images would not fit in one figure
            image = torch.nn.functional.interpolate(image[None], size=(size, size), mode="area")[0]
        images.append(image)
        prob = (meta.get("final_probs") or [None])[0]
        titles.append(meta["targets"][0]["label"] + ("" if prob is None else f"\np={prob:.2f}"))
    fig = image_grid(images, titles, ncols=max(min(len(images), 6), math.ceil(math.sqrt(len(images)))), size=1.8)
    path = folder / SHEET_FILE
    _write_atomic(path, figure_png(fig, dpi=80))
    return path


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """torchrun stops its workers with SIGTERM: treat it as Ctrl-C, so finished classes
    are kept and the running one is dropped cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _model_name(model: str | nn.Module) -> str:
    return model if isinstance(model, str) else getattr(model, "name", type(model).__name__)


def sweep(
    models: str | nn.Module | Sequence[str | nn.Module],
    classes: int | str | Sequence[int | str],
    preset: str | InversionConfig = DEFAULT_PRESET,
    out: str | Path = "runs",
    *,
    batch: int = 1,
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
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    config = make_config(preset, **overrides)
    model_list: list[str | nn.Module] = (
        [m.strip() for m in models.split(",") if m.strip()] if isinstance(models, str)
        else [models] if isinstance(models, nn.Module) else list(models)
    )
    if not model_list:
        raise ValueError("no models given")
    wanted = parse_classes(classes)
    folders = [_slug(_model_name(m)) or "model" for m in model_list]
    if len(set(folders)) != len(folders):
        raise ValueError(f"two models share an output folder name: {', '.join(folders)}")
    out = Path(out)
    dist = Dist.from_env()
    settings = _settings(config, seed, batch)

    def load(model: str | nn.Module) -> Classifier:
        return load_model(model, pretrained=pretrained) if isinstance(model, str) else load_model(model)

    # Resolve every model's classes (and so every name) before any work; the last model
    # loaded stays loaded (a one-model sweep loads it once).
    work: list[tuple[int, tuple[int, ...]]] = []
    for m, model in enumerate(model_list):
        loaded = (m, load(model))
        targets = list(dict.fromkeys(resolve_classes(wanted, loaded[1].class_names)))
        work += [(m, tuple(targets[i : i + batch])) for i in range(0, len(targets), batch)]
    _check_settings(out, settings, force, dist)
    run_device = device_for(device, dist)
    if dist.world_size > 1:
        import torch.distributed as torch_dist

        torch_dist.init_process_group("nccl" if run_device.type == "cuda" else "gloo",
                                      timeout=datetime.timedelta(days=7))  # ranks may finish days apart
    tmp = out / ".tmp" / f"rank{dist.rank}"
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed run of this rank left
    mine = shard(work, dist.rank, dist.world_size)
    done = skipped = 0
    failed: list[str] = []
    interrupted = False
    say = (lambda text: print(f"[rank {dist.rank}] {text}", flush=True)) if dist.world_size > 1 else (
        lambda text: print(text, flush=True))
    try:  # Ctrl-C (or SIGTERM under runner_process) stops the loop; finished classes are kept
        for m, targets in mine:
            folder = out / folders[m]
            folder.mkdir(parents=True, exist_ok=True)
            if loaded[0] != m:
                loaded = (m, load(model_list[m]))
            model = loaded[1].to(run_device)
            todo = [t for t in targets if not _finished(folder, _stem(t, model.class_names), settings)]
            skipped += len(targets) - len(todo)
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
            _commit(result, folder, tmp, batch, dist, out)
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
    _finish(out, folders, sheets and not interrupted, dist, wait=not interrupted)
    return SweepSummary(out=out, done=done, skipped=skipped, failed=tuple(failed), interrupted=interrupted)


def _finish(out: Path, folders: Sequence[str], sheets: bool, dist: Dist, wait: bool) -> None:
    """Wait for every rank, then rank 0 draws the contact sheets and clears temporaries
    (an interrupted rank does not wait: the others are being interrupted too)."""
    if dist.world_size > 1:
        import torch.distributed as torch_dist

        if wait:
            torch_dist.barrier()
        torch_dist.destroy_process_group()
    shutil.rmtree(out / ".tmp" / f"rank{dist.rank}", ignore_errors=True)
    if dist.rank != 0 or not wait:
        return
    _complete_manifest(out, folders)
    if sheets:
        for name in folders:
            contact_sheet(out / name)
    shutil.rmtree(out / ".tmp", ignore_errors=True)


def _complete_manifest(out: Path, folders: Sequence[str]) -> None:
    """Log classes whose files were committed by a process killed before it could log them."""
    path = out / MANIFEST_FILE
    lines = path.read_text().splitlines() if path.is_file() else []
    logged = set()
    for line in lines:
        try:
            logged.add(json.loads(line)["json"])
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut short by a kill
    for name in folders:
        for meta_path in sorted((out / name).glob("*.result.json")):
            key = f"{name}/{meta_path.name}"
            if key not in logged:
                meta = json.loads(meta_path.read_text())
                _append_line(path, {"model": name, "class": meta["targets"][0]["index"],
                                    "label": meta["targets"][0]["label"], "png": f"{name}/{meta['files'][0]}",
                                    "json": key, "recovered": True})
