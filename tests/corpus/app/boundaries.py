"""Code paths that cross a thread or a greenlet before they reach the database.

``Client`` handles each request in a worker thread while the test waits for the response, as
Starlette's test client and FastAPI's sync endpoints do; the async functions run SQLAlchemy's
asyncio API, whose statements run in a greenlet (and, on SQLite, in aiosqlite's thread).
A ``# site: NAME`` comment marks the line that issues a repeated statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import Author, Book


def author_endpoint(db: Database, con: Any, author_id: int) -> str:
    """GET /authors/ID: one author's name."""
    cur = con.cursor()
    cur.execute(db.sql("SELECT name FROM authors WHERE id = ?"), (author_id,))
    return str(cur.fetchone()[0])


def review_counts_endpoint(db: Database, con: Any, author_id: int) -> dict[int, int]:
    """GET /review_counts/ID: the author's books, then one count per book (N+1)."""
    cur = con.cursor()
    cur.execute(db.sql("SELECT id FROM books WHERE author_id = ? ORDER BY id"), (author_id,))
    out = {}
    count = db.sql("SELECT count(*) FROM reviews WHERE book_id = ?")
    for (book_id,) in cur.fetchall():
        cur.execute(count, (book_id,))  # site: endpoint_reviews
        out[book_id] = cur.fetchone()[0]
    return out


ENDPOINTS: dict[str, Callable[[Database, Any, int], Any]] = {
    "authors": author_endpoint,
    "review_counts": review_counts_endpoint,
}


class Client:
    """A test client: each request runs in a worker thread; the caller waits for it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="worker")

    def get(self, path: str) -> Any:
        """The response to ``GET path`` (``/authors/1``)."""
        return self.pool.submit(self._handle, path).result()

    def _handle(self, path: str) -> Any:
        kind, _, ident = path.strip("/").partition("/")
        con = self.db.connect()
        try:
            return ENDPOINTS[kind](self.db, con, int(ident))
        finally:
            con.close()

    def close(self) -> None:
        """Stop the worker threads."""
        self.pool.shutdown()


async def author_names(db: Database, ids: list[int]) -> list[str]:
    """One awaited query per author (N+1)."""
    engine = db.async_engine()
    try:
        async with AsyncSession(engine) as session:
            out = []
            for author_id in ids:
                query = select(Author.name).where(Author.id == author_id)
                result = await session.execute(query)  # site: async_name
                out.append(result.scalar_one())
            return out
    finally:
        await engine.dispose()


async def two_awaited_lookups(db: Database) -> tuple[str, str]:
    """The same statement awaited on two lines: two call sites, not a loop."""
    engine = db.async_engine()
    try:
        async with AsyncSession(engine) as session:
            first = await session.execute(select(Author.name).where(Author.id == 1))
            second = await session.execute(select(Author.name).where(Author.id == 2))
            return first.scalar_one(), second.scalar_one()
    finally:
        await engine.dispose()


async def titles_selectin(db: Database) -> int:
    """Every book title in one awaited statement."""
    engine = db.async_engine()
    try:
        async with AsyncSession(engine) as session:
            return len((await session.scalars(select(Book.title))).all())
    finally:
        await engine.dispose()


async def _name(engine: Any, author_id: int) -> str:
    """One author's name, in a session of its own (a task's)."""
    async with AsyncSession(engine) as session:
        query = select(Author.name).where(Author.id == author_id)
        return (await session.execute(query)).scalar_one()  # site: task_name


async def names_gathered(db: Database, ids: list[int]) -> list[str]:
    """One task per author, gathered on one line (N+1: the same lookup per author)."""
    engine = db.async_engine()
    try:
        return list(await asyncio.gather(*(_name(engine, i) for i in ids)))
    finally:
        await engine.dispose()


async def two_gathers(db: Database) -> tuple[str, str]:
    """The same lookup in tasks gathered on two lines: two call sites, not a loop."""
    engine = db.async_engine()
    try:
        (first,) = await asyncio.gather(_name(engine, 1))
        second = await asyncio.create_task(_name(engine, 2))
        return first, second
    finally:
        await engine.dispose()
