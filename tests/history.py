"""The store of the analysis tests: the bookshop demo's history, built the way Binder builds it.

``binder/postBuild`` runs once per test session (into the session's temp folder,
not the repository): four real runs of a copy of the demo, with the changes of
``devformance_nb.cli.demo_history.STEPS`` in between. Every test module that needs
the store calls ``shared_history``; the first call builds it, later ones read
the manifest it left.

The children of those runs load ``tests/plugins/devformance_slowfloor.py`` and the runs use
its threshold: the planted slow statements then take seconds and every other statement stays
far under the threshold on any machine, idle or loaded (see that module).

``Facts`` holds what the tests expect, taken from ``planted.json``, the demo's
README and the steps' own edits, never from the store.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from plugins import devformance_slowfloor as slowfloor  # its threshold; loads nothing here

from devformance_nb.cli.demo_history import FLAG, History

REPO = Path(__file__).resolve().parent.parent
#: plugins loaded into the children of the history's runs
PLUGINS = Path(__file__).resolve().parent / "plugins"
BOOKSHOP = REPO / "examples" / "bookshop"
PLANTED: dict[str, Any] = json.loads((BOOKSHOP / "planted.json").read_text(encoding="utf-8"))
STEPS = ("baseline", "fix", "regress", "flaky")
#: the tests whose statements each step's edit changes, against the step before (which
#: statements: tests/test_statements.py): the book listings load their authors with a join,
#: then the author pages load their books one author at a time
CHANGED_TESTS = {
    "fix": (
        "tests/services/test_catalog.py::test_list_books_shows_each_books_author",
        "tests/services/test_catalog.py::test_one_book_of_a_genre_loads_one_author",
    ),
    "regress": (
        "tests/api/test_catalog.py::test_authors_with_their_titles",
        "tests/services/test_authors.py::test_eager_author_pages_of_one_country",
    ),
}


def postbuild_env(base: Path) -> dict[str, str]:
    """postBuild's environment: every output under ``base``, this interpreter first on PATH."""
    return {
        **os.environ,
        "PATH": os.pathsep.join([os.fspath(Path(sys.executable).parent), os.environ["PATH"]]),
        "HOME": os.fspath(base / "home"),
        "JUPYTER_CONFIG_DIR": os.fspath(base / "jupyter"),
        "DEVFORMANCE_DB": os.fspath(base / "demo.duckdb"),
        "DEVFORMANCE_DEMO_WORKDIR": os.fspath(base / "work"),
        "DEVFORMANCE_DEMO_MANIFEST": os.fspath(base / "manifest.json"),
    }


def slow_floor_env() -> dict[str, str]:
    """The history runs' extra environment: the slow-floor plugin in every child, its threshold."""
    addopts = os.environ.get("PYTEST_ADDOPTS", "")
    return {
        "PYTHONPATH": os.pathsep.join(
            p for p in (os.fspath(PLUGINS), os.environ.get("PYTHONPATH", "")) if p
        ),
        "PYTEST_ADDOPTS": f"{addopts} -p devformance_slowfloor".strip(),
        "DEVFORMANCE_DEMO_SLOW_QUERY_MS": f"{slowfloor.THRESHOLD_MS:g}",
    }


def shared_history(factory: pytest.TempPathFactory) -> History:
    """The session's history (built by ``binder/postBuild`` on first use)."""
    base = factory.getbasetemp() / "demo-history"
    manifest, failed = base / "manifest.json", base / "failed.txt"
    if failed.exists():
        pytest.fail(f"binder/postBuild failed earlier in this session:\n{failed.read_text()}")
    if not manifest.exists():
        base.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["bash", os.fspath(REPO / "binder" / "postBuild")],
            env={**postbuild_env(base), **slow_floor_env()},
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
        (base / "postbuild.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        if proc.returncode != 0 or not manifest.exists():
            failed.write_text(proc.stdout[-3000:] + proc.stderr[-3000:], encoding="utf-8")
            pytest.fail(f"binder/postBuild failed:\n{failed.read_text()}")
    return History.from_dict(json.loads(manifest.read_text(encoding="utf-8")))


def line_of(path: Path, text: str) -> int:
    """The 1-based line of ``path`` holding ``text`` (exactly one)."""
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, (path, text, lines)
    return lines[0]


@dataclass(frozen=True)
class Facts:
    """What the history must contain, from the planted problems and the steps' edits."""

    history: History

    def run(self, step: str) -> str:
        return self.history.run_id(step)

    @property
    def ids(self) -> list[str]:
        return [self.run(step) for step in STEPS]

    @property
    def baseline_tests(self) -> int:
        """The demo README's own count ("83 tests in 13 files")."""
        readme = (BOOKSHOP / "README.md").read_text(encoding="utf-8")
        match = re.search(r"(\d+) tests in (\d+) files", readme)
        assert match
        return int(match.group(1))

    @property
    def baseline_files(self) -> int:
        return len(list((BOOKSHOP / "tests").rglob("test_*.py")))

    @property
    def project(self) -> Path:
        return self.history.project

    def n_plus_one(self, table: str, function: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [
            p for p in PLANTED["n_plus_one"] if p["table"] == table and p["function"] == function
        ]
        assert len(found) == 1, (table, function)
        return found[0]

    @property
    def fixed_n_plus_one(self) -> dict[str, Any]:
        """The planted N+1 that the ``fix`` step removes (``catalog.list_books``)."""
        return self.n_plus_one("authors", "list_books")

    @property
    def new_n_plus_one_caller(self) -> str:
        """Where the ``regress`` step runs the authors' query whose rows its loop then loads
        ``author.books`` for, one by one (a lazy load's line to change: the line above the
        one touching the relation)."""
        path = self.project / "bookshop" / "services" / "authors.py"
        line = line_of(path, "pages.append(_page(author, author.books))") - 1
        return f"bookshop/services/authors.py:{line} author_pages_eager"

    @property
    def new_slow_caller(self) -> str:
        path = self.project / "bookshop" / "reports.py"
        return (
            f"bookshop/reports.py:{line_of(path, 'STOCK_REORDER_SQL, (limit,)')} stock_reorder_list"
        )

    @staticmethod
    def caller(planted: dict[str, Any]) -> str:
        return f"{planted['module']}:{planted['line']} {planted['function']}"

    @staticmethod
    def site(planted: dict[str, Any]) -> str:
        return f"{planted['module']} {planted['function']}"

    @property
    def main_branch(self) -> str:
        """The branch of the history's first runs (``flaky`` runs on another)."""
        return str(self.history.runs[0].git_branch)

    planted = PLANTED
    steps = STEPS
    changed_tests = CHANGED_TESTS
    postbuild_env = staticmethod(postbuild_env)
    flaky_test = "tests/test_housekeeping.py::test_no_maintenance_flag"
    stock_test_file = "tests/api/test_stock.py"
    flag = FLAG


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """The bookshop history (see ``shared_history``)."""
    return shared_history(tmp_path_factory)


@pytest.fixture(scope="session")
def facts(history: History) -> Facts:
    """Expectations about that history."""
    return Facts(history)


@pytest.fixture(scope="session")
def db(history: History) -> Path:
    """The history's DuckDB file."""
    return history.db
