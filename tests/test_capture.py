"""SQL capture of sqlite3: exact events against SQLite's own trace of the same connection."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter, read_events
from devformance_nb.plugin import TestContext
from devformance_nb.plugin.capture import Capture, start_capture
from devformance_nb.plugin.capture import sqlite as sqlite_adapter
from devformance_nb.plugin.capture.recorder import PARAMS_LIMIT, _json, _json_frames, short_params

pytestmark = pytest.mark.quick

REPO = Path(__file__).resolve().parent.parent
HERE = "tests/test_capture.py"
NODEID = f"{HERE}::case"


class Recording:
    """One capture on its own events file, read back as Query events."""

    def __init__(self, path: Path, options: dict[str, Any]) -> None:
        self.path = path
        self.writer = EventWriter(path, "run-1", HERE)
        self.context = TestContext()
        self.context.nodeid = NODEID
        self.context.phase = "call"
        self.capture: Capture = start_capture(
            self.writer, self.context, ChildOptions(root=str(REPO), **options)
        )

    def queries(self) -> list[ev.Query]:
        """Stop capturing and return the Query events written."""
        self.capture.stop()
        self.writer.close()
        found = list(read_events(self.path))
        assert all(isinstance(event, ev.Event) for event in found)
        return [event for event in found if isinstance(event, ev.Query)]


Record = Callable[..., Recording]


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Record]:
    made: list[Recording] = []

    def start(**options: Any) -> Recording:
        recording = Recording(tmp_path / f"events-{len(made)}.jsonl", options)
        made.append(recording)
        return recording

    yield start
    for recording in made:
        recording.capture.stop()
        recording.writer.close()


def traced(connection: sqlite3.Connection) -> list[str]:
    """Every statement SQLite itself runs on ``connection`` from now on."""
    seen: list[str] = []
    connection.set_trace_callback(seen.append)
    return seen


def next_line() -> int:
    """The line number after the caller's current line."""
    return sys._getframe(1).f_lineno + 1


def test_one_event_per_statement_sqlite_runs(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:", isolation_level=None)  # autocommit: no implicit BEGIN
    trace = traced(con)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    cur = con.cursor()
    for i in range(5):
        cur.execute("INSERT INTO t (name) VALUES (?)", (f"n{i}",))
    cur.execute("UPDATE t SET name = 'x' WHERE id > 2")
    assert len(con.execute("SELECT id, name FROM t").fetchall()) == 5
    cur.execute("DELETE FROM t WHERE id = ?", (1,))
    queries = rec.queries()
    assert len(queries) == len(trace) == 9
    assert [q.sql.split()[0] for q in queries] == [t.split()[0] for t in trace]
    assert queries[1].sql == "INSERT INTO t (name) VALUES (?)"  # raw text, not expanded
    assert [q.qseq for q in queries] == list(range(1, 10))
    assert all(q.vendor == "sqlite" and q.alias == ":memory:" and q.orm == "" for q in queries)
    assert all(q.nodeid == NODEID and q.phase == "call" for q in queries)
    assert all(q.duration > 0 and q.start > 0 for q in queries)


def test_implicit_begin_and_commit_are_sqlite3s_own(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (x)")
    trace = traced(con)
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    queries = rec.queries()
    # the sqlite3 module issues BEGIN/COMMIT in C, below the DB-API: SQLite sees them, we do not
    assert [t.split()[0] for t in trace] == ["BEGIN", "INSERT", "COMMIT"]
    assert [q.sql for q in queries] == ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"]


def test_executemany_is_one_event_with_its_rowcount(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.execute("CREATE TABLE t (name TEXT)")
    trace = traced(con)
    con.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",), ("c",)])
    con.cursor().executemany("UPDATE t SET name = ? WHERE name = ?", [("z", "a"), ("y", "q")])
    queries = rec.queries()[1:]
    assert len(trace) == 5  # SQLite runs the statement once per parameter set
    assert [(q.many, q.rows) for q in queries] == [(True, 3), (True, 1)]


def test_executescript_is_one_event(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:")
    script = "CREATE TABLE a (x); CREATE TABLE b (y); INSERT INTO a VALUES (1);"
    con.executescript(script)
    (query,) = rec.queries()
    assert (query.sql, query.rows, query.many) == (script, None, False)


def test_row_counts_where_known(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("INSERT INTO t SELECT x + 1 FROM t")
    con.execute("UPDATE t SET x = x * 10")
    con.execute("SELECT * FROM t").fetchall()
    con.execute("DELETE FROM t")
    rows = [q.rows for q in rec.queries()]
    # DDL and SELECT: unknown (rows are fetched lazily, never by the capture)
    assert rows == [None, 1, 1, 2, None, 2]


def _helper(cur: sqlite3.Cursor, value: int) -> None:
    cur.execute("SELECT ?", (value,))


HELPER_LINE = _helper.__code__.co_firstlineno + 1


def test_caller_and_stack_hash(record: Record) -> None:
    rec = record()
    cur = sqlite3.connect(":memory:").cursor()
    loop_line = next_line() + 1
    for i in range(3):
        cur.execute("SELECT ?", (i,))
    other_line = next_line()
    cur.execute("SELECT ?", (9,))
    _helper(cur, 1)
    _helper(cur, 2)
    loop1, loop2, loop3, other, helper1, helper2 = rec.queries()
    name = "test_caller_and_stack_hash"
    assert loop1.caller == f"{HERE}:{loop_line} {name}"
    assert loop1.stack_hash == loop2.stack_hash == loop3.stack_hash
    assert len(loop1.stack_hash) == 12 and int(loop1.stack_hash, 16) >= 0
    assert other.caller == f"{HERE}:{other_line} {name}"
    assert other.stack_hash != loop1.stack_hash
    # the same line reached by two call paths: same caller, different stacks
    assert helper1.caller == helper2.caller == f"{HERE}:{HELPER_LINE} _helper"
    assert helper1.stack_hash != helper2.stack_hash


def test_context_is_read_per_statement(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:")
    rec.context.nodeid, rec.context.phase = "", "collect"
    con.execute("SELECT 1")
    rec.context.nodeid, rec.context.phase = "t.py::test_a", "setup"
    con.execute("SELECT 2")
    rec.context.phase = "teardown"
    con.execute("SELECT 3")
    seen = [(q.nodeid, q.phase) for q in rec.queries()]
    assert seen == [("", "collect"), ("t.py::test_a", "setup"), ("t.py::test_a", "teardown")]


def test_params_only_when_asked(record: Record) -> None:
    off = record()
    sqlite3.connect(":memory:").execute("SELECT ?, ?", (1, "secret"))
    assert [q.params for q in off.queries()] == [None]
    on = record(capture_params=True)
    con = sqlite3.connect(":memory:")
    con.execute("SELECT ?, ?", (1, "secret"))
    con.execute("SELECT :a", {"a": 2})
    con.execute("SELECT 3")
    assert [q.params for q in on.queries()] == ["(1, 'secret')", "{'a': 2}", None]


def test_params_text_is_capped() -> None:
    assert len(short_params([("x" * 1000, i) for i in range(100_000)]) or "") <= PARAMS_LIMIT
    assert short_params(("a" * 2000,)) is not None
    assert len(short_params(("a" * 2000,)) or "") <= PARAMS_LIMIT


def test_alias_of_file_and_uri_databases(record: Record, tmp_path: Path) -> None:
    rec = record()
    sqlite3.connect(tmp_path / "shop.db").execute("SELECT 1")
    sqlite3.connect(str(tmp_path / "other.sqlite3")).execute("SELECT 1")
    sqlite3.connect("file:memdb1?mode=memory&cache=shared", uri=True).execute("SELECT 1")
    sqlite3.connect("").execute("SELECT 1")
    assert [q.alias for q in rec.queries()] == ["shop.db", "other.sqlite3", "memdb1", ""]


class ShopConnection(sqlite3.Connection):
    marker = "shop"


class ShopCursor(sqlite3.Cursor):
    def first(self) -> Any:
        row = self.fetchone()
        return None if row is None else row[0]


def test_callers_own_factories_are_kept_and_timed(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:", factory=ShopConnection)
    assert isinstance(con, ShopConnection) and con.marker == "shop"
    cur = con.cursor(ShopCursor)
    assert isinstance(cur, ShopCursor)
    assert cur.execute("SELECT 7").first() == 7
    again = sqlite3.connect(":memory:", 5.0, 0, "DEFERRED", True, ShopConnection)
    assert type(again) is type(con)  # the combined class is made once per factory
    again.execute("SELECT 8")
    assert [q.sql for q in rec.queries()] == ["SELECT 7", "SELECT 8"]


def test_other_libraries_connecting_through_dbapi2_are_timed(record: Record) -> None:
    rec = record()
    from sqlite3 import dbapi2

    dbapi2.connect(":memory:").execute("SELECT 1")
    assert [q.sql for q in rec.queries()] == ["SELECT 1"]


def test_a_failing_statement_is_recorded_and_raised(record: Record) -> None:
    rec = record()
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (x UNIQUE)")
    with pytest.raises(sqlite3.OperationalError):
        con.execute("SELEC nonsense")
    with pytest.raises(sqlite3.IntegrityError):
        con.executemany("INSERT INTO t VALUES (?)", [(1,), (1,)])
    assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)
    queries = rec.queries()
    assert [(q.sql, q.rows, q.many) for q in queries[1:3]] == [
        ("SELEC nonsense", None, False),
        ("INSERT INTO t VALUES (?)", None, True),
    ]
    assert len(queries) == 4


class BrokenWriter:
    def write(self, event: ev.Event) -> ev.Event:
        raise OSError("disk full")

    def flush(self) -> None:
        raise OSError("disk full")


def test_a_broken_writer_never_breaks_the_code_under_test() -> None:
    capture = start_capture(
        cast(EventWriter, BrokenWriter()), TestContext(), ChildOptions(root=str(REPO))
    )
    try:
        assert sqlite3.connect(":memory:").execute("SELECT 41 + 1").fetchone() == (42,)
        assert capture.recorder.dropped == 1
    finally:
        capture.stop()
    assert sqlite3.connect is not sqlite_adapter.connect
    assert capture.problems == ["flush: OSError: disk full"]


def test_statements_from_threads(record: Record) -> None:
    rec = record()

    def work() -> None:
        con = sqlite3.connect(":memory:")
        for i in range(50):
            con.execute("SELECT ?", (i,))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queries = rec.queries()
    assert len(queries) == 200
    assert sorted(q.qseq for q in queries) == list(range(1, 201))
    assert len({q.seq for q in queries}) == 200
    assert {q.caller.rsplit(" ", 1)[1] for q in queries} == {
        "test_statements_from_threads.<locals>.work"
    }


def test_stop_restores_connect_and_leaves_connections_working(record: Record) -> None:
    rec = record()
    assert sqlite3.connect is sqlite_adapter.connect
    assert sqlite3.dbapi2.connect is sqlite_adapter.connect
    con = sqlite3.connect(":memory:")
    con.execute("SELECT 1")
    queries = rec.queries()  # stops the capture
    assert sqlite3.connect is not sqlite_adapter.connect
    assert sqlite3.dbapi2.connect is not sqlite_adapter.connect
    assert con.execute("SELECT 2").fetchone() == (2,)
    assert type(sqlite3.connect(":memory:")) is sqlite3.Connection
    assert [q.sql for q in queries] == ["SELECT 1"]
    rec.capture.stop()  # twice is fine


def test_coverage_data_file_is_not_the_projects_sql(record: Record, tmp_path: Path) -> None:
    pytest.importorskip("coverage")
    from coverage.sqldata import CoverageData

    rec = record()
    data = CoverageData(str(tmp_path / ".coverage"))
    data.add_lines({str(tmp_path / "a.py"): [1, 2, 3]})
    data.write()
    sqlite3.connect(":memory:").execute("SELECT 1")
    assert [q.sql for q in rec.queries()] == ["SELECT 1"]


@pytest.mark.quick
@pytest.mark.parametrize(
    "text",
    ["", "plain", 'say "hi"\\n', "tab\tand\nnewline\x00\x1f", "café ✓ 😀", "lone \ud800 half"],
)
def test_texts_encode_as_json_dumps_encodes_them(text: str) -> None:
    assert _json(text) == json.dumps(text, ensure_ascii=False)


def test_a_value_that_is_no_string_still_encodes() -> None:
    assert _json(None) == "null"  # type: ignore[arg-type]


def test_stack_frames_encode_as_json_lists_whoever_encoded_them_before() -> None:
    frames = [("app/views.py", 12, "Shop.list"), ('app/"odd".py', 3, "café"), ("a\\b.py", 0, "<f>")]
    expected = json.dumps([list(frame) for frame in frames], ensure_ascii=False)
    assert _json_frames(frames) == expected
    assert _json_frames(frames) == expected  # the second time from the per-frame texts
    assert json.loads(_json_frames(frames[::-1])) == [list(f) for f in frames[::-1]]
