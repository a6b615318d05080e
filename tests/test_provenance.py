"""The committed notebooks' outputs are true to their code: each notebook is committed executed in
full mode by ``scripts/run_notebooks.py``, which records in ``metadata.piikit.provenance`` the
hash of the code cells it ran. Nothing is executed here: this reads the committed files.

A failure means a notebook's code (or a data file it declares as input) changed after its
outputs were made: run ``python scripts/run_notebooks.py notebooks/NN_name.ipynb`` (or ``make
notebooks``) and commit the result.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SERIES_BUDGET = 15_000_000
NOTEBOOK_BUDGET = 1_600_000  # the runner's 1.5 MB, plus what is not an image (text, widget state)


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = _runner()


def _nb(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_code_hash_ignores_outputs_and_prose_but_not_code():
    nb = {"cells": [{"cell_type": "markdown", "source": "# a"},
                    {"cell_type": "code", "source": ["x = 1\n", "x"], "outputs": [], "execution_count": None}]}
    executed = json.loads(json.dumps(nb))
    executed["cells"][1].update(outputs=[{"output_type": "execute_result", "data": {"text/plain": "1"}}],
                                execution_count=3, id="abc")
    executed["cells"][0]["source"] = "# another title"
    assert RUNNER.code_hash(executed) == RUNNER.code_hash(nb)
    edited = json.loads(json.dumps(nb))
    edited["cells"][1]["source"] = "x = 2\nx"
    assert RUNNER.code_hash(edited) != RUNNER.code_hash(nb)


def test_stale_reason_names_what_is_wrong():
    nb = {"cells": [{"cell_type": "code", "source": "1"}], "metadata": {}}
    assert RUNNER.stale_reason(nb) == "no provenance"
    nb["metadata"]["piikit"] = {"provenance": {"mode": "smoke", "code_sha256": RUNNER.code_hash(nb)}}
    assert RUNNER.stale_reason(nb) == "made in smoke mode"
    nb["metadata"]["piikit"]["provenance"].update(mode="full", inputs_sha256=None)
    assert RUNNER.stale_reason(nb) is None
    nb["cells"][0]["source"] = "2"
    assert RUNNER.stale_reason(nb) == "code changed"


def test_library_changes_lists_the_package_files_changed_since_the_run():
    history = subprocess.run(["git", "rev-list", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if len(history) < 2:
        pytest.skip("a checkout without history (shallow clone)")
    first = history[-1]
    nb = {"cells": [], "metadata": {"piikit": {"provenance": {"piikit_commit": first}}}}
    changed = RUNNER.library_changes(nb)
    assert "piikit/__init__.py" in changed and all(name.startswith("piikit/") for name in changed)
    assert not any(name.startswith("piikit/data/") for name in changed)  # data are declared inputs
    nb["metadata"]["piikit"]["provenance"]["piikit_commit"] = "0" * 40
    assert RUNNER.library_changes(nb) is None
    assert RUNNER.library_changes({"cells": [], "metadata": {}}) is None


def test_fit_image_makes_photos_jpeg_and_keeps_plots_png():
    import io

    import numpy as np
    from PIL import Image, ImageDraw

    def png(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="png")
        return buffer.getvalue()

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 2000, 3), dtype=np.uint8))
    data, kind = RUNNER.fit_image(png(noise), "png", max_width=1000)
    assert kind == "jpeg" and Image.open(io.BytesIO(data)).size == (1000, 150)
    plot = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(plot).line([(0, 0), (400, 300)], fill="black", width=2)
    data, kind = RUNNER.fit_image(png(plot), "png", max_width=1000)
    assert kind == "png" and Image.open(io.BytesIO(data)).size == (400, 300)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_outputs_come_from_this_code_in_full_mode(path: Path) -> None:
    nb = _nb(path)
    record = RUNNER.provenance(nb)
    rerun = f"run `python scripts/run_notebooks.py {path.relative_to(ROOT)}` and commit it"
    assert record, f"{path.name} has no provenance (committed without its outputs?): {rerun}"
    assert record["mode"] == "full", f"{path.name}'s outputs come from {record['mode']} mode: {rerun}"
    assert record["code_sha256"] == RUNNER.code_hash(nb), f"{path.name}'s code changed since its outputs were made: {rerun}"
    assert record.get("inputs_sha256") == RUNNER.inputs_hash(nb), \
        f"{path.name}'s declared inputs {RUNNER.declared_inputs(nb)} changed since its outputs were made: {rerun}"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    unrun = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and c.get("execution_count") is None]
    assert not unrun, f"{path.name}: code cells {unrun} were not executed"
    assert any(c.get("outputs") for c in code), f"{path.name} has no outputs"
    errors = [i for i, c in enumerate(nb["cells"]) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: cells {errors} show an error"
    assert RUNNER.outputs_size(nb) <= NOTEBOOK_BUDGET, \
        f"{path.name}: {RUNNER.outputs_size(nb) / 1e6:.2f} MB of outputs (run the runner's --shrink-only)"


def test_the_series_outputs_fit_the_budget():
    total = sum(RUNNER.outputs_size(_nb(p)) for p in NOTEBOOKS)
    assert total <= SERIES_BUDGET, f"the notebooks' outputs add up to {total / 1e6:.1f} MB"
