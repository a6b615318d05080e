"""Sanity checks drawn on a result's grid: each image's flags under it (``result.show()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["mark_flags"]


def mark_flags(fig: "Figure", report: Any) -> "Figure":
    """Write under image k of ``fig`` (the axes in order) the flags of row k of ``report``
    (a :class:`~piikit.analysis.sanity.SanityReport`, which imports the result module that
    calls this, hence untyped here), red, or "sanity ok", green."""
    for ax, row in zip(fig.axes, report.rows):
        text = "flags: " + ", ".join(row.flags) if row.flags else "sanity ok"
        ax.set_xlabel(text, fontsize=8, color="#b00020" if row.flags else "#1b7837")
    return fig
