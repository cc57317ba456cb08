"""Fixtures of the corpus: one seeded database per child, a session and a raw connection."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.db import Database

# an installed library stand-in (under site-packages: never project code)
sys.path.insert(0, str(Path(__file__).parent / "lib" / "site-packages"))


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """This child's database, created and seeded once."""
    database = Database(tmp_path_factory.mktemp("corpus"))
    database.create()
    yield database
    database.drop()


@pytest.fixture(scope="session")
def engine(db: Database) -> Iterator[Engine]:
    """One engine for every ORM scenario of the child."""
    made = db.engine()
    yield made
    made.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A fresh session (empty identity map) per scenario."""
    with Session(engine) as opened:
        yield opened


@pytest.fixture
def con(db: Database) -> Iterator[Any]:
    """A raw DB-API connection per scenario."""
    opened = db.connect()
    yield opened
    opened.close()
