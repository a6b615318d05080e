"""The figures' older module path, kept for notebooks and scripts that import from it: the
functions live in :mod:`piikit.figures` (below the engine, so a result can draw itself)."""

from piikit.figures import NotebookFigure as NotebookFigure
from piikit.figures import filmstrip as filmstrip
from piikit.figures import image_grid as image_grid
from piikit.figures import new_figure as new_figure
from piikit.figures import plot_ablation_grid as plot_ablation_grid
from piikit.figures import plot_ablations as plot_ablations
from piikit.figures import plot_history as plot_history
from piikit.figures import plot_spectra as plot_spectra
from piikit.figures import show_image as show_image
from piikit.figures import to_numpy_image as to_numpy_image
from piikit.figures import with_alpha as with_alpha

__all__ = ["NotebookFigure", "new_figure", "to_numpy_image", "show_image", "image_grid", "with_alpha", "filmstrip",
           "plot_history", "plot_ablations", "plot_ablation_grid", "plot_spectra"]
