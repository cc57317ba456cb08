"""Raw DB-API code paths of the library app (``sqlite3``, or ``psycopg`` on a server).

SQL is written with ``?`` placeholders; ``db.sql`` converts it for the driver. A
``# site: NAME`` comment marks the line that issues a repeated statement.
"""

from __future__ import annotations

import threading
from typing import Any

from app.db import TABLES, Database


def titles_per_author(db: Database, con: Any) -> dict[int, list[str]]:
    """One query for the authors, then one per author (N+1)."""
    cur = con.cursor()
    cur.execute("SELECT id FROM authors ORDER BY id")
    sql = db.sql("SELECT title FROM books WHERE author_id = ? ORDER BY id")
    out = {}
    for (author_id,) in cur.fetchall():
        cur.execute(sql, (author_id,))  # site: raw_books
        out[author_id] = [row[0] for row in cur.fetchall()]
    return out


def titles_per_author_joined(con: Any) -> dict[int, list[str]]:
    """The same with one JOIN."""
    cur = con.cursor()
    cur.execute(
        "SELECT a.id, b.title FROM authors a JOIN books b ON b.author_id = a.id ORDER BY a.id, b.id"
    )
    out: dict[int, list[str]] = {}
    for author_id, title in cur.fetchall():
        out.setdefault(author_id, []).append(title)
    return out


def titles_in_list(db: Database, con: Any, author_ids: list[int]) -> list[str]:
    """Titles of several authors with one ``IN (...)`` query."""
    marks = ", ".join("?" for _ in author_ids)
    cur = con.cursor()
    sql = db.sql(f"SELECT title FROM books WHERE author_id IN ({marks}) ORDER BY id")
    cur.execute(sql, author_ids)
    return [row[0] for row in cur.fetchall()]


def titles_inlined(con: Any) -> dict[int, int]:
    """Literal ids inlined into the SQL text: every text differs, the shape is the same."""
    cur = con.cursor()
    out = {}
    for author_id in (1, 2, 3, 4):
        sql = f"SELECT count(*) FROM books WHERE author_id = {author_id}"
        cur.execute(sql)  # site: raw_inlined
        out[author_id] = cur.fetchone()[0]
    return out


def row_counts(con: Any) -> dict[str, int]:
    """A loop with a different statement (table) each time."""
    cur = con.cursor()
    counts = {}
    for table in TABLES:
        cur.execute(f"SELECT count(*) FROM {table}")
        counts[table] = cur.fetchone()[0]
    return counts


def author_name(db: Database, con: Any, author_id: int) -> str:
    """One author's name."""
    cur = con.cursor()
    cur.execute(db.sql("SELECT name FROM authors WHERE id = ?"), (author_id,))  # site: raw_name
    return str(cur.fetchone()[0])


def review_stars(db: Database, con: Any, book_id: int) -> list[int]:
    """The stars of one book's reviews (called per book by the helpers below)."""
    cur = con.cursor()
    sql = db.sql("SELECT stars FROM reviews WHERE book_id = ? ORDER BY id")
    cur.execute(sql, (book_id,))
    return [row[0] for row in cur.fetchall()]


def average_stars(db: Database, con: Any) -> dict[int, float]:
    """Average stars per reviewed book, through a per-book helper (N+1 two calls deep)."""
    got = _reviewed(con)
    return {b: _average(review_stars(db, con, b)) for b in got}  # site: raw_stars (in dictcomp)


def _reviewed(con: Any) -> list[int]:
    cur = con.cursor()
    cur.execute("SELECT DISTINCT book_id FROM reviews ORDER BY book_id")
    return [row[0] for row in cur.fetchall()]


def _average(values: list[int]) -> float:
    return sum(values) / len(values)


def pages(db: Database, con: Any, size: int) -> list[list[str]]:
    """Every title, a page at a time (LIMIT/OFFSET) until a page comes back empty."""
    cur = con.cursor()
    out: list[list[str]] = []
    while True:
        sql = db.sql("SELECT title FROM books ORDER BY id LIMIT ? OFFSET ?")
        cur.execute(sql, (size, len(out) * size))
        page = [row[0] for row in cur.fetchall()]
        if not page:
            return out
        out.append(page)


def add_tags(db: Database, con: Any, names: list[str]) -> int:
    """Create a table and fill it with one ``executemany`` (one statement event)."""
    cur = con.cursor()
    cur.execute("CREATE TABLE tags (name VARCHAR(20))")
    cur.executemany(db.sql("INSERT INTO tags VALUES (?)"), [(n,) for n in names])
    cur.execute("SELECT count(*) FROM tags")
    found = int(cur.fetchone()[0])
    cur.execute("DROP TABLE tags")
    con.commit()
    return found


def shift_stars(db: Database, con: Any, book_ids: list[int], delta: int) -> None:
    """One UPDATE per book from one line (writes: never an N+1)."""
    cur = con.cursor()
    sql = db.sql("UPDATE reviews SET stars = stars + ? WHERE book_id = ?")
    for book_id in book_ids:
        cur.execute(sql, (delta, book_id))
    con.commit()


def tables_present(db: Database, con: Any) -> list[str]:
    """Ask the database's own catalog for each table (catalog lookups are never N+1)."""
    cur = con.cursor()
    found = []
    for table in TABLES:
        cur.execute(db.catalog_lookup(), (table,))
        found += [row[0] for row in cur.fetchall()]
    return found


def names_in_threads(db: Database, ids: list[int]) -> list[str]:
    """Each author's name looked up by a thread of its own, each with its own connection."""
    names: dict[int, str] = {}

    def look_up(author_id: int) -> None:
        con = db.connect()
        try:
            names[author_id] = author_name(db, con, author_id)
        finally:
            con.close()

    threads = [threading.Thread(target=look_up, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [names[i] for i in ids]


def shouted_names(db: Database, con: Any) -> list[str]:
    """A SELECT that reads no table, once per row (the database as a calculator)."""
    cur = con.cursor()
    cur.execute("SELECT name FROM authors ORDER BY id")
    out = []
    for (name,) in cur.fetchall():
        cur.execute(db.sql("SELECT upper(?)"), (name,))
        out.append(str(cur.fetchone()[0]))
    return out


class Gateway:
    """A database helper: every statement of the app goes through ``one``."""

    def __init__(self, db: Database, con: Any) -> None:
        self.db, self.con = db, con

    def one(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first column of the first row of ``sql``."""
        cur = self.con.cursor()
        cur.execute(self.db.sql(sql), params)
        return cur.fetchone()[0]


def country_of_each_book(gateway: Gateway) -> dict[int, str]:
    """Each book's author's country through the helper, one lookup per book (N+1)."""
    out = {}
    for book_id in range(1, 5):
        sql = "SELECT country FROM authors a JOIN books b ON b.author_id = a.id WHERE b.id = ?"
        out[book_id] = gateway.one(sql, (book_id,))  # site: helper_loop
    return out
