"""The layers point one way: data ← models ← engine ← viz ← serve (DESIGN.md)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["data", "models", "engine", "viz", "serve"]
UI = {"panel", "bokeh", "holoviews", "datashader", "param"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(pkg: str):
    return sorted((ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("pkg", ORDER)
def test_packages_only_import_lower_layers(pkg):
    higher = set(ORDER[ORDER.index(pkg) + 1:])
    bad = {str(f.relative_to(ROOT)): sorted(_imports(f) & higher) for f in _files(pkg)}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"{pkg} imports a higher layer: {bad}"


@pytest.mark.parametrize("pkg", ["data", "models", "engine"])
def test_numeric_layers_never_import_ui(pkg):
    bad = {str(f.relative_to(ROOT)): sorted(_imports(f) & UI) for f in _files(pkg)}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"{pkg} imports UI libraries: {bad}"


def test_viz_never_differentiates_or_trains():
    for f in _files("viz"):
        text = f.read_text()
        assert "jax.grad" not in text and "optax" not in _imports(f), f


def test_layer_check_detects_a_violation(tmp_path):
    # The checker itself must be able to fail.
    f = tmp_path / "m.py"
    f.write_text("import panel as pn\nfrom serve.app import serve\n")
    assert {"panel", "serve"} <= _imports(f)
