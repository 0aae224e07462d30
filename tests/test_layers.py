"""The house's import rules, read from the source (module- and function-level imports alike).

Layers point one way (HACKING.md)::

    data ← models ← engine ← viz ← experiments, serve ← cli

``experiments`` and ``serve`` are siblings: neither imports the other. ``hearsight`` (the version
and the lazy re-export helper) sits below everything; its ``__main__`` only calls the CLI.
No module imports, directly or through others, a module that imports it back.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"hearsight": 0, "data": 1, "models": 2, "engine": 3, "viz": 4,
        "experiments": 5, "serve": 5, "cli": 6}
TOP = {"hearsight.__main__": 7}  # `python -m hearsight` runs the CLI
UI = {"panel", "bokeh", "holoviews", "datashader", "param"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path = ROOT) -> dict[str, Path]:
    return {_module_name(f, root): f for pkg in RANK if (root / pkg).is_dir()
            for f in sorted((root / pkg).rglob("*.py"))}


def _resolve(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name ``path`` imports, wherever the import statement sits."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``module -> modules of this repository it imports``."""
    mods = _modules(root)
    graph = {}
    for mod, path in mods.items():
        deps = {_resolve(n, mods) for n in _imported_names(path, mod)}
        graph[mod] = {d for d in deps if d and d != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        on.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = counter
                counter += 1
                stack.append(w)
                on.add(w)
                work.append((w, iter(sorted(graph.get(w, ())))))
            elif w in on:
                low[v] = min(low[v], index[w])
    return out


def _rank(module: str) -> int:
    return TOP.get(module, RANK[module.split(".")[0]])


def upward_imports(graph) -> dict[str, list[str]]:
    bad = {}
    for mod, deps in graph.items():
        up = sorted(d for d in deps if _rank(d) > _rank(mod)
                    or (_rank(d) == _rank(mod) and d.split(".")[0] != mod.split(".")[0]))
        if up:
            bad[mod] = up
    return bad


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, f"modules that import each other in a circle: {found}"


def test_layers_point_one_way():
    bad = upward_imports(import_graph())
    assert not bad, f"imports of a higher (or sibling) layer: {bad}"


@pytest.mark.parametrize("pkg", ["data", "models", "engine", "experiments"])
def test_numeric_layers_never_import_ui(pkg):
    bad = {}
    for mod, path in _modules().items():
        if mod.split(".")[0] == pkg:
            ui = sorted({n.split(".")[0] for n in _imported_names(path, mod)} & UI)
            if ui:
                bad[mod] = ui
    assert not bad, f"{pkg} imports UI libraries: {bad}"


def test_viz_never_differentiates_or_trains():
    for mod, path in _modules().items():
        if mod.startswith("viz"):
            text = path.read_text()
            assert "jax.grad" not in text and "optax" not in text, path


def _tree(tmp_path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_checker_finds_a_hidden_cycle_and_an_upward_import(tmp_path):
    # The checks themselves must be able to fail: a cycle through a function-level and a
    # relative import, and engine reaching up into serve.
    root = _tree(tmp_path, {
        "serve/__init__.py": "",
        "serve/a.py": "def f():\n    from serve import b\n",
        "serve/b.py": "from .c import g\n",
        "serve/c.py": "import serve.a\ndef g():\n    pass\n",
        "engine/__init__.py": "",
        "engine/x.py": "def h():\n    from serve.a import f\n",
        "data/__init__.py": "",
        "data/y.py": "import os\n",
    })
    graph = import_graph(root)
    assert cycles(graph) == [["serve.a", "serve.b", "serve.c"]]
    assert upward_imports(graph) == {"engine.x": ["serve.a"]}
    assert "data.y" not in upward_imports(graph)
