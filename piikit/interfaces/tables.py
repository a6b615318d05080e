"""The older path of :mod:`piikit.tables` (plain-text tables), kept for notebooks' imports."""

from piikit.analysis.ablations import ablation_table
from piikit.tables import format_spread, format_table

__all__ = ["format_table", "format_spread", "ablation_table"]
