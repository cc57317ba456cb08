"""Layers of DESIGN.md: imports go down only, and the package imports light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "devformance_nb"

LAYERS = ["core", "plugin", "pure", "runtime", "facade", "analysis", "charts", "surfaces"]
MODULE_LAYER = {
    "events": "core",
    "errors": "core",
    "config": "core",
    "eventlog": "core",
    "plugin": "plugin",
    "collector": "plugin",
    "covchild": "plugin",
    "capture": "plugin",
    "discovery": "pure",
    "scheduling": "pure",
    "fingerprint": "pure",
    "detection": "pure",
    "importscan": "pure",
    "executor": "runtime",
    "runcoverage": "runtime",
    "forkserver": "runtime",
    "forkserve": "runtime",
    "reader": "runtime",
    "launcher": "runtime",
    "state": "runtime",
    "schema": "runtime",
    "store": "runtime",
    "storewriter": "runtime",
    "runinfo": "runtime",
    "replay": "runtime",
    "covdata": "runtime",
    "ingest": "runtime",
    "queryrows": "runtime",
    "api": "facade",
    "analysis": "analysis",
    "compare": "analysis",
    "charts": "charts",
    "cli": "surfaces",
    "terminal": "surfaces",
    "liveview": "surfaces",
    "widgets": "surfaces",
    "magic": "surfaces",
    "notebook": "surfaces",
    "report": "surfaces",
    "demo_history": "surfaces",
    "findings": "surfaces",
}
#: third-party packages a layer may import at module level (each layer may use those below it)
THIRD_PARTY = {
    "core": {"tomli"},
    "plugin": {"pytest", "_pytest", "pluggy"},
    "pure": {"sqlparse"},
    "runtime": {"duckdb", "coverage", "pandas"},
    "facade": set(),
    "analysis": {"pandas", "numpy"},
    "charts": {"altair"},
    "surfaces": {"ipywidgets", "IPython", "traitlets"},
}
HEAVY = [
    "pandas",
    "duckdb",
    "altair",
    "ipywidgets",
    "sqlalchemy",
    "coverage",
    "IPython",
    "django",
    "psycopg",
    "psycopg2",
]


def layer_of(module: str) -> str:
    """Layer of ``devformance_nb.<module>`` by its first name part (or prefix before '_')."""
    head = module.split(".")[0]
    for name in (head, head.split("_")[0]):
        if name in MODULE_LAYER:
            return MODULE_LAYER[name]
    raise AssertionError(f"devformance_nb.{module} has no layer: add it to MODULE_LAYER")


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        if name not in ("__init__", "__main__"):
            found.append((name, path))
    return found


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "devformance_nb":
                found += [(f"devformance_nb.{a.name}", id(node) in top_level) for a in node.names]
            else:
                found.append((node.module, id(node) in top_level))
    return found


def allowed_third_party(layer: str) -> set[str]:
    index = LAYERS.index(layer)
    return set().union(*(THIRD_PARTY[name] for name in LAYERS[: index + 1]))


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_go_down_only(name: str, path: Path) -> None:
    own = LAYERS.index(layer_of(name))
    for imported, _ in imports(path):
        if imported.startswith("devformance_nb."):
            target = imported.removeprefix("devformance_nb.")
            assert LAYERS.index(layer_of(target)) <= own, (
                f"{name} ({LAYERS[own]}) imports {target} ({layer_of(target)}): upward import"
            )


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_third_party_only_where_allowed(name: str, path: Path) -> None:
    layer = layer_of(name)
    stdlib = sys.stdlib_module_names
    for imported, top in imports(path):
        root = imported.split(".")[0]
        if not top or root in stdlib or root in ("devformance_nb", "__future__"):
            continue
        assert root in allowed_third_party(layer), (
            f"{name} ({layer}) imports {root} at module level; import it lazily or move the code"
        )


def test_layer_map_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from devformance_nb.api import run_tests\n", encoding="utf-8")
    ((target, _),) = imports(bad)
    assert LAYERS.index(layer_of(target.removeprefix("devformance_nb."))) > LAYERS.index("core")


@pytest.mark.parametrize("module", ["devformance_nb", "devformance_nb.plugin"])
def test_package_import_stays_light(module: str) -> None:
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} pulled in: {out.stdout.strip()}"
