"""SQL capture of psycopg 3 and psycopg2 on a real PostgreSQL, checked against libpq's trace."""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest
from psycopg import pq, sql
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter, read_events
from devformance_nb.plugin import TestContext
from devformance_nb.plugin.capture import Capture, start_capture
from devformance_nb.plugin.capture import pg2 as pg2_adapter
from devformance_nb.plugin.capture import pg3 as pg3_adapter

REPO = Path(__file__).resolve().parent.parent
HERE = "tests/test_capture_postgres.py"
#: a statement the client sent: a simple Query, or the Parse of an extended-protocol one
WIRE = re.compile(r'^F\t\d+\t(?:Query\t "(?P<query>.*)"|Parse\t "[^"]*" "(?P<parse>.*)" \d+)')


class Recording:
    """One capture on its own events file, read back as Query events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = EventWriter(path, "run-1", HERE)
        self.context = TestContext()
        self.context.nodeid, self.context.phase = f"{HERE}::case", "call"
        self.capture: Capture = start_capture(
            self.writer, self.context, ChildOptions(root=str(REPO))
        )

    def queries(self) -> list[ev.Query]:
        """Stop capturing and return the Query events written."""
        self.capture.stop()
        self.writer.close()
        return [e for e in read_events(self.path) if isinstance(e, ev.Query)]


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Callable[[], Recording]]:
    made: list[Recording] = []

    def start() -> Recording:
        made.append(Recording(tmp_path / f"events-{len(made)}.jsonl"))
        return made[-1]

    yield start
    for recording in made:
        recording.capture.stop()
        recording.writer.close()


class Trace:
    """libpq's own trace of what a psycopg 3 connection sends: the independent truth."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.file = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by statements())
        connection.pgconn.trace(self.file.fileno())
        connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def statements(self) -> list[str]:
        """Statement texts sent so far, with ``$n`` placeholders written back as ``%s``."""
        self.connection.pgconn.untrace()
        with self.file:
            self.file.seek(0)
            lines = self.file.read().splitlines()
        found = []
        for line in lines:
            match = WIRE.match(line)
            if match:
                found.append(re.sub(r"\$\d+", "%s", match.group("query") or match.group("parse")))
        return found


def test_psycopg_one_event_per_statement_the_client_sends(
    record: Callable[[], Recording], pg_dsn: str
) -> None:
    rec = record()
    con = psycopg.connect(pg_dsn, prepare_threshold=None)
    trace = Trace(con)
    con.execute("CREATE TEMP TABLE t (id serial PRIMARY KEY, name text)")
    cur = con.cursor()
    for i in range(5):
        cur.execute("INSERT INTO t (name) VALUES (%s)", (f"n{i}",))
    cur.execute("UPDATE t SET name = 'x' WHERE id > 3")
    assert len(con.execute("SELECT id, name FROM t").fetchall()) == 5
    con.commit()
    cur.execute("DELETE FROM t WHERE id = %s", (1,))
    con.rollback()
    sent = trace.statements()
    # executemany: one event (libpq sends one Parse per parameter set here)
    cur.executemany("INSERT INTO t (name) VALUES (%s)", [("a",), ("b",)])
    queries = rec.queries()
    # psycopg's own BEGIN/COMMIT/ROLLBACK (autocommit off) are below the DB-API: not ours
    assert [q.sql for q in queries[:-1]] == [
        s for s in sent if s not in ("BEGIN", "COMMIT", "ROLLBACK")
    ]
    assert len(queries) == 10
    assert [(q.rows, q.many) for q in queries[5:]] == [
        (1, False),
        (2, False),
        (5, False),
        (1, False),
        (2, True),
    ]
    assert all(q.vendor == "postgresql" and q.alias == "postgres" and q.orm == "" for q in queries)
    assert all(q.caller.startswith(f"{HERE}:") and q.duration > 0 for q in queries)


def test_psycopg_composed_and_bytes_statements_are_text(
    record: Callable[[], Recording], pg_dsn: str
) -> None:
    rec = record()
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(sql.SQL("SELECT {} AS {}").format(sql.Literal(7), sql.Identifier("seven")))
        con.execute(b"SELECT 8")
    assert [q.sql for q in rec.queries()] == ['SELECT 7 AS "seven"', "SELECT 8"]


def test_psycopg_named_cursors_own_factories_and_failures(
    record: Callable[[], Recording], pg_dsn: str
) -> None:
    rec = record()

    class Mine(psycopg.ClientCursor[Any]):
        marker = "mine"

    with psycopg.connect(pg_dsn, cursor_factory=Mine) as con:
        cur = con.cursor()
        assert isinstance(cur, Mine) and cur.marker == "mine"
        cur.execute("SELECT %s", (1,))
        with con.cursor(name="walk") as named:
            named.execute("SELECT generate_series(1, 3)")
            assert len(named.fetchall()) == 3
        with pytest.raises(psycopg.errors.SyntaxError):
            cur.execute("SELEC nonsense")
    queries = rec.queries()
    assert [(q.sql, q.rows) for q in queries] == [
        ("SELECT %s", 1),  # the text as written, not the one with values bound
        ("SELECT generate_series(1, 3)", None),
        ("SELEC nonsense", None),
    ]


def test_psycopg_connections_opened_before_capture_are_timed(
    record: Callable[[], Recording], pg_dsn: str
) -> None:
    con = psycopg.connect(pg_dsn, autocommit=True)
    rec = record()
    con.execute("SELECT 1")
    assert [q.sql for q in rec.queries()] == ["SELECT 1"]
    # stopped: the properties are gone, the connection reads its own factory again
    assert "cursor_factory" not in vars(psycopg.Connection)
    assert type(con.cursor()) is psycopg.Cursor
    assert con.execute("SELECT 2").fetchone() == (2,)
    assert pg3_adapter._recorder is None
    con.close()


def test_psycopg2_one_event_per_statement(record: Callable[[], Recording], pg_dsn: str) -> None:
    rec = record()
    con = psycopg2.connect(pg_dsn)
    cur = con.cursor()
    cur.execute("CREATE TEMP TABLE t (id serial PRIMARY KEY, name text)")
    cur.executemany("INSERT INTO t (name) VALUES (%s)", [("a",), ("b",), ("c",)])
    cur.execute("SELECT name FROM t WHERE id > %s", (1,))
    assert cur.fetchall() == [("b",), ("c",)]
    with pytest.raises(psycopg2.errors.SyntaxError):
        cur.execute("SELEC nonsense")
    con.rollback()
    con.close()
    queries = rec.queries()
    assert [(q.sql, q.rows, q.many) for q in queries] == [
        ("CREATE TEMP TABLE t (id serial PRIMARY KEY, name text)", None, False),
        ("INSERT INTO t (name) VALUES (%s)", 3, True),
        ("SELECT name FROM t WHERE id > %s", 2, False),
        ("SELEC nonsense", None, False),
    ]
    assert all(q.vendor == "postgresql" and q.alias == "postgres" for q in queries)


def test_psycopg2_keeps_the_callers_classes(record: Callable[[], Recording], pg_dsn: str) -> None:
    rec = record()
    con = psycopg2.connect(
        pg_dsn,
        connection_factory=psycopg2.extras.LoggingConnection,
        cursor_factory=psycopg2.extras.RealDictCursor,
    )
    log = io.StringIO()
    con.initialize(log)
    assert isinstance(con, psycopg2.extras.LoggingConnection)
    cur = con.cursor()
    assert isinstance(cur, psycopg2.extras.RealDictCursor)
    cur.execute("SELECT 1 AS one")
    assert cur.fetchone() == {"one": 1}
    named = con.cursor("walk", cursor_factory=psycopg2.extras.DictCursor)
    named.execute("SELECT generate_series(1, 2) AS n")
    assert [row["n"] for row in named.fetchall()] == [1, 2]
    con.close()
    assert [q.sql for q in rec.queries()] == [
        "SELECT 1 AS one",
        "SELECT generate_series(1, 2) AS n",
    ]
    assert psycopg2.connect is not pg2_adapter.connect


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_sqlalchemy_on_postgres_counts_each_statement_once(
    record: Callable[[], Recording], pg_dsn: str, driver: str
) -> None:
    rec = record()
    engine = create_engine(
        pg_dsn.replace("postgresql://", f"postgresql+{driver}://"), poolclass=NullPool
    )
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    with engine.begin() as con:
        con.execute(text("CREATE TEMP TABLE t (x int)"))
        con.execute(text("INSERT INTO t VALUES (:x)"), [{"x": 1}, {"x": 2}])
        for x in (1, 2):
            assert con.execute(text("SELECT x FROM t WHERE x = :x"), {"x": x}).scalar() == x
    engine.dispose()
    queries = rec.queries()
    ours = [q for q in queries if q.orm == "sqlalchemy"]
    # SQLAlchemy's own count of what it executed with its events on; the dialect's
    # first-connect probes run through its execution too (with events off), so they come
    # first, tagged as well
    probes = len(ours) - len(seen)
    assert [q.sql for q in ours[probes:]] == seen
    assert len(seen) == 4
    assert {q.orm for q in queries} <= {"sqlalchemy", ""}
    assert all(q.vendor == "postgresql" for q in queries)
