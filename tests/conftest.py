"""Shared fixtures: small generated pytest projects on disk."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pgcluster
import pytest

REPO = Path(__file__).resolve().parent.parent
BOOKSHOP = REPO / "examples" / "bookshop"
#: the N+1 corpus is a project of its own, run by test_corpus.py: never collected here
collect_ignore = ["corpus"]
LIBRARY_DJANGO = REPO / "examples" / "library_django"

MakeProject = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Write ``{relative path: source}`` under a fresh project folder and return its root.

    The project gets a pyproject.toml (so it is its own root) unless one is given.
    """

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        files = {"pyproject.toml": "[tool.pytest.ini_options]\n", **files}
        for rel, source in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source), encoding="utf-8")
        return root

    return make


@pytest.fixture
def in_dir(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Change the working directory for one test."""

    def chdir(path: Path) -> None:
        monkeypatch.chdir(os.fspath(path))

    return chdir


@pytest.fixture(params=["spawn", "forkserver"])
def executor(request: pytest.FixtureRequest) -> str:
    """Each real-run test runs with both executors."""
    return str(request.param)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL server's DSN: ``DEVFORMANCE_PG_DSN``, else a throwaway cluster.

    The cluster is started from the server's binaries (Debian's ``postgresql`` package) and
    removed at the end of the session. Without both, tests that need PostgreSQL fail with
    what to install or set; they never skip.
    """
    configured = os.environ.get(pgcluster.ENV_DSN)
    if configured:
        yield configured
        return
    if pgcluster.find_bindir() is None:
        pytest.fail(pgcluster.INSTALL_HINT, pytrace=False)
    folder = pgcluster.temporary_folder()
    try:
        dsn = pgcluster.start(folder)
    except pgcluster.ClusterError as exc:
        pgcluster.stop(folder)
        pytest.fail(f"could not start a PostgreSQL cluster: {exc}\n{pgcluster.INSTALL_HINT}")
    try:
        yield dsn
    finally:
        pgcluster.stop(folder)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m quick``, do not even import a test module that holds no quick test.

    Importing the heavy modules (Altair, Django, Playwright, notebooks) costs seconds each;
    deselecting their tests afterwards would still pay it on every inner-loop run.
    """
    if config.getoption("markexpr") != "quick":
        return None
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return "mark.quick" not in collection_path.read_text(encoding="utf-8") or None
