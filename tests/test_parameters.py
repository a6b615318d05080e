"""Notebook parameters can be overridden: papermill's ``-p SMOKE True`` (no PIIKIT_SMOKE in the
environment) puts a notebook into smoke mode, because the cell tagged ``parameters`` holds
literal values only and every derived setting is computed in the cell after it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def parameters_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))["source"])


# The notebooks that follow the convention (SMOKE = None in the tagged cell: read PIIKIT_SMOKE later).
CONVENTION = [p for p in NOTEBOOKS if "SMOKE = None" in parameters_cell(p)]


def test_most_notebooks_follow_the_convention():
    assert {p.name[:2] for p in CONVENTION} >= {"01", "02", "03", "04", "05", "06", "08", "09", "10", "13", "14"}


@pytest.mark.parametrize("path", CONVENTION, ids=[p.stem for p in CONVENTION])
def test_parameters_cell_holds_literals_only(path: Path):
    """Assignments of literal values (numbers, strings, lists, tuples, None): nothing computed,
    nothing imported, so a value papermill injects after the cell is the one that is used."""
    tree = ast.parse(parameters_cell(path))
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{path.name}: {ast.unparse(node)!r} is not an assignment"
        ast.literal_eval(node.value)  # raises on anything but a literal


@pytest.mark.slow
@pytest.mark.notebook
def test_papermill_smoke_parameter_takes_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.delenv("PIIKIT_SMOKE", raising=False)  # only the parameter may switch smoke mode on
    monkeypatch.delenv("MPLBACKEND", raising=False)
    source = next(p for p in NOTEBOOKS if p.name.startswith("13_"))  # prints its smoke setting
    out = tmp_path / source.name
    papermill.execute_notebook(str(source), str(out), parameters={"SMOKE": True}, cwd=str(source.parent),
                               kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    injected = [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert injected and "SMOKE = True" in "".join(injected[0]["source"])
    printed = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                      for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "smoke mode: True; 64 px, 3 stages x 10 steps" in printed, printed[:2000]
