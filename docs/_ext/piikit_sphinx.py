"""The site's own Sphinx extension (loaded by ``docs/conf.py``).

- ``.. piikit-api::``: the API reference, generated from ``piikit.__all__`` at build time
  (autodoc directives grouped by the module that defines each name, titled by that module's
  docstring), so it follows the package as names are added or moved between modules.
- Notebook pages: each ``notebooks/NN_*.ipynb`` (and ``notebooks/NN_*.md``, the series' "how to
  read" page) is copied into ``docs/notebooks/`` (the copies are ignored by git) so that myst-nb builds it as a page and the README's
  ``notebooks/NN_*.ipynb`` links resolve from the landing page unchanged.
- The README is included by ``docs/index.md``: its ``<img src=...>`` tags and its links to
  files other than pages (``LICENSE``) are relative to the repository root, not to ``docs/``;
  a transform resolves them from the included file's folder.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import os
import re
import tokenize
import types
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_PAGES = DOCS / "notebooks"
# The names the reference starts with; the other sections follow in module order.
LEAD = ["invert", "refine", "attribute", "score", "compare_settings", "sweep", "load_model"]


# -- notebooks -------------------------------------------------------------------------------

def copy_notebooks(app: Sphinx, config: Any) -> None:
    """docs/notebooks/NN_name.ipynb: a copy of notebooks/NN_name.ipynb for every notebook (and
    of the series' pages, ``notebooks/NN_name.md``), rewritten only when it changed (Sphinx
    re-reads a page when its file's time changes); copies of files that no longer exist are
    removed. Copies, not symlinks: Sphinx resolves a page's links from the real path of its
    file, which must lie inside docs/."""
    NOTEBOOK_PAGES.mkdir(exist_ok=True)
    wanted = {p.name: p for pattern in ("[0-9][0-9]_*.ipynb", "[0-9][0-9]_*.md") for p in NOTEBOOKS.glob(pattern)}
    for page in [*NOTEBOOK_PAGES.glob("*.ipynb"), *NOTEBOOK_PAGES.glob("[0-9][0-9]_*.md")]:
        if page.name not in wanted or page.is_symlink():
            page.unlink()
    for name, source in sorted(wanted.items()):
        page, data = NOTEBOOK_PAGES / name, source.read_bytes()
        if not page.exists() or page.read_bytes() != data:
            page.write_bytes(data)


def notebook_pages() -> list[str]:
    return [f"notebooks/{p.stem}" for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]


def pages_added_or_removed(app: Sphinx, env: Any, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    app.piikit_pages_changed = bool(added or removed)  # type: ignore[attr-defined]
    return []


def rewrite_all_if_pages_changed(app: Sphinx, env: Any) -> list[str]:
    """A page added or removed (a new notebook, say) changes every page's navigation; Sphinx
    re-reads only the pages with globbed toctrees, so rewrite the others as well."""
    return sorted(env.all_docs) if getattr(app, "piikit_pages_changed", False) else []


# -- README paths ----------------------------------------------------------------------------

class IncludedPaths(SphinxTransform):
    """Resolve raw-HTML image paths and links to non-page files of an included file (the
    README) relative to that file, where they do not resolve from the including page."""

    default_priority = 100  # before the image and download collectors read the doctree

    def apply(self, **kwargs: Any) -> None:
        own = Path(self.env.doc2path(self.env.docname)).resolve()
        doc_dir = own.parent
        for node in self.document.findall(nodes.image):
            uri, source = node.get("uri", ""), node.source
            if not source or Path(source).resolve() == own or "://" in uri or uri.startswith(("/", "data:")):
                continue
            if not (doc_dir / uri).exists() and (Path(source).parent / uri).exists():
                node["uri"] = os.path.relpath(Path(source).resolve().parent / uri, doc_dir)
                node["candidates"] = {}
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain"):
                continue
            source = node.source or ""
            target = Path(source).parent / node["reftarget"].split("#")[0] if source else None
            if target is None or Path(source).resolve() == own or not target.is_file():
                continue
            download = addnodes.download_reference(
                "", "", *node.children, refdomain=None, reftype="myst", refexplicit=node.get("refexplicit"),
                refdoc=node.get("refdoc"), reftarget=os.path.relpath(target.resolve(), doc_dir),
                classes=["xref", "download", "myst"],
            )
            download.source, download.line = node.source, node.line
            node.replace_self(download)


# -- API reference ---------------------------------------------------------------------------

# RST ends an inline literal only before a space or punctuation, so "``batch``×channels" in a
# docstring would not render as the code its author meant (and warns). Its standard escape,
# a backslash-space ("nothing") between the literal and the next character, fixes that; only
# around ``literals``, whose delimiters are unambiguous.
_LITERAL = re.compile(r"``[^`]+?``")  # leftmost pairs, as RST pairs them
_BOUNDARY_AFTER = set(" \t-.,:;!?/\\'\")]}>")
_BOUNDARY_BEFORE = set(" \t-:/'\"<([{\\")


def _literal_boundaries(line: str) -> str:
    out, last = [], 0
    for match in _LITERAL.finditer(line):
        start, end = match.span()
        out.append(line[last:start])
        if start > 0 and line[start - 1] not in _BOUNDARY_BEFORE:
            out.append("\\ ")
        out.append(match.group())
        if end < len(line) and line[end] not in _BOUNDARY_AFTER:
            out.append("\\ ")
        last = end
    return "".join(out) + line[last:]


def literal_boundaries(app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]) -> None:
    lines[:] = [_literal_boundaries(line) if "``" in line else line for line in lines]


def _first_line(doc: str | None) -> str:
    return (inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ").rstrip(".") if doc else "")


def _field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field line of a dataclass's source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    line_tokens: list[tokenize.TokenInfo] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.NEWLINE, tokenize.NL):
            names = [t for t in line_tokens if t.type not in (tokenize.INDENT, tokenize.DEDENT)]
            if (len(names) >= 3 and names[0].type == tokenize.NAME and names[1].string == ":"
                    and names[-1].type == tokenize.COMMENT):
                comments[names[0].string] = names[-1].string.lstrip("#").strip()
            line_tokens = []
        else:
            line_tokens.append(token)
    return comments


def _literal(value: object) -> str:
    return "``" + repr(value).replace("`", "'") + "``"


def _rst_text(text: str) -> str:
    """A comment as RST text: escape what RST would read as markup."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|").replace("`", "'").replace("_ ", "\\_ ")


def _fields_table(cls: type) -> list[str]:
    comments = _field_comments(cls)
    rows = []
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING else (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else "(required)")
        rows.append((f"``{field.name}``", _literal(default), _rst_text(comments.get(field.name, ""))))
    return _list_table(f"Fields of :class:`piikit.{cls.__name__}` (defaults: the paper's)", ["field", "default", "meaning"], rows)


def _presets_table(name: str, presets: dict[str, Any]) -> list[str]:
    rows = []
    for preset, config in presets.items():
        base = type(config)()
        changed = [f"``{f.name}={getattr(config, f.name)!r}``" for f in dataclasses.fields(config)
                   if getattr(config, f.name) != getattr(base, f.name)]
        rows.append((f"``{preset!r}``", ", ".join(changed) or "(the defaults)"))
    return _list_table(f"``piikit.{name}``: each preset as changes to :class:`piikit.{type(base).__name__}`'s defaults",
                       ["preset", "settings"], rows)


def _list_table(title: str, header: list[str], rows: list[tuple[str, ...]]) -> list[str]:
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    for row in [tuple(header), *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return lines + [""]


def api_sections(package: types.ModuleType) -> list[tuple[str, str, list[str]]]:
    """(module name, title, public names) per defining module, the LEAD names' modules first."""
    groups: dict[str, list[str]] = {}
    for name in package.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(package, name)
        module = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
        if module is None or not module.startswith(package.__name__):  # data: where it is assigned
            module = next((m.__name__ for m in _submodules(package) if name in getattr(m, "__dict__", {})), package.__name__)
        groups.setdefault(module, []).append(name)

    def rank(item: tuple[str, list[str]]) -> tuple[int, str]:
        leads = [LEAD.index(n) for n in item[1] if n in LEAD]
        return (min(leads) if leads else len(LEAD), item[0])

    sections = []
    for module, names in sorted(groups.items(), key=rank):
        names.sort(key=lambda n: (LEAD.index(n) if n in LEAD else len(LEAD), _kind(getattr(package, n)), n.lower()))
        title = _first_line(importlib.import_module(module).__doc__) or module
        sections.append((module, title, names))
    return sections


def _submodules(package: types.ModuleType) -> list[types.ModuleType]:
    import sys

    return [m for n, m in sorted(sys.modules.items()) if n.startswith(package.__name__ + ".") and m is not None]


def _kind(obj: object) -> int:
    if inspect.isfunction(obj):
        return 0
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return 3
    if inspect.isclass(obj):
        return 1
    return 2


class ApiDirective(SphinxDirective):
    """``.. piikit-api::``: every public name of piikit, from ``piikit.__all__``."""

    def run(self) -> list[nodes.Node]:
        package = importlib.import_module("piikit")
        lines: list[str] = []
        for module, title, names in api_sections(package):
            lines += [title, "-" * max(len(title), 3), ""]
            # The rest of the module's docstring: what the section's names share.
            source = getattr(importlib.import_module(module), "__file__", None)
            if source:
                self.env.note_dependency(source)  # an edited module re-reads this page
            doc = inspect.cleandoc(importlib.import_module(module).__doc__ or "").split("\n\n", 1)
            if len(doc) == 2 and module != package.__name__:
                lines += [_literal_boundaries(line) for line in doc[1].splitlines()] + [""]
            for name in names:
                obj = getattr(package, name)
                qualified = f"{package.__name__}.{name}"
                if isinstance(obj, types.ModuleType):
                    lines += [f".. automodule:: {obj.__name__}", "   :members:", "   :no-index:", ""]
                elif inspect.isclass(obj) and issubclass(obj, BaseException):
                    lines += [f".. autoexception:: {qualified}", ""]
                elif inspect.isclass(obj):
                    lines += [f".. autoclass:: {qualified}", "   :members:", "   :show-inheritance:", ""]
                    if dataclasses.is_dataclass(obj):
                        lines += _fields_table(obj)
                elif callable(obj):
                    lines += [f".. autofunction:: {qualified}", ""]
                else:  # data: its type, and for a dict of configs (the presets) a table of them
                    lines += [f".. py:data:: {qualified}", f"   :type: {type(obj).__name__}", ""]
                    if isinstance(obj, dict) and obj and all(dataclasses.is_dataclass(v) for v in obj.values()):
                        lines += ["   " + line if line else "" for line in _presets_table(name, obj)]
        content = StringList(lines, source="<piikit-api>")
        node = nodes.container()
        nested_parse_with_titles(self.state, content, node)
        return node.children


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("config-inited", copy_notebooks)
    app.connect("env-get-outdated", pages_added_or_removed)
    app.connect("env-get-updated", rewrite_all_if_pages_changed)
    app.connect("autodoc-process-docstring", literal_boundaries)
    app.add_transform(IncludedPaths)
    app.add_directive("piikit-api", ApiDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
