"""Bulk ingest: the store and the state it builds equal those of the event-by-event path."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from devformance_nb.api import facade as api
from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash
from devformance_nb.run.queryfacts import LITERAL_KEY
from devformance_nb.run.replay import replay
from devformance_nb.run.state import RunState

RUN = "run-bulk"
FILES = ["tests/test_a.py", "tests/sub/test_b.py", "tests/test_empty.py"]

#: texts built to break a literal key that merged what the fingerprint keeps apart
TRICKY = [
    "SELECT * FROM t WHERE id = 1",
    "SELECT * FROM t WHERE id = 22",
    "SELECT * FROM t WHERE id = 3.5",
    "SELECT * FROM t WHERE id = -7",
    "SELECT * FROM t WHERE id = 1e5",
    "SELECT * FROM t WHERE id = 2e5",
    "SELECT * FROM t WHERE id = .5",
    "SELECT * FROM t WHERE id = 1.",
    "SELECT * FROM t WHERE id = 0x1F",
    "SELECT * FROM t WHERE id = 0x2F",
    "SELECT * FROM t1 WHERE id = 1",
    "SELECT * FROM t2 WHERE id = 1",
    "SELECT * FROM t WHERE id = 123abc",
    "SELECT * FROM t WHERE id = 124abc",
    "SELECT * FROM t WHERE name = 'x'",
    "SELECT * FROM t WHERE name = 'it''s 42'",
    "SELECT * FROM t WHERE name = ''",
    "SELECT * FROM t WHERE name = 'unterminated 12",
    "SELECT * FROM t WHERE name = 'unterminated 13",
    "SELECT * FROM t WHERE name = E'a\\'b' AND id = 1",
    "SELECT * FROM t WHERE name = E'a\\'c' AND id = 1",
    "SELECT * FROM t WHERE name = X'ff'",
    'SELECT "col 1" FROM t WHERE id = 1',
    'SELECT "col 2" FROM t WHERE id = 1',
    "SELECT `col 1` FROM t",
    "SELECT `col 2` FROM t",
    "SELECT [col 1] FROM t",
    "SELECT [col 2] FROM t",
    "SELECT * FROM t WHERE id = 1 -- note 1",
    "SELECT * FROM t WHERE id = 1 -- note 2",
    "SELECT * FROM t WHERE id = 1 /* 7 */",
    "SELECT $$ 1 $$, id FROM t",
    "SELECT $$ 2 $$, id FROM t",
    "SELECT * FROM t WHERE id = $1",
    "SELECT * FROM t WHERE id = $2",
    "SELECT * FROM t WHERE id = ?1",
    "SELECT * FROM t WHERE id = ?2",
    "SELECT * FROM t WHERE id = :1",
    "SELECT * FROM t WHERE id = :2",
    "SELECT * FROM t WHERE id IN (1, 2, 3)",
    "SELECT * FROM t WHERE id IN (4, 5)",
    "SELECT * FROM t WHERE a - 1 = b",
    "SELECT * FROM t WHERE a -1 = b",
    "SELECT * FROM t WHERE a = -1",
    "SELECT * FROM t WHERE é1 = 1",
    "SELECT * FROM t WHERE é2 = 1",
    "SELECT * FROM t WHERE x = '١'",
    "SELECT * FROM t WHERE x = 'ü'",
    "SELECT * FROM t WHERE x = 1.5.6",
    "SELECT * FROM t WHERE x = 1.6.6",
    "SELECT * FROM t LIMIT 10 OFFSET 20",
    "SELECT * FROM t LIMIT 10 OFFSET 30",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO t VALUES (3, 'c')",
    "UPDATE t SET n = n - 1 WHERE id = 9",
]


def literal_keys(texts: list[str]) -> dict[str, str]:
    con = duckdb.connect()
    con.execute("CREATE TABLE texts (sql VARCHAR)")
    con.executemany("INSERT INTO texts VALUES (?)", [(t,) for t in texts])
    rows = con.execute(f"SELECT sql, {LITERAL_KEY} FROM texts").fetchall()
    return {sql: key for sql, key in rows}


@pytest.mark.quick
def test_texts_with_one_literal_key_have_one_fingerprint() -> None:
    keys = literal_keys(TRICKY)
    by_key: dict[str, set[str]] = {}
    for sql, key in keys.items():
        by_key.setdefault(key, set()).add(fingerprint(sql))
    assert {key: fps for key, fps in by_key.items() if len(fps) > 1} == {}
    # and literal-only variants do share a key, which is what saves the fingerprinting
    assert keys["SELECT * FROM t WHERE id = 1"] == keys["SELECT * FROM t WHERE id = 22"]
    assert keys["SELECT * FROM t WHERE name = 'x'"] == keys["SELECT * FROM t WHERE name = ''"]
    assert keys["SELECT * FROM t WHERE id = 3.5"] == keys["SELECT * FROM t WHERE id = 1"]
    assert keys["SELECT * FROM t1 WHERE id = 1"] != keys["SELECT * FROM t2 WHERE id = 1"]


def query_line(**fields: object) -> str:
    base: dict[str, object] = {
        "t": 1.0,
        "start": 1700000000.25,
        "duration": 0.001,
        "rows": None,
        "nodeid": "",
        "phase": "call",
        "vendor": "sqlite",
        "alias": ":memory:",
        "caller": "app/views.py:10 view",
        "stack_hash": "s1",
        "orm": "",
        "many": False,
    }
    base.update(fields)
    return ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in base.items())


def write_run(root: Path) -> Path:
    """A run directory with two files of varied statements and one without any."""
    run_dir = root / ".devformance" / "runs" / RUN
    run_dir.mkdir(parents=True)
    journal = EventWriter(RunDir(run_dir).journal, RUN, "", batch=1)
    config = {"slow_query_ms": 50.0, "allow_n_plus_one": ["app/allowed.py:*"]}
    journal.append(
        ev.RunStarted(
            run_id=RUN, root=str(root), files=FILES, workers=1, executor="spawn", config=config
        )
    )
    for key in FILES:
        journal.append(ev.FileStarted(run_id=RUN, file=key, path=key, pid=1, command=[]))
        child = EventWriter(RunDir(run_dir).events_path(key), RUN, key)
        if key != "tests/test_empty.py":
            write_statements(child, key)
        child.write(ev.FileDone(exitstatus=0, counts={"passed": 2}, duration=1.0))
        child.close()
        with open(RunDir(run_dir).events_path(key), "a", encoding="utf-8") as fh:
            # from a newer devformance: skipped by both paths
            fh.write(f'{{"v":99,"kind":"query","file":"{key}",{query_line(sql="SELECT 9")}}}\n')
            if key == "tests/sub/test_b.py":  # a child killed in the middle of a line
                fh.write('{"v":1,"kind":"query","sql":"SELECT broken')
        journal.append(
            ev.FileFinished(run_id=RUN, file=key, status="passed", returncode=0, duration=1.0)
        )
    journal.append(ev.RunDone(run_id=RUN, status="passed", duration=2.0, t=time.time()))
    journal.close()
    return run_dir


def write_statements(child: EventWriter, key: str) -> None:
    child.write(ev.Stack(stack_hash="s1", frames=[["app/views.py", 10, "view"]]))
    for test in ("test_one", "test_two"):
        nodeid = f"{key}::{test}"
        lines = [
            query_line(nodeid="", phase="collect", sql="CREATE TABLE books (id)"),
            query_line(nodeid=nodeid, phase="setup", sql="INSERT INTO books VALUES (1)"),
            *(
                query_line(nodeid=nodeid, sql=f"SELECT * FROM books WHERE author_id = {i}")
                for i in range(4)
            ),
            *(
                query_line(nodeid=nodeid, sql=f"SELECT * FROM books WHERE author_id = '{i}'")
                for i in range(2)
            ),
            *(
                query_line(
                    nodeid=nodeid,
                    sql='SELECT "authors".* FROM "authors" WHERE id = ?',
                    stack_hash=f"s-{name}",
                    caller=f"app/{name}.py:3 f",
                    orm="sqlalchemy" if i else "",
                )
                for i, name in enumerate(["views", "views", "other", "allowed", "allowed"])
            ),
            *(  # no project frame: never grouped
                query_line(nodeid=nodeid, sql="SELECT id FROM t", stack_hash="", caller="")
                for _ in range(3)
            ),
            query_line(nodeid=nodeid, sql="SELECT pg_sleep(1)", duration=0.2),
            query_line(nodeid=nodeid, sql="COMMIT", duration=0.3),
            query_line(nodeid=nodeid, sql="SELECT 1 FROM t LIMIT 5 OFFSET 5"),
            query_line(nodeid=nodeid, sql="SELECT 1 FROM t LIMIT 5 OFFSET 10"),
            query_line(nodeid=nodeid, phase="teardown", sql="DELETE FROM books"),
        ]
        for line in lines:
            child.write_fields("query", line, "qseq")
        for phase in ("setup", "call", "teardown"):
            child.write(
                ev.TestPhase(
                    nodeid=nodeid, phase=phase, outcome="passed", duration=0.1, category="passed"
                )
            )


def event_by_event(run_dir: Path) -> RunState:
    """The state the live loop builds: every event, queries included, applied in order."""
    events = replay(run_dir)
    first = next(events)
    state = RunState(run_id=first.run_id)
    state.apply(first)
    for event in events:
        state.apply(event)
    return state


def test_bulk_ingest_builds_the_state_the_live_loop_builds(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    expected = event_by_event(run_dir)
    state = api.ingest(run_dir, tmp_path / "bulk.duckdb")
    for key in FILES:
        ours, theirs = state.files[key], expected.files[key]
        assert ours.queries == theirs.queries and ours.query_time == pytest.approx(
            theirs.query_time
        )
        assert ours.slow == theirs.slow
        assert sorted(ours.n_plus_one, key=repr) == sorted(theirs.n_plus_one, key=repr)
        assert {n: t.queries for n, t in ours.tests.items()} == {
            n: t.queries for n, t in theirs.tests.items()
        }
        assert {n: t.query_time for n, t in ours.tests.items()} == pytest.approx(
            {n: t.query_time for n, t in theirs.tests.items()}
        )
    findings = [f for fs in state.files.values() for f in fs.n_plus_one]
    assert {(f.caller, f.count, f.orm) for f in findings} == {
        ("app/views.py:10 view", 6, ""),  # numbers and strings inlined: one shape
        ("app/views.py:3 f", 2, "sqlalchemy"),  # the ORM of the first that has one
    }
    assert len(findings) == 2 * 2 * 2  # two findings in each of two tests of two files
    assert {s.sql for fs in state.files.values() for s in fs.slow} == {"SELECT pg_sleep(1)"}


def test_bulk_ingest_stores_every_statement_with_its_fingerprint(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    db = tmp_path / "bulk.duckdb"
    api.ingest(run_dir, db)
    api.ingest(run_dir, db)  # twice: replaced, never doubled
    store = api.open_store(db)
    rows = store.query("SELECT file, qseq, sql, fingerprint_hash, started FROM queries")
    expected = event_by_event(run_dir)
    assert len(rows) == sum(fs.queries for fs in expected.files.values()) == 2 * 2 * 21
    assert all(r["fingerprint_hash"] == fingerprint_hash(fingerprint(r["sql"])) for r in rows)
    assert {r["started"].timestamp() for r in rows} == {1700000000.25}
    known = store.query("SELECT fingerprint_hash FROM fingerprints")
    assert {r["fingerprint_hash"] for r in rows} <= {k["fingerprint_hash"] for k in known}
    stacks = store.query("SELECT stack_hash, frames FROM stacks")
    assert stacks == [{"stack_hash": "s1", "frames": ["app/views.py:10 view"]}]  # once
    stored = store.query("SELECT file, n_plus_one, queries FROM test_files ORDER BY file")
    assert [(r["file"], r["n_plus_one"], r["queries"]) for r in stored] == [
        ("tests/sub/test_b.py", 4, 42),
        ("tests/test_a.py", 4, 42),
        ("tests/test_empty.py", 0, 0),
    ]


def test_a_run_without_any_statement(tmp_path: Path) -> None:
    run_dir = tmp_path / ".devformance" / "runs" / RUN
    run_dir.mkdir(parents=True)
    journal = EventWriter(RunDir(run_dir).journal, RUN, "", batch=1)
    journal.append(
        ev.RunStarted(run_id=RUN, root=str(tmp_path), files=[], workers=1, executor="spawn")
    )
    journal.append(ev.RunDone(run_id=RUN, status="empty", duration=0.0, t=time.time()))
    journal.close()
    state = api.ingest(run_dir, tmp_path / "none.duckdb")
    assert state.status == "empty" and state.files == {}


def write_killed_run(root: Path, b_journaled: bool = True) -> Path:
    """A run directory whose launcher died: test_a finished, test_b was mid-way (one test
    passed, some output and statements written), test_c never started; no run_done.

    ``b_journaled=False``: the launcher died before its journal said test_b started (its
    child had already written events and output), as a killed launcher on a busy machine does.
    """
    keys = ["tests/test_a.py", "tests/test_b.py", "tests/test_c.py"]
    run_dir = root / ".devformance" / "runs" / "run-killed"
    run_dir.mkdir(parents=True)
    folder = RunDir(run_dir)
    journal = EventWriter(folder.journal, "run-killed", "", batch=1)
    journal.append(
        ev.RunStarted(run_id="run-killed", root=str(root), files=keys, workers=1, executor="spawn")
    )
    for key in keys[:2]:
        if b_journaled or key != "tests/test_b.py":
            started = ev.FileStarted(run_id="run-killed", file=key, path=key, pid=1, command=[])
            journal.append(started)
        child = EventWriter(folder.events_path(key), "run-killed", key)
        child.write_fields("query", query_line(nodeid=f"{key}::test_one", sql="SELECT 1"), "qseq")
        for phase in ("setup", "call", "teardown"):
            child.write(
                ev.TestPhase(
                    nodeid=f"{key}::test_one",
                    phase=phase,
                    outcome="passed",
                    duration=0.1,
                    category="passed" if phase == "call" else "",
                )
            )
        child.write_fields("query", query_line(nodeid=f"{key}::test_two", sql="SELECT 2"), "qseq")
        child.close()
        folder.log_path(key).write_text(f"{key} .\nrunning test_two\n")
        if key == "tests/test_a.py":
            journal.append(
                ev.FileFinished(
                    run_id="run-killed", file=key, status="passed", returncode=0, duration=1.0
                )
            )
    journal.close()
    return run_dir


@pytest.mark.parametrize("b_journaled", [True, False], ids=["journaled", "start-not-journaled"])
def test_a_killed_run_is_ingested_whole_and_once(tmp_path: Path, b_journaled: bool) -> None:
    run_dir = write_killed_run(tmp_path, b_journaled)
    db = tmp_path / "store.duckdb"
    for _ in range(2):  # ingesting again replaces the run, never doubles it
        result = subprocess.run(
            [sys.executable, "-m", "devformance_nb.cli", "ingest", str(run_dir), "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        # the counts printed are the rows stored: two files (test_c never started), each
        # with a passed test and one that ran statements but has no outcome yet
        assert "(interrupted): 2 files, 4 tests, 4 queries" in result.stdout
    store = api.open_store(db)
    files = store.query("SELECT file, status, passed, output_lines FROM test_files ORDER BY file")
    assert files == [
        {"file": "tests/test_a.py", "status": "passed", "passed": 1, "output_lines": 2},
        {"file": "tests/test_b.py", "status": "interrupted", "passed": 1, "output_lines": 2},
    ]
    tests = store.query(
        "SELECT nodeid, outcome FROM tests WHERE file = 'tests/test_b.py' ORDER BY nodeid"
    )
    assert tests == [
        {"nodeid": "tests/test_b.py::test_one", "outcome": "passed"},
        {"nodeid": "tests/test_b.py::test_two", "outcome": "error"},  # cut off: no outcome
    ]
    lines = store.query(
        "SELECT text FROM output_lines WHERE file = 'tests/test_b.py' ORDER BY line"
    )
    assert [r["text"] for r in lines] == ["tests/test_b.py .", "running test_two"]
    orphans = store.query(
        "SELECT count(*) AS n FROM queries q ANTI JOIN test_files f USING (run_id, file)"
    )
    assert orphans == [{"n": 0}]
    assert store.query("SELECT count(*) AS n FROM queries") == [{"n": 4}]
    (run,) = store.query("SELECT status, files FROM runs")
    assert run == {"status": "interrupted", "files": 3}
