"""One validation layer: the types and ranges of config fields, seeds, counts and targets.

Every check raises :class:`~piikit.errors.InvalidValueError` (a ``ValueError`` and a
``TypeError``) with one line naming the setting, the value given and what is accepted, so
the API, ``--set KEY=VALUE`` and the command's flags all report a bad value the same way.
Integer-likes (``np.int64(5)``, a 0-d integer tensor, ``5.0``) are accepted where a class
index is, booleans never count as numbers, and non-finite numbers are refused everywhere.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin

from piikit.errors import InvalidValueError

__all__ = ["check_int", "check_float", "check_bool", "check_field", "check_fields", "field_types", "admits_none",
           "choices_of", "class_index_like", "check_targets"]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool") and not isinstance(value, int)


def _scalar(value: Any) -> Any:
    """A 0-d numpy array or tensor as its Python number; anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item") and type(value).__module__.split(".")[0] in (
        "torch", "numpy"
    ):
        return value.item()
    return value


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (``np.int64`` and 0-d integer tensors too; not bool, float or str)."""
    plain = _scalar(value)
    if _is_bool(plain) or not isinstance(plain, numbers.Integral):
        raise InvalidValueError(f"{name} must be a whole number{_range(low, high)}, got {_show(value)}")
    number = int(plain)
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidValueError(f"{name} must be a whole number{_range(low, high)}, got {number}")
    return number


def check_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the range (ints and numpy numbers too; not bool or str)."""
    plain = _scalar(value)
    if _is_bool(plain) or not isinstance(plain, numbers.Real):
        raise InvalidValueError(f"{name} must be a number{_range(low, high, low_open, high_open)}, got {_show(value)}")
    number = float(plain)
    if not math.isfinite(number):
        raise InvalidValueError(f"{name} must be a finite number{_range(low, high, low_open, high_open)}, got {number}")
    if low is not None and (number <= low if low_open else number < low) or high is not None and (
        number >= high if high_open else number > high
    ):
        raise InvalidValueError(f"{name} must be a number{_range(low, high, low_open, high_open)}, got {number:g}")
    return number


def check_bool(name: str, value: Any) -> bool:
    plain = _scalar(value)
    if not _is_bool(plain):
        raise InvalidValueError(f"{name} must be True or False, got {_show(value)}")
    return bool(plain)


def _range(low: Any, high: Any, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_field(name: str, value: Any, annotation: Any) -> Any:
    """``value`` checked against a config field's type (bool, int, float, a ``Literal``, a
    tuple of floats, or a union of these with None), converted to the plain Python type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise InvalidValueError(f"{name} must be one of {', '.join(map(repr, args))}, got {_show(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        literals = [x for a in options if get_origin(a) is Literal for x in get_args(a)]
        if isinstance(value, str) and value in literals:
            return value
        for option in options:
            if get_origin(option) is Literal:
                continue
            try:
                return check_field(name, value, option)
            except InvalidValueError:
                pass
        accepted = [_describe(a) for a in options if get_origin(a) is not Literal] + [repr(x) for x in literals]
        if type(None) in args:
            accepted.append("None")
        raise InvalidValueError(f"{name} must be {' or '.join(accepted)}, got {_show(value)}")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "__len__"):
            raise InvalidValueError(f"{name} must be {_describe(annotation)}, got {_show(value)}")
        items = list(value)
        if len(items) != len(args) or Ellipsis in args:
            raise InvalidValueError(f"{name} must be {_describe(annotation)}, got {_show(value)}")
        return tuple(check_field(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(items, args)))
    if annotation is bool:
        return check_bool(name, value)
    if annotation is int:
        return check_int(name, value)
    if annotation is float:
        return check_float(name, value)
    return value  # a type this layer does not know: the owner checks it


def _describe(annotation: Any) -> str:
    if annotation is bool:
        return "True or False"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a finite number"
    if get_origin(annotation) is tuple:
        return f"a tuple of {len(get_args(annotation))} numbers"
    return getattr(annotation, "__name__", str(annotation))


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their annotations, resolved (what :func:`check_fields` checks against)."""
    import dataclasses

    hints = _hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def admits_none(annotation: Any) -> bool:
    """Whether None is itself a value of this type (``int | None``): then None sets it, not "keep"."""
    return get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in get_args(annotation)


def choices_of(annotation: Any) -> tuple[str, ...]:
    """The strings a ``Literal`` (alone or in a union) allows; () for other types."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(x for a in get_args(annotation) for x in choices_of(a))
    return ()


def check_fields(obj: Any, kind: str = "") -> dict[str, Any]:
    """Every dataclass field of ``obj`` checked against its annotation; the converted values
    (``np.int64(4)`` → ``4``, ``(0.5, 0.99)`` from a list) by name."""
    import dataclasses

    hints = _hints(type(obj))
    prefix = f"{kind} setting " if kind else ""
    return {f.name: check_field(f"{prefix}{f.name}", getattr(obj, f.name), hints[f.name])
            for f in dataclasses.fields(obj) if f.name in hints}


# ------------------------------------------------------------------ targets
_ACCEPTED = "a class index (a whole number), a class name, or a list of them"


def class_index_like(value: Any) -> int | str:
    """One target as an int or a name: integer-likes (``np.int64``, a 0-d tensor, ``3.0``)
    become ints; anything else is refused in one line."""
    if isinstance(value, str):
        return value
    plain = _scalar(value)
    if _is_bool(plain):
        raise InvalidValueError(f"target {_show(value)} is not a class: give {_ACCEPTED}")
    if isinstance(plain, numbers.Integral):
        return int(plain)
    if isinstance(plain, numbers.Real) and math.isfinite(float(plain)) and float(plain).is_integer():
        return int(plain)
    raise InvalidValueError(f"target {_show(value)} is not a class: give {_ACCEPTED}")


def check_targets(targets: Any) -> list[int | str]:
    """``targets`` (one or a sequence; a 1-d numpy array or tensor too) as a list of ints and names."""
    if isinstance(targets, str) or getattr(targets, "ndim", None) == 0 or isinstance(targets, numbers.Number):
        return [class_index_like(targets)]
    if hasattr(targets, "ndim") and hasattr(targets, "tolist"):
        if targets.ndim != 1:
            raise InvalidValueError(f"targets must be one class or a 1-d list of them, got an array of shape "
                                    f"{tuple(targets.shape)}")
        return [class_index_like(t) for t in targets.tolist()]
    if isinstance(targets, (Sequence, set, frozenset)) or hasattr(targets, "__iter__") and not isinstance(
        targets, (bytes, dict)
    ):
        items = list(targets)
        if not items:
            raise InvalidValueError(f"no target class given: give {_ACCEPTED}")
        return [class_index_like(t) for t in items]
    raise InvalidValueError(f"targets {_show(targets)} are not classes: give {_ACCEPTED}")
