"""The package's shape: its layers import downward only, no import loops among piikit's
modules (counting lazy imports inside functions and type-only ones), no module reaching into
another's ``_private`` names, and no side effects or heavy imports when piikit itself is
imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "piikit"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str]]]:
    """(imported piikit module, names taken from it) for every import anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "piikit"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "piikit":
                continue
            names = [a.name for a in node.names]
            # "from piikit.x import y" where y is a submodule imports that submodule
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            found += [(s, []) for s in subs]
            found.append((target, [n for n in names if f"{target}.{n}" not in known]))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _ in _imports(name, path, known):
            if target in known and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


#: The layers, lowest first (docs/guide/package.md): a module may import its own layer and
#: the ones before it. refinement and analysis are siblings: neither imports the other.
LAYERS: list[tuple[str, ...]] = [
    ("piikit.version", "piikit.errors", "piikit.validation", "piikit.labels", "piikit.device", "piikit.images",
     "piikit.figures", "piikit.tables"),
    ("piikit.models",),
    ("piikit.engine",),
    ("piikit.refinement", "piikit.analysis"),
    ("piikit.interfaces",),
    ("piikit", "piikit.__main__"),  # the public surface and the command's entry point
]


def _layer(module: str) -> tuple[int, str]:
    """(rank, the layer's name) of a module: its longest matching prefix in LAYERS."""
    best = None
    for rank, names in enumerate(LAYERS):
        for name in names:
            inside = module == name or (name != "piikit" and module.startswith(name + "."))
            if inside and (best is None or len(name) > len(best[1])):
                best = (rank, name)
    assert best is not None, f"{module} is in no layer: add its package to LAYERS and docs/guide/package.md"
    return best


def test_layers_import_downward_only():
    back = []
    for module, deps in _graph().items():
        rank, layer = _layer(module)
        for dep in sorted(deps):
            dep_rank, dep_layer = _layer(dep)
            if dep_rank > rank or (dep_rank == rank and dep_layer != layer and rank == 3):
                back.append(f"{module} -> {dep}")
    assert back == [], "imports against the layer order (models -> engine -> refinement/analysis -> interfaces):\n" + \
        "\n".join(back)


def test_the_package_map_names_every_module_in_its_layer():
    # The map lives on the docs page the README links to as "the package layout".
    page = (PACKAGE.parent / "docs" / "guide" / "package.md").read_text()
    section = page[: page.index("\n## Imports and defaults")]
    assert "models -> engine -> refinement/analysis -> interfaces" in section
    tree = section[section.index("```\npiikit/"):]
    folder, listed = "", set()
    for line in tree.splitlines()[1:]:
        if line.startswith("```"):
            break
        name = line.lstrip("│├└─ \u00a0").split(" ", 1)[0]
        if name.endswith("/"):
            folder = name
        elif name.endswith(".py"):
            listed.add(("" if line.startswith(("├", "└")) else folder) + name)
    on_disk = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py" or p.parent == PACKAGE}
    assert listed == on_disk, f"missing from the map in docs/guide/package.md: {sorted(on_disk - listed)}; gone: {sorted(listed - on_disk)}"


def test_no_import_loops_among_piikit_modules():
    # piikit/__init__ only names its exports lazily (strings) and imports them for type
    # checkers; a submodule importing "piikit" itself would make every module depend on all.
    graph = _graph()
    offenders = [m for m, deps in graph.items() if "piikit" in deps and m != "piikit"]
    assert not offenders, f"modules importing the top-level package (use the owning module): {offenders}"
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(f"{c}: " + "; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in cycles)


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    known = set(modules)
    bad = []
    for name, path in modules.items():
        for target, names in _imports(name, path, known):
            if target == name:
                continue
            bad += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert bad == []


def test_importing_piikit_loads_no_torch_and_sets_nothing():
    code = ("import os, sys; before = dict(os.environ); import piikit; "
            "assert 'torch' not in sys.modules, 'torch loaded'; assert dict(os.environ) == before, 'environment changed'; "
            "import piikit.interfaces.cli; assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_the_public_surface_resolves_and_every_module_is_in_a_package():
    import piikit

    for name in piikit.__all__:
        assert getattr(piikit, name) is not None
    for path in PACKAGE.rglob("*.py"):
        assert (path.parent / "__init__.py").exists(), f"{path} is outside a package"


def test_the_lazy_exports_and_the_type_checking_imports_name_the_same_things():
    import piikit

    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    typed = {alias.asname or alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    assert typed == piikit._EXPORTS
