"""Shared fixtures: every test gets its own seeded SQLite file.

Each size is seeded once per process into a template file; a test gets a copy in its own
``tmp_path``, so tests (and test files running in parallel processes) never share a database.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bookshop.db import create_schema, make_engine, make_session_factory
from bookshop.seed import LARGE, SMALL, SeedSize, build_database


def _template(factory: pytest.TempPathFactory, name: str, size: SeedSize) -> Path:
    path = factory.mktemp(f"template-{name}") / "bookshop.sqlite3"
    build_database(path, size)
    return path


def _copy(template: Path, folder: Path) -> Path:
    path = folder / "bookshop.sqlite3"
    shutil.copyfile(template, path)
    return path


def _open(target: str | Path) -> Iterator[Session]:
    engine = make_engine(target)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def small_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small seeded database, built once per process; never opened by tests."""
    return _template(tmp_path_factory, "small", SMALL)


@pytest.fixture(scope="session")
def large_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The large seeded database, built once per process; never opened by tests."""
    return _template(tmp_path_factory, "large", LARGE)


@pytest.fixture
def db_path(small_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the small seeded database."""
    return _copy(small_template, tmp_path)


@pytest.fixture
def large_db_path(large_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the large seeded database."""
    return _copy(large_template, tmp_path)


@pytest.fixture
def session(db_path: Path) -> Iterator[Session]:
    """A session on this test's small database."""
    yield from _open(db_path)


@pytest.fixture
def large_session(large_db_path: Path) -> Iterator[Session]:
    """A session on this test's large database."""
    yield from _open(large_db_path)


@pytest.fixture
def empty_session(tmp_path: Path) -> Iterator[Session]:
    """A session on a database with the schema but no rows."""
    path = tmp_path / "empty.sqlite3"
    engine = make_engine(path)
    create_schema(engine)
    engine.dispose()
    yield from _open(path)
