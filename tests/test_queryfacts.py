"""A file's statements read in bulk: DuckDB's facts equal the event-by-event path's, and a
real run reads a statement-heavy file's statements that way, from its events file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import MakeProject

from devformance_nb import api
from devformance_nb.core import events as ev
from devformance_nb.run import launcher
from devformance_nb.run.queryfacts import read_facts
from devformance_nb.run.reader import BULK_STATEMENTS
from devformance_nb.run.state import RunState

KEY = "tests/test_shop.py"


def statement(qseq: int, nodeid: str, sql: str, duration: float = 0.001, **extra: Any) -> str:
    fields = {
        "v": 1,
        "kind": "query",
        "run_id": "r",
        "file": KEY,
        "seq": qseq,
        "qseq": qseq,
        "t": 1.0,
        "start": 1.0,
        "duration": duration,
        "rows": None,
        "nodeid": nodeid,
        "phase": "call",
        "sql": sql,
        "vendor": "sqlite",
        "alias": "main",
        "caller": "app/shop.py:4 list_books",
        "sent_by": "app/db.py:9 run",
        "stack_hash": "s1",
        "orm": "",
        "many": False,
        **extra,
    }
    return json.dumps(fields)


@pytest.mark.quick
def test_facts_of_one_file_equal_the_event_by_event_state(tmp_path: Path) -> None:
    lines = []
    for test in ("test_a", "test_b"):
        nodeid = f"{KEY}::{test}"
        lines += [statement(len(lines), nodeid, "SELECT * FROM authors")]
        lines += [
            statement(len(lines), nodeid, f"SELECT * FROM books WHERE author_id = {i}")
            for i in range(5)
        ]
        lines += [statement(len(lines), nodeid, "SELECT count(*) FROM books", duration=0.25)]
        lines += [statement(len(lines), nodeid, "INSERT INTO log VALUES (1)", stack_hash="")]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    live = RunState(run_id="r")
    for line in lines:
        live.apply(ev.decode(line))
    live.apply(ev.FileFinished(file=KEY, status="passed", returncode=0, duration=1.0))
    bulk = RunState(run_id="r")
    facts = read_facts([path], slow_query_ms=100.0, min_count=2, threads=1)
    bulk.apply(ev.FileQueries(file=KEY, facts=facts, path=str(path)))

    ours, theirs = bulk.file(KEY), live.file(KEY)
    assert (ours.queries, ours.query_time) == (theirs.queries, pytest.approx(theirs.query_time))
    assert {n: t.queries for n, t in ours.tests.items()} == {
        n: t.queries for n, t in theirs.tests.items()
    }
    assert (
        [s.sql for s in ours.slow]
        == [s.sql for s in theirs.slow]
        == ["SELECT count(*) FROM books"] * 2
    )
    assert sorted(ours.n_plus_one, key=repr) == sorted(theirs.n_plus_one, key=repr)
    assert [(f.nodeid, f.count) for f in ours.n_plus_one] == [
        (f"{KEY}::test_a", 5),
        (f"{KEY}::test_b", 5),
    ]
    # each distinct text is mapped to its fingerprint's hash, for the store's bulk insert
    assert len(facts.texts) == 1 + 5 + 1 + 1


@pytest.mark.quick
def test_reader_threads_reading_facts_at_once_each_get_their_own(tmp_path: Path) -> None:
    """The reader threads share one kept database (opening one costs more than a small file's
    read): each call's temporary tables are its own, whatever runs beside it."""
    import threading

    paths = []
    for n in range(4):  # file n: n + 1 tests of n + 2 lookups each
        lines = [
            statement(i * 10 + j, f"{KEY}::test_{i}", f"SELECT * FROM books WHERE id = {j}")
            for i in range(n + 1)
            for j in range(n + 2)
        ]
        paths.append(tmp_path / f"{n}.jsonl")
        paths[-1].write_text("\n".join(lines) + "\n", encoding="utf-8")

    def counts(path: Path) -> tuple[int, list[int]]:
        facts = read_facts([path], slow_query_ms=100.0, min_count=2, threads=1).files[KEY]
        return facts.queries, sorted(f.count for f in facts.n_plus_one)

    alone = [counts(p) for p in paths]
    assert alone == [((n + 1) * (n + 2), [n + 2] * (n + 1)) for n in range(4)]
    together: list[list[tuple[int, list[int]]]] = [[] for _ in paths]

    def read_often(i: int) -> None:
        together[i] += [counts(paths[i]) for _ in range(8)]

    threads = [threading.Thread(target=read_often, args=(i,)) for i in range(len(paths))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == [[one] * 8 for one in alone]


HEAVY = f"""
import sqlite3
import time


def connect():
    con = sqlite3.connect(":memory:")
    con.create_function("pause", 1, lambda s: time.sleep(s) or 1)
    con.execute("CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER)")
    return con


def author_of(con, book_id):
    return con.execute(f"SELECT author_id FROM books WHERE id = {{book_id}}").fetchone()


def test_many_lookups():
    con = connect()
    con.executemany("INSERT INTO books (author_id) VALUES (?)", [(i,) for i in range(50)])
    for book_id in range({BULK_STATEMENTS + 200}):
        author_of(con, book_id % 50)


def test_slow():
    connect().execute("SELECT pause(0.15)").fetchone()
"""

LIGHT = """
import sqlite3


def test_few():
    con = sqlite3.connect(":memory:")
    for i in range(3):
        con.execute(f"SELECT {i}")
"""


class Kinds:
    """Which event kinds each file's events reached the observers as."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}

    def on_event(self, event: ev.Event, state: RunState) -> None:
        self.seen.setdefault(event.file, set()).add(event.kind)

    def tick(self, state: RunState) -> None:
        pass

    def close(self, state: RunState) -> None:
        pass


def stored(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            "queries": con.execute(
                "SELECT file, nodeid, phase, qseq, sql, fingerprint_hash, caller, stack_hash "
                "FROM queries ORDER BY file, qseq"
            ).fetchall(),
            "n_plus_one": con.execute(
                "SELECT file, nodeid, fingerprint_hash, count, caller FROM n_plus_one ORDER BY 1, 2"
            ).fetchall(),
            "files": con.execute(
                "SELECT file, queries, slow_queries, n_plus_one FROM test_files ORDER BY file"
            ).fetchall(),
            "fingerprints": con.execute(
                "SELECT fingerprint_hash, fingerprint FROM fingerprints ORDER BY 1"
            ).fetchall(),
            "stacks": con.execute("SELECT stack_hash, frames FROM stacks ORDER BY 1").fetchall(),
        }


def test_a_statement_heavy_file_is_read_in_bulk_with_the_rows_ingest_makes(
    make_project: MakeProject, executor: str, tmp_path: Path
) -> None:
    root = make_project({"tests/test_heavy.py": HEAVY, "tests/test_light.py": LIGHT})
    kinds = Kinds()
    db = tmp_path / "live.duckdb"
    run = api.run_tests(root=root, workers=2, executor=executor, observers=[kinds], db=db)
    assert run.state.status == "passed"
    heavy, light = "tests/test_heavy.py", "tests/test_light.py"
    # the heavy file's statements never reached the loop one by one; the light file's did
    assert "query" not in kinds.seen[heavy] and "file_queries" in kinds.seen[heavy]
    assert "query" in kinds.seen[light] and "file_queries" not in kinds.seen[light]
    fs = run.state.files[heavy]
    # per test: its table, and the insert and lookups, or the pause
    assert fs.queries == BULK_STATEMENTS + 200 + 4
    assert [s.sql for s in fs.slow] == ["SELECT pause(0.15)"]
    assert [(f.count, f.caller) for f in fs.n_plus_one] == [
        (BULK_STATEMENTS + 200, "tests/test_heavy.py:21 test_many_lookups")
    ]
    assert run.state.files[light].queries == 3
    # the store holds the rows ingest makes from the run directory alone
    again = tmp_path / "ingested.duckdb"
    api.ingest(run.state.meta["run_dir"], again)
    assert stored(db) == stored(again)
    assert len(stored(db)["queries"]) == BULK_STATEMENTS + 200 + 4 + 3
    # the loop's stack and the per-row lookup's, with their frames outermost first
    frames = dict(stored(db)["stacks"])
    assert ["tests/test_heavy.py:21 test_many_lookups", "tests/test_heavy.py:14 author_of"] in [
        value[-2:] for value in frames.values()
    ]


def test_statements_that_cannot_be_read_in_bulk_are_said_and_the_run_goes_on(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk gone")

    monkeypatch.setattr(launcher, "read_facts", unreadable)
    root = make_project({"tests/test_heavy.py": HEAVY})
    db = tmp_path / "s.duckdb"
    run = api.run_tests(root=root, workers=1, executor="spawn", db=db)
    key = "tests/test_heavy.py"
    assert run.state.status == "passed" and run.state.files[key].queries == 0
    assert run.state.files[key].last_output.startswith("[devformance] the file's")
    with duckdb.connect(str(db), read_only=True) as con:
        said = con.execute(
            "SELECT text FROM output_lines WHERE file = ? AND text LIKE '%were not read%'", [key]
        ).fetchall()
    assert len(said) == 1 and "disk gone" in said[0][0] and "devformance ingest" in said[0][0]
    # they are still on disk: ingest loads them
    api.ingest(run.state.meta["run_dir"], tmp_path / "again.duckdb")
    assert len(stored(tmp_path / "again.duckdb")["queries"]) == BULK_STATEMENTS + 200 + 4


KILLED = f"""
import os
import signal
import sqlite3


def test_killed_after_many_statements():
    con = sqlite3.connect(":memory:")
    for i in range({BULK_STATEMENTS + 300}):
        con.execute(f"SELECT {{i}}")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_file_keeps_every_statement_it_sent(
    make_project: MakeProject, executor: str, tmp_path: Path
) -> None:
    root = make_project({"tests/test_killed.py": KILLED})
    db = tmp_path / "k.duckdb"
    run = api.run_tests(root=root, workers=1, executor=executor, db=db)
    fs = run.state.files["tests/test_killed.py"]
    assert fs.status == "crashed" and "signal 9" in (fs.crash or "")
    # every statement the child wrote before it died: read in bulk, counted and stored
    assert fs.queries == BULK_STATEMENTS + 300
    assert len(stored(db)["queries"]) == BULK_STATEMENTS + 300
