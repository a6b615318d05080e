"""Plain-text tables for notebooks and benchmark scripts: rows of dicts, aligned columns.

>>> print(format_table([{"run": "base", "top1": 0.875}, {"run": "no jitter", "top1": 0.5}]))
run         top1
---------  -----
base       0.875
no jitter  0.500
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_table", "format_spread"]


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return "x".join(_cell(v, digits) for v in value)
    return "" if value is None else str(value)


def format_table(rows: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]], *,
                 columns: Sequence[str] | None = None, digits: int = 3, index: str = "") -> str:
    """Rows (dicts with the same keys, or a dict of such dicts keyed by the first column's
    value, named ``index``) as an aligned table with a header line.

    Floats get ``digits`` decimals, booleans read yes/no, lists are joined with ``x``;
    numbers are right-aligned, text left-aligned. ``columns`` picks and orders the columns
    (default: every key, in first-seen order).
    """
    if isinstance(rows, Mapping):
        rows = [{index: key, **value} for key, value in rows.items()]
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c), digits) for c in columns] for r in rows]
    numeric = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows)
               for c in columns]
    widths = [max(len(str(c)), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line([str(c) for c in columns]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def format_spread(values: Sequence[float], digits: int = 3) -> str:
    """Repeated measurements (one per seed) as ``mean ± standard deviation (seeds min..max)``;
    the deviation is 0 for a single value.

    >>> format_spread([0.1, 0.2, 0.3])
    '0.200 ± 0.100 (seeds 0.100..0.300)'
    """
    if not values:
        raise ValueError("no values to summarize")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f} "
            f"(seeds {min(values):.{digits}f}..{max(values):.{digits}f})")
