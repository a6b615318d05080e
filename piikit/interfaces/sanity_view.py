"""Sanity checks drawn on a result's grid: each image's flags under it (``result.show()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from piikit.analysis.sanity import SanityReport

__all__ = ["mark_flags"]


def mark_flags(fig: "Figure", report: "SanityReport") -> "Figure":
    """Write under image k of ``fig`` (the axes in order) report row k's flags, red, or
    "sanity ok", green."""
    for ax, row in zip(fig.axes, report.rows):
        text = "flags: " + ", ".join(row.flags) if row.flags else "sanity ok"
        ax.set_xlabel(text, fontsize=8, color="#b00020" if row.flags else "#1b7837")
    return fig
