"""Exceptions raised by piikit.

Every error a user can cause by bad input derives from :class:`PiikitError`, so a
command line or a notebook can catch one type and show its one-line message. The
subclasses also derive from the builtin a Python user would expect (``ValueError``,
``LookupError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = [
    "PiikitError",
    "UnknownModelError",
    "UnknownClassError",
    "UnknownLayerError",
    "ModelLoadError",
    "HubUnavailableError",
    "UnsupportedModelError",
    "DeviceUnavailableError",
    "InversionFailed",
    "InvalidValueError",
    "WriteFailed",
    "first_line",
    "user_stacklevel",
    "warn_renamed",
    "renamed_attribute",
]


class PiikitError(Exception):
    """Base class of the errors piikit raises for bad input or a failed run.

    ``str(error)`` speaks to a Python user (``load_model(..., pretrained=False)``);
    ``cli_message``, where an error sets one, says the same in the ``piikit`` command's
    terms (``--no-pretrained``), and the command prints that instead.
    """

    def __init__(self, message: str = "", *, cli_message: str | None = None) -> None:
        super().__init__(message)
        self.cli_message = cli_message


class UnknownModelError(PiikitError, LookupError):
    """A model name that neither piikit, timm nor torchvision knows."""


class UnknownClassError(PiikitError, LookupError):
    """A class name that matches no label, or an index out of range."""


class UnknownLayerError(PiikitError, LookupError):
    """A layer name that is not a module of the model."""


class ModelLoadError(PiikitError, RuntimeError):
    """A model or checkpoint that exists but cannot be loaded as asked."""


class HubUnavailableError(ModelLoadError):
    """``pretrained=True`` was asked for but the weights' hub cannot be reached."""


class UnsupportedModelError(PiikitError, TypeError):
    """A model whose output or structure piikit cannot work with."""


class DeviceUnavailableError(PiikitError, ValueError):
    """A device that is not a device type, or that this machine does not have."""


class InversionFailed(PiikitError, RuntimeError):
    """A run stopped by a non-finite loss or by running out of memory.

    ``partial`` holds what was done before the failure (the last finite images,
    history and snapshots) so no work is lost.
    """

    def __init__(self, message: str, partial: Any = None) -> None:  # partial: an InversionResult or None
        super().__init__(message)
        self.partial: Any = partial


class InvalidValueError(PiikitError, ValueError, TypeError):
    """A setting, count or target of the wrong type or out of range (both a ``ValueError``
    and a ``TypeError``, so either ``except`` catches it); the message names the value and
    what is accepted."""


class WriteFailed(PiikitError, OSError):
    """Saving a result failed (disk full, no permission); the message names the path and
    where the unsaved images were kept instead, if anywhere."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none), for one-line reports."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued here point at the first caller outside
    piikit (the user's line, whatever the depth of piikit's own calls in between)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "piikit":
        frame, level = frame.f_back, level + 1
    return level


def warn_renamed(old: str, new: str, *, spelling: str = "name") -> None:
    """A DeprecationWarning, at the user's line, that ``old`` is now ``new`` (old names and
    argument orders stay one release)."""
    verb = "called" if spelling == "name" else "written"
    warnings.warn(f"{old} is now {verb} {new}; the old {spelling} goes in the next release", DeprecationWarning,
                  stacklevel=user_stacklevel())


def renamed_attribute(module: str, renamed: Mapping[str, str], name: str, namespace: Mapping[str, Any]) -> Any:
    """A module's ``__getattr__`` for its renamed public names: the new object, with :func:`warn_renamed`."""
    if name not in renamed:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warn_renamed(name, renamed[name])
    return namespace[renamed[name]]
