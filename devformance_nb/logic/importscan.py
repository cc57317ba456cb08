"""Which installed libraries a project imports, read from its source without running it.

The fork server imports these before it forks (most of a child's start-up time is
importing SQLAlchemy, Django and the like) without running project code: its import-time
lines would be missed by the children's coverage.

Test infrastructure stays out (:func:`server_imports`): a module that imports pytest or
defines pytest hooks, or that the project asks pytest to rewrite
(``pytest.register_assert_rewrite``), and every module of the package it sits in. A fresh
``pytest`` process imports those while it loads plugins and conftest files, in an order
(and through an assertion-rewriting importer) a server that ran no session cannot
reproduce: SQLAlchemy's pytest plugin, imported before the bootstrap of a suite's
conftest, binds to a second copy of its own configuration module, and every test class
then misses its class set-up.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Collection, Iterator
from pathlib import Path

#: folders never scanned (virtualenvs are recognised by their pyvenv.cfg)
SKIPPED_DIRS = frozenset(
    {"node_modules", "site-packages", "dist-packages", "build", "dist", "__pycache__"}
)
#: test modules are left out: what they import alone is not worth a warm server's memory
TEST_PREFIX, TEST_SUFFIX = "test_", "_test.py"
#: a bound on the scan for very large trees (the first files found are enough)
MAX_FILES = 3000
#: pytest itself: every child imports it first, it is never a project's test infrastructure
PYTEST_MODULES = frozenset({"pytest", "_pytest", "pluggy"})
#: a module's own source marks it as test infrastructure: it imports pytest or defines hooks
_INFRASTRUCTURE = re.compile(
    rb"^[ \t]*(?:import[ \t]+_?pytest\b|from[ \t]+_?pytest\b|def[ \t]+pytest_\w+[ \t]*\()",
    re.MULTILINE,
)
#: the biggest module source read for that test (larger files are assumed not to be plugins)
MAX_SOURCE = 2_000_000


def installed_imports(root: str | os.PathLike[str]) -> list[str]:
    """Modules the project's non-test code (conftest files included) imports from site-packages.

    Absolute imports only, as written (``sqlalchemy.orm`` for ``from sqlalchemy.orm import
    Session``), sorted; modules that are not installed, or live in the project, are left out.
    """
    return _project_scan(root)[0]


def _project_scan(root: str | os.PathLike[str]) -> tuple[list[str], set[str]]:
    """(installed modules imported, sorted; modules named in ``register_assert_rewrite``)."""
    names: set[str] = set()
    rewritten: set[str] = set()
    for path in _sources(Path(root)):
        found, marked = _scan(path)
        names |= found
        rewritten |= marked
    return sorted(name for name in names if _installed(name.partition(".")[0])), rewritten


def server_imports(root: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """``(imported, left out)``: the installed modules a fork server may import for the
    project, and those it must leave to each child because they are test infrastructure
    (see the module's docstring), sorted."""
    candidates, rewritten = _project_scan(root)
    fences = {_package_of(name) for name in rewritten}
    fences |= {
        _package_of(name)
        for name in candidates
        if name.partition(".")[0] not in PYTEST_MODULES and _is_infrastructure(name)
    }
    imported: list[str] = []
    left_out: list[str] = []
    for name in candidates:
        fenced = any(name == fence or name.startswith(fence + ".") for fence in fences)
        (left_out if fenced else imported).append(name)
    return imported, left_out


def _package_of(name: str) -> str:
    """The package a module sits in (a top-level module is its own)."""
    return name.rpartition(".")[0] or name


def _is_infrastructure(name: str) -> bool:
    """Whether an installed module's own source imports pytest or defines pytest hooks."""
    path = module_file(name)
    if path is None:
        return False
    try:
        if path.stat().st_size > MAX_SOURCE:
            return False
        return _INFRASTRUCTURE.search(path.read_bytes()) is not None
    except OSError:
        return False


def module_file(name: str) -> Path | None:
    """The source file of module ``name``, found without importing it or its packages."""
    top, _, rest = name.partition(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level lookup runs no module code
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for folder in spec.submodule_search_locations or ():
        base = Path(folder, *rest.split("."))
        for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _sources(root: Path) -> Iterator[Path]:
    found = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in SKIPPED_DIRS
            and not (Path(folder, d) / "pyvenv.cfg").exists()
        ]
        for name in files:
            if (
                not name.endswith(".py")
                or name.startswith(TEST_PREFIX)
                or name.endswith(TEST_SUFFIX)
            ):
                continue
            found += 1
            if found > MAX_FILES:
                return
            yield Path(folder, name)


def _scan(path: Path) -> tuple[set[str], set[str]]:
    """(modules imported, modules named in ``register_assert_rewrite`` calls) of one file."""
    try:
        tree = ast.parse(path.read_bytes(), filename=os.fspath(path))
    except (SyntaxError, ValueError, OSError):
        return set(), set()  # pytest reports a broken file; the scan just skips it
    names: set[str] = set()
    rewritten: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets
        ):  # plugins a conftest names: imported by pytest, as if by an import statement
            names.update(_strings(node.value))
        elif isinstance(node, ast.Call) and _called_name(node.func) in _IMPORT_CALLS:
            # importlib.import_module("pandas"): an import all the same (optional extras)
            names.update(_strings(node.args[0]) if node.args else [])
        elif isinstance(node, ast.Call) and _called_name(node.func) == "register_assert_rewrite":
            rewritten.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return names, rewritten


_IMPORT_CALLS = frozenset({"import_module", "__import__"})


def _strings(node: ast.expr) -> list[str]:
    """The string constants of ``"a"``, ``["a", "b"]`` or ``("a",)``."""
    items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
    return [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]


def uses_controller_hooks(root: str | os.PathLike[str], ignore: Collection[str] = ()) -> bool:
    """Whether anything pytest may load for the project implements pytest-xdist's
    controller-side hooks (``pytest_configure_node``, ``pytest_testnodedown``): its conftest
    files, the installed modules its code and conftest files import, installed pytest plugins.

    Without one, xdist's controller gives a worker only its id, the worker count, the run's
    id and argv, which the launcher can give itself, with no controller process.
    """
    names = [*installed_imports(root), *_entry_point_modules()]
    found = [p for p in _sources(Path(root)) if p.name == "conftest.py"]
    found += [
        f
        for f in map(module_file, (n for n in names if n.partition(".")[0] not in ignore))
        if f is not None
    ]
    return any(_mentions(path, _CONTROLLER_HOOKS) for path in found)


#: the files pytest reads its settings from, at the project root
CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def config_mentions(root: str | os.PathLike[str], text: str) -> bool:
    """Whether any of the project's pytest configuration files contains ``text``."""
    for name in CONFIG_FILES:
        try:
            if text in Path(root, name).read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


_CONTROLLER_HOOKS = re.compile(rb"\bdef[ \t]+pytest_(?:configure_node|testnodedown)\b")


def _entry_point_modules() -> list[str]:
    """Modules of the installed pytest plugins (the ``pytest11`` entry points)."""
    try:
        points = importlib.metadata.entry_points(group="pytest11")
    except Exception:  # a broken distribution's metadata: no plugins known
        return []
    return sorted({point.module for point in points})


def _mentions(path: Path, pattern: re.Pattern[bytes]) -> bool:
    try:
        return path.stat().st_size <= MAX_SOURCE and pattern.search(path.read_bytes()) is not None
    except OSError:
        return False


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _installed(top: str) -> bool:
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    origin = (spec.origin or "") if spec is not None else ""
    return "site-packages" in origin or "dist-packages" in origin
