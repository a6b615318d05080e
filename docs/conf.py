"""Sphinx configuration of piikit's documentation site (``make docs``).

The stack is Sphinx + myst-nb + sphinx-book-theme, chosen because:

- myst-nb renders a notebook's stored outputs as a page: the notebooks are committed executed in
  full mode (``scripts/run_notebooks.py``, which records their provenance), so the site executes
  nothing and builds in about a minute;
- autodoc (with napoleon, for the Google-style ``Args:`` sections) reads the docstrings, so the
  API reference cannot drift from the code;
- it is the stack of Captum's and many scientific Python projects' docs (Jupyter Book is built
  on it), so readers know the layout.

Widgets saved with a notebook render from its stored state with ipywidgets' HTML manager
(``@jupyter-widgets/html-manager``'s standalone ``embed.js``, kept in ``_static/widgets/`` with
its licence), served by the site itself: the pages need no CDN, so they work offline. A widget
shown this way has no kernel behind it: it displays the state it was saved in.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document the piikit of this checkout
sys.path.insert(0, str(DOCS / "_ext"))

import piikit  # noqa: E402

project = "piikit"
author = "the piikit authors"
copyright = "the piikit authors, Apache License 2.0"
release = version = piikit.__version__

extensions = [
    "myst_nb",  # also registers myst_parser for .md
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "piikit_sphinx",  # docs/_ext: the API page from piikit.__all__, README paths, notebook pages
]

root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "_ext"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# -- MyST ----------------------------------------------------------------------------------
myst_enable_extensions = ["html_image", "colon_fence", "dollarmath"]
myst_heading_anchors = 3

# -- Notebooks (myst-nb) ---------------------------------------------------------------------
nb_execution_mode = "off"  # the committed outputs are the page; tests/test_provenance.py keeps them true
nb_merge_streams = True
# The HTML manager bundle (no require.js: the standalone build includes the base widgets).
nb_ipywidgets_js = {"widgets/embed.js": {}}

# -- API reference (autodoc) -----------------------------------------------------------------
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # torch.nn.Module's docstrings are not ours
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
add_module_names = True

# -- HTML -----------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"piikit {release}"
html_static_path = ["_static"]
html_css_files = ["piikit.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
    "home_page_in_toc": True,
}
