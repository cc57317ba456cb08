"""SQL capture through SQLAlchemy 2: ORM statements tagged, counted once, N+1 visible."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter, read_events
from devformance_nb.plugin import TestContext
from devformance_nb.plugin.capture import Capture, start_capture
from devformance_nb.plugin.capture.sqla import STARTED, SQLAlchemyAdapter

REPO = Path(__file__).resolve().parent.parent
HERE = "tests/test_capture_sqlalchemy.py"


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(back_populates="author")  # lazy="select"


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


class Capturing:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = EventWriter(path, "run-1", HERE)
        self.context = TestContext()
        self.context.nodeid, self.context.phase = f"{HERE}::case", "call"
        self.capture: Capture = start_capture(
            self.writer, self.context, ChildOptions(root=str(REPO))
        )

    def queries(self) -> list[ev.Query]:
        self.capture.stop()
        self.writer.close()
        return [e for e in read_events(self.path) if isinstance(e, ev.Query)]


@pytest.fixture
def cap(tmp_path: Path) -> Iterator[Capturing]:
    capturing = Capturing(tmp_path / "events.jsonl")
    yield capturing
    capturing.capture.stop()
    capturing.writer.close()


def traced_engine(path: Path, trace: list[str]) -> Engine:
    """A file database on one connection whose every statement SQLite traces."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, check_same_thread=False)
        connection.set_trace_callback(trace.append)
        return connection

    return create_engine("sqlite://", creator=connect, poolclass=StaticPool)


def next_line() -> int:
    return sys._getframe(1).f_lineno + 1


def seed(engine: Engine, authors: int = 4) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for i in range(authors):
            session.add(Author(name=f"a{i}", books=[Book(title=f"b{i}")]))
        session.commit()


def test_lazy_loads_in_a_loop_are_one_call_site(cap: Capturing, tmp_path: Path) -> None:
    trace: list[str] = []
    engine = traced_engine(tmp_path / "shop.db", trace)
    seed(engine)
    cap.context.phase = "setup"
    titles = []
    with Session(engine) as session:
        authors = session.scalars(select(Author).order_by(Author.id)).all()
        loop_line = next_line() + 1
        for author in authors:
            titles += [book.title for book in author.books]  # a lazy SELECT per author
    assert titles == ["b0", "b1", "b2", "b3"]
    queries = cap.queries()
    # ground truth: SQLite's own trace, less the BEGINs the sqlite3 module issues in C and
    # the extra runs of each executemany (one event per executemany)
    extra_runs = sum(max((q.rows or 1) - 1, 0) for q in queries if q.many)
    implicit = [t for t in trace if t.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert len(queries) == len(trace) - len(implicit) - extra_runs
    lazy = [q for q in queries if q.phase == "setup" and "WHERE ? = books.author_id" in q.sql]
    assert len(lazy) == 4
    assert {q.caller for q in lazy} == {
        f"{HERE}:{loop_line} test_lazy_loads_in_a_loop_are_one_call_site"
    }
    assert len({q.stack_hash for q in lazy}) == 1
    assert all(q.orm == "sqlalchemy" and q.alias == "shop.db" for q in lazy)
    assert all(q.rows is None for q in lazy)  # SELECT rows are not fetched by the capture


def test_every_statement_once_and_tagged(cap: Capturing, tmp_path: Path) -> None:
    trace: list[str] = []
    engine = traced_engine(tmp_path / "shop.db", trace)
    seed(engine, authors=2)
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM books")).scalar_one()
    queries = cap.queries()
    texts = [q.sql for q in queries]
    assert texts.count("SELECT count(*) FROM books") == 1
    # only SQLAlchemy's own first-connect probe runs without its execute events
    untagged = [q.sql for q in queries if q.orm != "sqlalchemy"]
    assert untagged == ["PRAGMA read_uncommitted"]
    assert any(q.sql.strip().startswith("CREATE TABLE authors") for q in queries)


def test_aiosqlite_statements_are_recorded_once_with_the_awaiting_line(
    cap: Capturing, tmp_path: Path
) -> None:
    # SQLAlchemy's asyncio API runs the statement in a greenlet, aiosqlite runs it in a thread
    # of its own: one event, tagged, whose caller is the line that awaited it
    from sqlalchemy.ext.asyncio import create_async_engine

    cap.context.floor = sys._getframe()  # as the plugin's phase hook sets it
    lines: list[int] = []

    async def count_twice() -> list[int]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE books (id INTEGER)"))
            lines.append(next_line())
            first = (await conn.execute(text("SELECT count(*) FROM books"))).scalar_one()
            lines.append(next_line())
            second = (await conn.execute(text("SELECT count(*) FROM books"))).scalar_one()
        await engine.dispose()
        return [first, second]

    assert asyncio.run(count_twice()) == [0, 0]
    counts = [q for q in cap.queries() if q.sql == "SELECT count(*) FROM books"]
    assert [q.caller for q in counts] == [
        f"{HERE}:{line} test_aiosqlite_statements_are_recorded_once_with_the_awaiting_line."
        "<locals>.count_twice"
        for line in lines
    ]
    assert all(q.orm == "sqlalchemy" for q in counts)
    assert counts[0].stack_hash != counts[1].stack_hash


def test_core_executemany_is_one_event_with_rowcount(cap: Capturing) -> None:
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("x", Integer))
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(insert(table), [{"x": i} for i in range(25)])
    (many,) = [q for q in cap.queries() if q.many]
    assert many.sql == "INSERT INTO t (x) VALUES (?)"
    assert (many.rows, many.orm, many.alias) == (25, "sqlalchemy", ":memory:")


def test_reflection_pragmas_are_recorded(cap: Capturing) -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE shelf (id INTEGER PRIMARY KEY)"))
        assert inspect(conn).get_columns("shelf")[0]["name"] == "id"
    pragmas = [q for q in cap.queries() if q.sql.startswith("PRAGMA") and "shelf" in q.sql]
    assert pragmas and all(q.orm == "sqlalchemy" for q in pragmas)


def test_a_failing_statement_is_recorded_once(cap: Capturing) -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        with pytest.raises(OperationalError):
            conn.execute(text("SELECT * FROM missing"))
        conn.exec_driver_sql("SELECT 1")
    queries = cap.queries()
    failed = [q for q in queries if q.sql == "SELECT * FROM missing"]
    assert [(q.rows, q.orm) for q in failed] == [(None, "sqlalchemy")]
    assert [q.orm for q in queries if q.sql == "SELECT 1"] == ["sqlalchemy"]


def plain_engine() -> Engine:
    """An engine whose connections were not opened through the patched connect (no adapter)."""
    return create_engine(
        "sqlite://",
        creator=lambda: sqlite3.Connection(":memory:", check_same_thread=False),
        poolclass=StaticPool,
    )


def test_cursors_without_an_adapter_are_recorded_by_sqlalchemy(cap: Capturing) -> None:
    engine = plain_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
        line = next_line()
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(OperationalError):
            conn.exec_driver_sql("SELECT nope FROM t")
    queries = {q.sql: q for q in cap.queries()}
    inserted = queries["INSERT INTO t VALUES (1)"]
    assert (inserted.vendor, inserted.alias, inserted.orm, inserted.rows) == (
        "sqlite",
        ":memory:",
        "sqlalchemy",
        1,
    )
    assert (
        inserted.caller
        == f"{HERE}:{line} test_cursors_without_an_adapter_are_recorded_by_sqlalchemy"
    )
    assert queries["SELECT nope FROM t"].rows is None


def test_nested_executions_keep_their_own_timings(cap: Capturing) -> None:
    outer, inner = plain_engine(), plain_engine()

    def audit(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT 'outer'"):
            with inner.connect() as other:
                other.exec_driver_sql("SELECT 'inner'")

    event.listen(outer, "before_cursor_execute", audit)
    with outer.connect() as conn:
        conn.exec_driver_sql("SELECT 'outer'")
        context = conn.exec_driver_sql("SELECT 2").context
    assert getattr(context, STARTED) is None  # nothing left behind on the context
    queries = {q.sql: q for q in cap.queries()}
    assert queries["SELECT 'outer'"].duration >= queries["SELECT 'inner'"].duration
    assert queries["SELECT 'outer'"].qseq > queries["SELECT 'inner'"].qseq


def test_engines_made_before_capture_are_captured(tmp_path: Path) -> None:
    engine = plain_engine()
    with engine.connect() as conn:  # its connection opened before capture: unclaimed
        conn.exec_driver_sql("SELECT 4")
    capturing = Capturing(tmp_path / "events.jsonl")
    (adapter,) = [a for a in capturing.capture.installed if isinstance(a, SQLAlchemyAdapter)]
    assert not event.contains(Engine, "before_cursor_execute", adapter._before)
    with engine.connect() as conn:  # checked out again: the engine listeners go on first
        assert event.contains(Engine, "before_cursor_execute", adapter._before)
        conn.exec_driver_sql("SELECT 5")
    assert [q.sql for q in capturing.queries()] == ["SELECT 5"]  # stops the capture
    assert not event.contains(Engine, "before_cursor_execute", adapter._before)
    assert not event.contains(Engine, "after_cursor_execute", adapter._after)
    assert not event.contains(Engine, "handle_error", adapter._error)


IMPORTED_LATE = """
import json, sqlite3, sys
from devformance_nb.plugin.capture import start_capture
from devformance_nb.core.eventlog import EventWriter, read_events
from devformance_nb.core.contract import ChildOptions
from devformance_nb.plugin import TestContext

writer = EventWriter(sys.argv[1], "r", "f")
context = TestContext()
context.nodeid, context.phase = "late", "call"
capture = start_capture(writer, context, ChildOptions(root=sys.argv[2]))
from sqlalchemy import create_engine, event, text  # imported after capture started
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
(adapter,) = capture.installed[1:]
listening = lambda: event.contains(Engine, "before_cursor_execute", adapter._before)
engine = create_engine("sqlite://")
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE t (x)"))
    conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": 1}, {"x": 2}])
    conn.execute(text("SELECT x FROM t")).all()
claimed_only = listening()
plain = create_engine(
    "sqlite://",
    creator=lambda: sqlite3.Connection(":memory:", check_same_thread=False),
    poolclass=StaticPool,
)
with plain.connect() as conn:
    conn.exec_driver_sql("SELECT 'plain'")
unclaimed_seen = listening()
capture.stop()
writer.close()
queries = [e for e in read_events(sys.argv[1]) if e.kind == "query"]
print(json.dumps({
    "claimed_only": claimed_only,
    "unclaimed_seen": unclaimed_seen,
    "listening_after_stop": listening(),
    "queries": [[q.sql, q.orm, q.many] for q in queries],
}))
"""


def test_claimed_connections_need_no_engine_listeners(tmp_path: Path) -> None:
    """Claimed cursors only: no Engine listener (SQLAlchemy's event path costs every statement
    some microseconds), yet every statement SQLAlchemy sends is tagged; the first checkout of
    an unclaimed DB-API connection puts the listeners in place, before its first statement.
    (In a child of its own: SQLAlchemy imported after capture started, as in a spawned child.)
    """
    out = subprocess.run(
        [sys.executable, "-c", IMPORTED_LATE, str(tmp_path / "events.jsonl"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert (result["claimed_only"], result["unclaimed_seen"]) == (False, True)
    assert result["listening_after_stop"] is False
    assert result["queries"] == [
        ["PRAGMA read_uncommitted", "", False],  # the dialect's own probe, on the cursor
        ["CREATE TABLE t (x)", "sqlalchemy", False],
        ["INSERT INTO t VALUES (?)", "sqlalchemy", True],
        ["SELECT x FROM t", "sqlalchemy", False],
        ["SELECT 'plain'", "sqlalchemy", False],
    ]
