"""The database a corpus child runs on: SQLite by default, or a server named by a URL.

``CORPUS_DB_URL`` (a SQLAlchemy URL such as ``postgresql+psycopg://user@host/db``) switches
the corpus to that server; each child then works in a schema of its own, dropped at the end.
Without it, each child gets its own SQLite file. Raw scenarios use the driver's own DB-API
connection (``sqlite3`` or ``psycopg``); their SQL is written with ``?`` placeholders and
converted for drivers that want ``%s``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.models import Base

URL_ENV = "CORPUS_DB_URL"

AUTHORS = [(1, "Ann", "FR"), (2, "Bob", "FR"), (3, "Cid", "UK"), (4, "Dee", "US")]
#: two books per author: books 1-2 by author 1, 3-4 by author 2, ...
BOOKS = [(i, f"Book {i}", "novel" if i % 2 else "essay", (i + 1) // 2) for i in range(1, 9)]
#: reviews of books 1, 2, 3 and 5 only
REVIEWS = [(1, 5, 1), (2, 4, 1), (3, 3, 1), (4, 5, 2), (5, 2, 3), (6, 4, 3), (7, 1, 5)]
TABLES = ("authors", "books", "reviews")


class Database:
    """One child's database: an engine for the ORM, DB-API connections for raw SQL."""

    def __init__(self, folder: Path) -> None:
        configured = os.environ.get(URL_ENV, "")
        if configured:
            self.url = make_url(configured)
            self.vendor = self.url.get_backend_name()
            self.schema: str | None = f"corpus_{os.getpid()}_{secrets.token_hex(3)}"
        else:
            self.url = make_url(f"sqlite:///{folder / 'corpus.sqlite3'}")
            self.vendor = "sqlite"
            self.schema = None

    def engine(self) -> Engine:
        """A new engine on this database (in this child's schema)."""
        if self.schema is None:
            return create_engine(self.url)
        options = {"options": f"-csearch_path={self.schema}"}
        return create_engine(self.url, connect_args=options)

    def async_engine(self) -> AsyncEngine:
        """A new asyncio engine on this database: aiosqlite, or psycopg's async API."""
        if self.schema is None:
            return create_async_engine(self.url.set(drivername="sqlite+aiosqlite"))
        url = self.url.set(drivername="postgresql+psycopg_async")
        return create_async_engine(url, connect_args={"options": f"-csearch_path={self.schema}"})

    def connect(self) -> Any:
        """A new DB-API connection (autocommit on a server, sqlite3's default otherwise)."""
        if self.schema is None:
            return sqlite3.connect(self.url.database or ":memory:")
        import psycopg

        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(dsn, options=f"-csearch_path={self.schema}", autocommit=True)

    def sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders in this driver's paramstyle."""
        return text if self.schema is None else text.replace("?", "%s")

    def catalog_lookup(self) -> str:
        """A query of the database's own catalog for one table name (one ``?``)."""
        if self.schema is None:
            return "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?"
        # this child's schema only: other children's schemas hold the same table names
        return self.sql(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name = ?"
        )

    def create(self) -> None:
        """Create the schema (on a server) and the tables, and load the seed rows."""
        if self.schema is not None:
            with self.connect() as con:
                con.execute(f"CREATE SCHEMA {self.schema}")
        engine = self.engine()
        Base.metadata.create_all(engine)
        engine.dispose()
        con = self.connect()
        try:
            cur = con.cursor()
            cur.executemany(self.sql("INSERT INTO authors VALUES (?, ?, ?)"), AUTHORS)
            cur.executemany(self.sql("INSERT INTO books VALUES (?, ?, ?, ?)"), BOOKS)
            cur.executemany(self.sql("INSERT INTO reviews VALUES (?, ?, ?)"), REVIEWS)
            con.commit()
        finally:
            con.close()

    def drop(self) -> None:
        """Drop this child's schema (a SQLite file goes with its temporary folder)."""
        if self.schema is not None:
            with self.connect() as con:
                con.execute(f"DROP SCHEMA {self.schema} CASCADE")


def books_of(author_id: int) -> list[int]:
    """The seeded ids of an author's books."""
    return [book[0] for book in BOOKS if book[3] == author_id]
