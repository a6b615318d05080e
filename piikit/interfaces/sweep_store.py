"""A sweep's folder on disk: settings, file locks and claims, one result per class, the
manifest, and each model's contact sheet. Layout and resuming rules: :mod:`piikit.interfaces.runner`;
the result files themselves (names, atomic writes, reading): :mod:`piikit.engine.result_files`."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from piikit.engine.config import InversionConfig
from piikit.engine.result import InversionResult
from piikit.engine.result_files import image_name, read_result, result_name, write_atomic, write_files

__all__ = [
    "SETTINGS_FILE", "MANIFEST_FILE", "SHEET_FILE", "LOCK_FILE", "RUNNING_FILE", "CLAIMS_DIR", "FileLock", "folder_lock", "claim", "append_line", "read_manifest", "settings_of",
    "recorded_settings", "recorded_batch", "differences", "check_settings", "BackgroundWriter", "is_finished", "one_target", "commit", "contact_sheet",
    "complete_manifest", "clear_leftovers",
]

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.jsonl"
SHEET_FILE = "contact_sheet.png"
LOCK_FILE = ".lock"  # held (exclusive) around the settings check and manifest appends
RUNNING_FILE = ".running"  # held (shared) by every sweep working in the folder
CLAIMS_DIR = ".claims"  # one lock file per class, held by the process computing it


# fcntl, not the filelock package: it is the standard library (no new dependency), and its
# POSIX record locks (lockf) are the locks NFS serves through lockd, so sweeps on two nodes
# sharing a disk exclude each other too. The kernel drops them when their process dies (even
# by SIGKILL), so a killed sweep never leaves a class claimed. (filelock's gain would be
# Windows; there, without fcntl, the locks below are no-ops: one sweep per folder.)
class FileLock:
    """An OS lock on ``path`` (created if missing), exclusive or shared, blocking or not.

    Locks belong to the process: a second lock of the same file in one process does not
    exclude the first (processes share a sweep folder, threads do not)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, shared: bool = False, blocking: bool = True) -> bool:
        """Take the lock; False if ``blocking=False`` and another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
            try:
                fcntl.lockf(fd, flags)
            except OSError as error:
                os.close(fd)
                if error.errno in (errno.EACCES, errno.EAGAIN):
                    return False
                raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops its lock
            self._fd = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def folder_lock(out: Path) -> FileLock:
    """The lock of a sweep folder's shared state: the settings check and the manifest."""
    return FileLock(out / LOCK_FILE)


def claim(out: Path, folder: str, stem: str) -> FileLock | None:
    """Claim one class for this process (None if another process holds it): the claim lasts
    until released or this process ends, however it ends."""
    claims = out / CLAIMS_DIR / folder
    claims.mkdir(parents=True, exist_ok=True)
    lock = FileLock(claims / f"{stem}.lock")
    return lock if lock.acquire(blocking=False) else None


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one newline-terminated JSON record (hold :func:`folder_lock` when processes
    share the file). A torn last line (a crash mid-append) is ended first, so the new
    record stays a line of its own instead of being glued onto the fragment."""
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)  # one write() on O_APPEND: never interleaved with another process's
    finally:
        os.close(fd)


def read_manifest(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The manifest's records and the numbers (1-based) of lines that are not one (torn by a crash)."""
    records, bad = [], []
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n") if path.is_file() else []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and "json" in record:
            records.append(record)
        else:
            bad.append(number)
    return records, bad


# Config fields a sweep's folder does not compare: they change only rounding (and a folder
# made before compile_model existed resumes with it).
ROUNDING_ONLY = ("micro_batch", "compile_model")


def settings_of(config: InversionConfig, seed: int, batch: int) -> dict[str, Any]:
    """What decides the images: the config (micro_batch and compile_model only change rounding), seed, batch."""
    config_dict = {k: v for k, v in config.to_dict().items() if k not in ROUNDING_ONLY}
    return json.loads(json.dumps({"config": config_dict, "seed": seed, "batch": batch}))


def recorded_settings(meta: dict[str, Any]) -> dict[str, Any]:
    config_dict = {k: v for k, v in meta.get("config", {}).items() if k not in ROUNDING_ONLY}
    return {"config": config_dict, "seed": meta.get("seed"), "batch": meta.get("sweep", {}).get("batch")}


def recorded_batch(out: Path) -> int | None:
    """The batch ``out``'s classes were made with (from its settings file), if it has one:
    ``sweep(batch="auto")`` resumes a folder with it rather than with what fits this device."""
    try:
        batch = json.loads((out / SETTINGS_FILE).read_text()).get("settings", {}).get("batch")
    except (OSError, ValueError, AttributeError):
        return None
    return batch if isinstance(batch, int) and batch >= 1 else None


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    # A folder made before a field was renamed records its old name: the same setting.
    renamed = InversionConfig.RENAMED
    flat_old = {**{renamed.get(k, k): v for k, v in old.get("config", {}).items()},
                "seed": old.get("seed"), "batch": old.get("batch")}
    flat_new = {**new["config"], "seed": new["seed"], "batch": new["batch"]}
    return [f"{k} {flat_old.get(k)!r} -> {flat_new.get(k)!r}" for k in flat_new if flat_old.get(k) != flat_new.get(k)]


def check_settings(out: Path, settings: dict[str, Any], force: bool) -> None:
    """Refuse other settings than ``out``'s (unless ``force``), else record them. Hold
    :func:`folder_lock`: two sweeps starting at once then cannot both find no settings."""
    path = out / SETTINGS_FILE
    if path.is_file():
        try:
            recorded = json.loads(path.read_text()).get("settings", {})
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
            raise ValueError(f"{path} is not a settings file piikit wrote ({error}); "
                             "use another --out or remove it") from error
        changed = differences(recorded, settings)
        if changed and not force:
            raise ValueError(
                f"{out} was made with other settings ({'; '.join(changed)}); use another --out, "
                "the same settings, or --force to redo its classes with the new ones"
            )
        if not changed:
            return
    write_atomic(path, json.dumps({"settings": settings}, indent=2).encode())


def is_finished(folder: Path, stem: str, settings: dict[str, Any]) -> bool:
    meta_path = folder / result_name(f"{stem}.")
    if not meta_path.is_file() or not (folder / f"{stem}.png").is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return False
    return not meta.get("interrupted") and not differences(recorded_settings(meta), settings)


def one_target(result: InversionResult, k: int, extra: dict[str, Any]) -> InversionResult:
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


def commit(result: InversionResult, folder: Path, batch: int, rank: int, out: Path) -> None:
    """Save each target of ``result`` as ``NNNN_name.png`` + ``NNNN_name.result.json``, both
    or neither, then log it (the caller holds each class's :func:`claim`)."""
    from piikit.images import image_png

    for k, target in enumerate(result.targets):
        png = image_name(target, result.class_names)
        stem = png.removesuffix(".png")
        one = one_target(result, k, {"sweep": {"batch": batch, "batch_targets": list(result.targets), "rank": rank}})
        meta = one.metadata()
        meta["files"] = [png]
        # The JSON goes last: its presence is what marks the class finished.
        write_files({folder / png: image_png(one.images[0]),
                     folder / result_name(f"{stem}."): json.dumps(meta, indent=2).encode()})
        prob = None if one.final_probs is None else round(float(one.final_probs[0]), 6)
        with folder_lock(out):
            append_line(out / MANIFEST_FILE, {
                "model": folder.name, "class": target, "label": one.labels[0], "png": f"{folder.name}/{png}",
                "json": f"{folder.name}/{result_name(f'{stem}.')}", "final_prob": prob, "rank": rank,
                "pid": os.getpid(), "seconds": round(result.elapsed_s / len(result.targets), 3),
            })


class BackgroundWriter:
    """Runs jobs (a finished class's files and manifest line) one at a time, in the order
    given, on a thread of its own, so the device goes on with the next classes meanwhile.

    At most ``backlog`` jobs wait (then :meth:`submit` waits: results in memory stay bounded).
    Every job runs, even after another failed (each releases its own claims); the first
    error is raised by the next :meth:`submit` and by :meth:`close`. :meth:`close` (or leaving
    the ``with`` block, also by Ctrl-C or SIGTERM turned into one) waits for every job
    submitted, so a class computed is a class saved; an error of the block itself is not
    replaced by a writer's.
    """

    def __init__(self, backlog: int = 4) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=backlog)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="piikit-sweep-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except BaseException as error:  # surfaced in the caller's thread
                self._error = self._error or error

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; raise an earlier job's error first."""
        self._raise()
        self._jobs.put(job)

    def close(self) -> None:
        """Wait for every job submitted, then raise the first error (if any)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: Any) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # the block's own error is the one to see
            pass


def contact_sheet(folder: str | Path, size: int = 112) -> Path | None:
    """Draw every finished class in a sweep's model folder into ``contact_sheet.png``,
    titled "idx: name" and the model's target probability; None if there is none."""
    from piikit.images import figure_png, read_png
    from piikit.figures import image_grid

    folder = Path(folder)
    metas = sorted(folder.glob(f"*.{result_name()}"))
    if not metas:
        return None
    images, titles = [], []
    for meta_path in metas:
        meta, paths, _ = read_result(meta_path)
        image = read_png(paths[0])
        if image.shape[-1] > size:  # a thousand full-size images would not fit in one figure
            image = torch.nn.functional.interpolate(image[None], size=(size, size), mode="area")[0]
        images.append(image)
        prob = (meta.get("final_probs") or [None])[0]
        titles.append(meta["targets"][0]["label"] + ("" if prob is None else f"\np={prob:.2f}"))
    fig = image_grid(images, titles, ncols=max(min(len(images), 6), math.ceil(math.sqrt(len(images)))), size=1.8)
    path = folder / SHEET_FILE
    write_atomic(path, figure_png(fig, dpi=80))
    return path


def complete_manifest(out: Path, folders: Sequence[str]) -> list[int]:
    """Log classes whose files were committed by a process killed before it could log them
    (not those another live process is committing: it logs them itself). Returns the
    numbers of manifest lines that are not records (torn by a crash), which are skipped."""
    path = out / MANIFEST_FILE
    with folder_lock(out):
        records, bad = read_manifest(path)
        logged = {r["json"] for r in records}
        for name in folders:
            for meta_path in sorted((out / name).glob(f"*.{result_name()}")):
                key = f"{name}/{meta_path.name}"
                if key in logged:
                    continue
                held = claim(out, name, meta_path.name.removesuffix(f".{result_name()}"))
                if held is None:
                    continue  # its process is still committing it
                try:
                    meta = json.loads(meta_path.read_text())
                    append_line(path, {"model": name, "class": meta["targets"][0]["index"],
                                       "label": meta["targets"][0]["label"], "png": f"{name}/{meta['files'][0]}",
                                       "json": key, "recovered": True})
                finally:
                    held.release()
    return bad


def clear_leftovers(out: Path, folders: Sequence[str]) -> None:
    """Remove claims and temporaries (what killed processes leave); call it only while no
    other sweep works in ``out`` (holding :data:`RUNNING_FILE` exclusively)."""
    import shutil

    shutil.rmtree(out / CLAIMS_DIR, ignore_errors=True)
    shutil.rmtree(out / ".tmp", ignore_errors=True)  # the temp folders of earlier versions
    for directory in [out, *(out / name for name in folders)]:
        for tmp in directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
