"""Layers of DESIGN.md, read from the tree: imports go down only, no cycles, a light package.

A module's layer is the folder it lives in (``devformance_nb/<layer>/...``). The root holds
only the package's public entry points (``__init__`` and the ``compare`` alias), which sit
above every layer; nothing inside the package may import them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "devformance_nb"

#: bottom to top: a module may import its own layer and the layers before it
LAYERS = [
    "core",  # events, errors, config, event log, the parent-child contract
    "plugin",  # the pytest plugin inside each child: SQL capture, coverage, collection
    "logic",  # pure logic: fingerprints, detection, discovery, scheduling, import scan
    "run",  # executors, fork server, readers, launcher loop, run state, coverage reading
    "store",  # DuckDB: schema, connection, writer, row builders, ingest
    "api",  # the facade: run_tests, start_run, open_store, ingest
    "analysis",  # questions as DataFrames, run selectors, comparison (read-only)
    "charts",  # DataFrame in, Altair chart out
    "cli",  # text surfaces: the command, terminal view, HTML report, demo history
    "ui",  # notebook surfaces: live view, panes, magic
    "public",  # the package root: public entry points only
]
#: third-party packages a layer may import at module level (each layer may use those below it)
THIRD_PARTY = {
    "core": {"tomli"},
    "plugin": {"pytest", "_pytest", "pluggy"},
    "logic": {"sqlparse"},
    "run": {"coverage"},
    "store": {"duckdb", "pandas"},
    "api": set(),
    "analysis": {"numpy"},
    "charts": {"altair"},
    "cli": {"rich", "watchfiles"},
    "ui": {"ipywidgets", "IPython", "traitlets"},
    "public": set(),
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
    "rich",
    "distributed",
    "dask",
]

Graph = dict[str, list[tuple[str, bool]]]


def layer_of(module: str) -> str:
    """Layer of ``devformance_nb.<module>``: its first folder, or ``public`` at the root."""
    head, _, rest = module.partition(".")
    if head in LAYERS and (rest or (PACKAGE / head).is_dir()):
        return head
    if not rest and (PACKAGE / f"{head}.py").exists():
        return "public"
    raise AssertionError(
        f"devformance_nb.{module} is in no layer folder: move it into one of {LAYERS[:-1]}"
    )


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name under it (a package by its own name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        if name != "__init__" and not name.endswith("__main__"):
            found[name] = path
    return found


def imports(path: Path, known: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in a file.

    ``from devformance_nb.x import y`` is an import of ``devformance_nb.x.y`` when ``x.y``
    is one of the ``known`` modules, else of ``devformance_nb.x``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        top = id(node) in top_level
        if isinstance(node, ast.Import):
            found += [(alias.name, top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            prefix = node.module.removeprefix("devformance_nb").lstrip(".")
            for alias in node.names:
                sub = f"{prefix}.{alias.name}".lstrip(".")
                if node.module.startswith("devformance_nb") and sub in known:
                    found.append((f"devformance_nb.{sub}", top))
                else:
                    found.append((node.module, top))
    return found


def module_graph(package: Path = PACKAGE) -> Graph:
    """Each module's imports of the package's own modules (dotted names under the package)."""
    found = modules(package)
    graph: Graph = {}
    for name, path in found.items():
        edges = []
        for imported, top in imports(path, set(found)):
            target = imported.removeprefix("devformance_nb").lstrip(".")
            known = [t for t, _ in edges]
            if imported.startswith("devformance_nb") and target not in ("", name, *known):
                edges.append((target, top))
        graph[name] = edges
    return graph


def upward_imports(graph: Graph) -> list[str]:
    """Every import of a higher layer (or of the package root), as readable lines."""
    problems = []
    for name, edges in graph.items():
        own = LAYERS.index(layer_of(name))
        for target, _ in edges:
            if LAYERS.index(layer_of(target)) > own:
                problems.append(
                    f"{name} ({LAYERS[own]}) imports {target} ({layer_of(target)}): upward import"
                )
    return problems


def cycles(graph: Graph) -> list[list[str]]:
    """Import cycles (each a list of modules, the first repeated at the end), lazy imports too."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target, _ in graph.get(node, []):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def allowed_third_party(layer: str) -> set[str]:
    index = LAYERS.index(layer)
    return set().union(*(THIRD_PARTY[name] for name in LAYERS[: index + 1]))


GRAPH = module_graph()


@pytest.mark.quick
@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_go_down_only(name: str) -> None:
    assert upward_imports({name: GRAPH[name]}) == []


@pytest.mark.quick
def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.quick
@pytest.mark.parametrize("name", sorted(GRAPH))
def test_third_party_only_where_allowed(name: str) -> None:
    layer = layer_of(name)
    stdlib = sys.stdlib_module_names
    for imported, top in imports(modules()[name]):
        root = imported.split(".")[0]
        if not top or root in stdlib or root in ("devformance_nb", "__future__"):
            continue
        assert root in allowed_third_party(layer), (
            f"{name} ({layer}) imports {root} at module level; import it lazily or move the code"
        )


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    """A copy of the package's folder layout with only ``files`` (path: source) in it."""
    package = tmp_path / "devformance_nb"
    for rel, source in files.items():
        target = package / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    return package


@pytest.mark.quick
def test_a_planted_upward_import_is_caught(tmp_path: Path) -> None:
    package = _plant(
        tmp_path,
        {
            "core/events.py": "from devformance_nb.api.facade import run_tests\n",
            "api/facade.py": "def run_tests(): ...\n",
        },
    )
    assert upward_imports(module_graph(package)) == [
        "core.events (core) imports api.facade (api): upward import"
    ]


@pytest.mark.quick
def test_a_planted_cycle_is_caught_lazy_imports_too(tmp_path: Path) -> None:
    package = _plant(
        tmp_path,
        {
            "run/state.py": "from devformance_nb.run import runcoverage\n",
            "run/runcoverage.py": "def f():\n    from devformance_nb.run.state import RunState\n",
            "run/launcher.py": "from devformance_nb.run import state\n",
        },
    )
    graph = module_graph(package)
    assert upward_imports(graph) == []
    assert cycles(graph) == [["run.state", "run.runcoverage", "run.state"]]


@pytest.mark.quick
def test_a_module_outside_the_layer_folders_is_refused() -> None:
    with pytest.raises(AssertionError, match="in no layer folder"):
        layer_of("widgets.pane")


@pytest.mark.parametrize("module", ["devformance_nb", "devformance_nb.plugin"])
def test_package_import_stays_light(module: str) -> None:
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} pulled in: {out.stdout.strip()}"


@pytest.mark.parametrize("module", ["devformance_nb.api.facade", "devformance_nb.cli.main"])
def test_dask_is_imported_only_when_a_run_uses_it(module: str) -> None:
    names = ("distributed", "dask")
    code = f"import sys, {module}; print(sorted(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import {module} pulled in: {out.stdout.strip()}"


PUBLIC = """
import devformance_nb
from devformance_nb import Run, load_ipython_extension, open_store, run_tests
from devformance_nb import analysis, charts
from devformance_nb.api import start_run
from devformance_nb.compare import compare_runs
from devformance_nb.cli import main
assert callable(run_tests) and callable(open_store) and callable(start_run) and callable(main)
assert callable(analysis.slowest_queries) and callable(charts.slow_query_ranking)
assert callable(compare_runs) and callable(load_ipython_extension) and Run.__name__ == "Run"
import devformance_nb.plugin as plugin
assert callable(plugin.pytest_configure) and callable(plugin.pytest_load_initial_conftests)
"""


def test_public_paths_keep_working() -> None:
    subprocess.run([sys.executable, "-c", PUBLIC], check=True, capture_output=True, text=True)
