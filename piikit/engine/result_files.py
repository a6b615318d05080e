"""A result on disk, in one place: ``result.json`` plus one PNG per image, their names, writing
them atomically, and reading them back.

Used by :meth:`InversionResult.save` / :meth:`InversionResult.load`, a sweep's folder
(:mod:`piikit.interfaces.sweep_store`) and ``piikit score``.

Names: an image is ``{prefix}{index:02d}_{stem}.png`` (a saved result's images) or
``{prefix}{stem}.png`` (a sweep's one image per class), where the stem is
:func:`class_stem`, ``NNNN_name`` (``"image"`` for a feature objective's image, which has no
class); the metadata is ``{prefix}result.json`` and lists its images under ``"files"``.

Writing: every file goes to a temporary name beside its place first and is renamed into place
once all are written, the JSON last, so a reader sees a complete result or none, and a
failed write (disk full) leaves neither temporaries nor images without their JSON.

Reading: a ``result.json`` is checked before any image is read: an object with ``files``
(names of images in the same folder: a name that leads outside it, by ``..``, an absolute
path or a symbolic link, is refused) and ``targets`` (each with an integer ``index``), one
line saying what is wrong otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RESULT_FILE", "slug", "class_stem", "image_name", "result_name", "new_file_mode", "write_files",
           "write_atomic", "read_result", "read_images"]

RESULT_FILE = "result.json"


def slug(text: str) -> str:
    """``text`` as a file-name part: lower case, each run of other characters than letters
    and digits one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def class_stem(target: int, class_names: Sequence[str]) -> str:
    """``NNNN_name`` for class ``target`` (its first name), ``"image"`` for no class (-1)."""
    if target < 0:
        return "image"
    return f"{target:04d}_{slug(class_names[target].split(',')[0])}"


def image_name(target: int, class_names: Sequence[str], index: int | None = None, prefix: str = "") -> str:
    """The PNG of class ``target``: ``{prefix}{index:02d}_{stem}.png``, or without an index
    ``{prefix}{stem}.png``."""
    stem = class_stem(target, class_names)
    return f"{prefix}{stem}.png" if index is None else f"{prefix}{index:02d}_{stem}.png"


def result_name(prefix: str = "") -> str:
    return f"{prefix}{RESULT_FILE}"


def new_file_mode() -> int:
    """The mode a new file gets (0o666 less the umask); temporaries from ``mkstemp`` are
    0o600 and keep it through the rename unless given this."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class WriteError(OSError):
    """A write failed; ``path`` is the file it failed at (the original error is the cause)."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(error.errno, error.strerror, str(path))
        self.path = path


def write_files(files: Mapping[Path, bytes]) -> None:
    """Write all of ``files`` or none: each to a temporary beside it (unique to this process),
    then renamed into place in the mapping's order (put the JSON last: its presence marks the
    result complete). On an error nothing written stays, and :class:`WriteError` names the
    file it failed at."""
    written: list[tuple[str, Path]] = []
    renamed: list[Path] = []
    failed_at: Path = next(iter(files), Path("."))
    try:
        for path, data in files.items():
            failed_at = path
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            written.append((tmp, path))
            os.fchmod(fd, new_file_mode())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in written:
            failed_at = path
            os.replace(tmp, path)
            renamed.append(path)
    except BaseException as error:
        for tmp, _ in written:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for path in renamed:  # all or nothing: no images without their result.json
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise WriteError(failed_at, error) from error
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Write one file so that readers see all of it or the old one."""
    write_files({path: data})


def read_result(meta_path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Path], list[int]]:
    """A ``result.json``'s metadata, the paths of its images and its target indices, checked
    (see the module docstring); one line saying what is wrong otherwise. Reads no image."""
    meta_path = Path(meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{meta_path} is not JSON ({error}); it is not a result piikit saved") from error
    what = "an object with 'files' (image names) and 'targets' (each with an 'index')"
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} holds a {type(meta).__name__}, not {what}")
    files, targets = meta.get("files") or [], meta.get("targets") or []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError(f"{meta_path}: 'files' must be a list of image file names, got {files!r:.60}")
    if not isinstance(targets, list) or not all(
        isinstance(t, dict) and isinstance(t.get("index"), int) and not isinstance(t.get("index"), bool)
        for t in targets
    ):
        raise ValueError(f"{meta_path}: 'targets' must be a list of objects with an integer 'index', "
                         f"got {targets!r:.60}")
    if not files or len(files) != len(targets):
        raise ValueError(f"{meta_path} lists {len(files)} image file(s) for {len(targets)} target(s)")
    folder = meta_path.parent
    inside = folder.resolve()
    paths = []
    for name in files:
        path = folder / name
        # Only files beside the JSON: a name with .., an absolute path or a link out of the
        # folder would make `piikit score DIR` read (and name) files elsewhere.
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.resolve().is_relative_to(inside):
            raise ValueError(f"{meta_path} names an image outside its folder ({name!r}); "
                             "a result's images are files beside its result.json")
        paths.append(path)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{meta_path} names images that are not in {str(folder)!r}: {', '.join(missing)}")
    return meta, paths, [t["index"] for t in targets]


def read_images(paths: Sequence[Path]) -> Any:
    """The images of :func:`read_result` as one N×C×H×W tensor in [0, 1] (C = 1 for grayscale
    files, as 1-channel results are saved)."""
    import torch

    from piikit.images import read_png

    return torch.stack([read_png(p, keep_gray=True) for p in paths])
