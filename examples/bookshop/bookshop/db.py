"""Engine and session factory for a SQLite database file (or ``sqlite://`` in memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from bookshop.models import Base

MEMORY_URL = "sqlite://"


def database_url(target: str | Path) -> str:
    """A SQLAlchemy URL for ``target``: a URL is kept, a path becomes ``sqlite:///PATH``."""
    text = str(target)
    if text.startswith("sqlite:"):
        return text
    return f"sqlite:///{Path(text).resolve()}"


def make_engine(target: str | Path = MEMORY_URL, *, echo: bool = False) -> Engine:
    """An engine on ``target`` with foreign keys enforced and real transactions.

    The sqlite3 module would run DDL outside any transaction (one disk sync per CREATE);
    following SQLAlchemy's pysqlite recipe, the driver's own transaction handling is turned
    off and every SQLAlchemy transaction starts with an explicit BEGIN instead.
    """
    engine = create_engine(database_url(target), echo=echo)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _on_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (no reload on the next access)."""
    return sessionmaker(engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    """Create every table (and index) that does not exist yet."""
    Base.metadata.create_all(engine)


def database_path(engine: Engine) -> Path | None:
    """The database file behind ``engine``, or None for an in-memory database."""
    name = engine.url.database
    if not name or name == ":memory:":
        return None
    return Path(name)
