"""Sphinx configuration of piikit's documentation site (``make docs``).

The stack is Sphinx + myst-nb + sphinx-book-theme, chosen because:

- myst-nb executes the notebooks through jupyter-cache: a rebuild re-executes only the
  notebooks whose code changed, and the site shows their real outputs (the notebooks are
  committed without any);
- autodoc (with napoleon, for the Google-style ``Args:`` sections) reads the docstrings, so the
  API reference cannot drift from the code;
- it is the stack of Captum's and many scientific Python projects' docs (Jupyter Book is built
  on it), so readers know the layout.

Two modes, as for the notebooks: full (the default; the ``fast``/``clear`` presets at full size,
hours on a 2-core CPU) and smoke (``PIIKIT_SMOKE=1``: the ``preview`` preset, minutes). Each mode
has its own jupyter-cache (``<doctree dir>/../.jupyter_cache/<mode>``), and the mode is a config
value, so switching modes in the same build folder re-reads every page and never shows the other
mode's outputs. The Makefile puts the two sites in different folders anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document the piikit of this checkout
sys.path.insert(0, str(DOCS / "_ext"))

import piikit  # noqa: E402

SMOKE = os.environ.get("PIIKIT_SMOKE", "0") == "1"

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
piikit_docs_mode = "smoke" if SMOKE else "full"  # a config value: changing it re-reads every page
nb_execution_mode = "cache"
# nb_execution_cache_path is set per build from the doctree folder and the mode (docs/_ext).
# Seconds per cell (nbclient times cells, not notebooks). Full mode: one cell of 05 or 06 runs a
# whole comparison, 8 inversions (18 min for all of 06 on a quiet AVX-512 core pair, 5x more on
# AVX2); override with `make docs SPHINXOPTS="-D nb_execution_timeout=N"`.
nb_execution_timeout = 300 if SMOKE else 3600
nb_execution_raise_on_error = True  # a failing notebook fails the build
nb_execution_in_temp = True  # files a notebook saves (out/...) go to a temporary folder, not the repo
nb_merge_streams = True
nb_execution_show_tb = True

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
