"""Every notebook runs top to bottom in smoke mode with a real Jupyter kernel, and every
cell that calls a piikit plotting function shows a picture (``image/png``), not only
``<Figure size ...>``.

Each notebook executes once, here (nbclient, the engine behind ``jupyter nbconvert
--execute`` and nbmake), so the same run checks that it works and what it shows. The kernel
gets the user's environment without ``MPLBACKEND``, as JupyterLab's would. It runs a copy with
the committed (full-mode) outputs removed, in memory: the committed file is never written, and
``tests/test_provenance.py`` checks that those outputs match the code.
"""

from __future__ import annotations

import inspect
import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def plotting_functions() -> set[str]:
    """Names of piikit's public functions and result methods that return a figure."""
    import piikit
    from piikit.analysis import attribution
    from piikit.engine import result
    from piikit.interfaces import attribution_plots, viz

    names = set()
    candidates = [*vars(viz).values(), *vars(attribution).values(), *vars(attribution_plots).values(),
                  *(getattr(piikit, n) for n in piikit.__all__),
                  *vars(result.InversionResult).values()]
    for obj in candidates:
        if inspect.isfunction(obj) and not obj.__name__.startswith("_"):
            if "Figure" in str(inspect.signature(obj).return_annotation):
                names.add(obj.__name__)
    return names


# Submodules a notebook may use by their public attribute (``piikit.digits.train_digits_model``): the
# offline digits models and the error classes, whole modules of their own, reachable from ``piikit``.
PUBLIC_MODULES = {"digits", "errors", "widgets"}  # piikit.widgets: the explorer and the small controls


def _code(path: Path) -> str:
    import json

    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_uses_only_public_names(path: Path) -> None:
    """What a notebook calls works after ``pip install piikit``: only ``import piikit`` and
    ``piikit.NAME`` for NAME in ``piikit.__all__`` (or a public submodule), nothing read
    relative to the repository."""
    import ast

    import piikit

    tree = ast.parse(_code(path))
    wrong = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "piikit":
            wrong.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            wrong += [f"import {a.name}" for a in node.names if a.name.startswith("piikit.")]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "piikit":
            if node.attr not in piikit.__all__ and node.attr not in PUBLIC_MODULES:
                wrong.append(f"piikit.{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "benchmarks/" in node.value:
            wrong.append(f"a repository path {node.value!r}")
        elif isinstance(node, ast.Attribute) and node.attr == "parents":
            wrong.append("a path relative to the checkout (.parents)")
    assert not wrong, f"{path.name} uses what a pip install does not offer: {sorted(set(wrong))}"


def test_plotting_functions_are_found():
    assert {"show", "filmstrip", "plot_history", "image_grid", "plot_model_attributions", "plot_attributions"} <= plotting_functions()


def test_piikit_figures_have_a_png_representation():
    """The mechanism the notebooks rely on, checked without a kernel."""
    import torch

    from piikit.figures import image_grid

    fig = image_grid(torch.rand(2, 3, 8, 8), ["a", "b"])
    assert fig._repr_png_().startswith(b"\x89PNG")


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_its_figures(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PIIKIT_SMOKE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    started = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    print(f"{path.name}: {time.perf_counter() - started:.1f} s in smoke mode")

    calls = re.compile(r"\b(" + "|".join(sorted(plotting_functions())) + r")\(")
    missing = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not calls.search(cell.source):
            continue
        kinds = {kind for output in cell.outputs for kind in output.get("data", {})}
        if WIDGET_VIEW in kinds:  # the figures live inside a widget
            continue
        if "image/png" not in kinds:
            missing.append(f"cell {index}: {cell.source.splitlines()[-1]!r} -> {sorted(kinds) or 'no output'}")
    assert not missing, f"{path.name}: cells that plot but show no picture:\n" + "\n".join(missing)
