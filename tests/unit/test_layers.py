"""The package reads top-down as a request flows: no import runs from a lower layer up.

The layers of docs/development.md's package table, highest first. A module may import its
own layer and the layers below it; imports under ``if TYPE_CHECKING:`` never run and are
only annotations.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gateway"

#: Layer of each top-level name inside ``gateway``, highest (0) first.
LAYERS = {
    # Entry points: the CLI and its docs generator, the WSGI callable, the kit for filter authors.
    "__main__": 0, "wsgi": 0, "pdk": 0, "testing": 0, "scaffold": 0, "docs": 0, "__init__": 0,
    "server": 1,     # the composition root
    "routing": 2,
    "filters": 3,
    "services": 4,
    "proxy": 5,
    "store": 6,
    "ops": 7,
    "jsoncodec": 8, "config": 8, "schema": 8,
}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1] if "." in module else "__init__"]


def _runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every ``gateway.*`` import that runs, at any depth."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "gateway" else [
                f"gateway.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.startswith("gateway.")]
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_upward(path: Path) -> None:
    own = "gateway." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    upward = [f"{path.relative_to(PACKAGE)}:{line} imports {name}"
              for line, name in _runtime_imports(ast.parse(path.read_text()))
              if _layer(name) < _layer(own)]
    assert not upward, upward


def test_every_top_level_name_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert names <= LAYERS.keys(), names - LAYERS.keys()


def test_the_check_sees_an_upward_import() -> None:
    tree = ast.parse("from gateway.server.app import create_app\n"
                     "if TYPE_CHECKING:\n    from gateway.routing.table import RouteTable\n")
    assert _runtime_imports(tree) == [(1, "gateway.server.app")]
