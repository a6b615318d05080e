"""The project's set-up files agree with each other (conda is not on these machines, so
environment.yml is checked statically)."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_mirrors_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "conda-forge" in env["channels"] and "pytorch" not in env["channels"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    extras = re.fullmatch(r"-e \.\[(.+)\]", pip[0]).group(1).split(",")
    assert set(extras) <= set(project["optional-dependencies"])


def test_readme_commands_exist_and_ci_calls_the_test_command():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _github_slug(heading: str) -> str:
    """The anchor a code host gives a Markdown heading: lower case, punctuation dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_and_guide_links_resolve_on_a_code_host():
    # The README is a landing page that sends readers to docs/*.md; a code host resolves those
    # links relative to the file, so each must name a file of the repository (and an anchor,
    # a heading of that file).
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "guide").glob("*.md"))]
    assert len(pages) > 3
    broken = []
    for page in pages:
        text = page.read_text()
        targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img src="([^"]+)"', text)
        for target in targets:
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve()
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
                if anchor not in {_github_slug(h) for h in headings}:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "links that do not resolve from the file on a code host:\n" + "\n".join(broken)


def test_readme_is_a_landing_page():
    # Issue 34: what a newcomer needs, in at most 1,200 words; the rest lives in docs/guide/.
    readme = (ROOT / "README.md").read_text()
    assert len(readme.split()) <= 1200
    for section in ("## Presets", "## Notebooks", "## Can you trust an inversion?"):
        assert section in readme
    assert "docs/readme_inversions.png" in readme and "docs/atlas.png" in readme


def test_notebooks_start_with_a_parameters_cell():
    # Their outputs are checked against their code by tests/test_provenance.py.
    import json

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"].get("tags", []), f"{nb.name}: first code cell must be tagged parameters"
