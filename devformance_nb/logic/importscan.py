"""Which installed libraries a project imports, read from its source without running it.

The fork server uses this when coverage is on: it must not run project code (its
import-time lines would be missed by the children's coverage), but it can import
the third-party libraries the project uses (SQLAlchemy, Django, ...), which is
most of a child's start-up time.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

#: folders never scanned (virtualenvs are recognised by their pyvenv.cfg)
SKIPPED_DIRS = frozenset(
    {"node_modules", "site-packages", "dist-packages", "build", "dist", "__pycache__"}
)
#: test modules are left out: what they import alone is not worth a warm server's memory
TEST_PREFIX, TEST_SUFFIX = "test_", "_test.py"
#: a bound on the scan for very large trees (the first files found are enough)
MAX_FILES = 3000


def installed_imports(root: str | os.PathLike[str]) -> list[str]:
    """Modules the project's non-test code (conftest files included) imports from site-packages.

    Absolute imports only, as written (``sqlalchemy.orm`` for ``from sqlalchemy.orm import
    Session``), sorted; modules that are not installed, or live in the project, are left out.
    """
    names: set[str] = set()
    for path in _sources(Path(root)):
        names |= _imported_names(path)
    return sorted(name for name in names if _installed(name.partition(".")[0]))


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


def _imported_names(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_bytes(), filename=os.fspath(path))
    except (SyntaxError, ValueError, OSError):
        return set()  # pytest reports a broken file; the scan just skips it
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _installed(top: str) -> bool:
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    origin = (spec.origin or "") if spec is not None else ""
    return "site-packages" in origin or "dist-packages" in origin
