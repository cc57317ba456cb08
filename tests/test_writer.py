"""StoreWriter through a real launcher into a real DuckDB file; only the children are fake.

test_api.py and test_faults.py check the store after real runs (counts, output, metadata,
locks, a killed launcher); these check the same rows for outcomes a script picks exactly:
queries and their N+1 finding, a crash, a stop in the middle, with no process started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from fakes import FakeExecutor, Script, plan, pytest_file, query

from devformance_nb.core import events as ev
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.launcher import Launcher
from devformance_nb.run.state import RunState
from devformance_nb.store.database import Store
from devformance_nb.store.writer import Batch, StoreWriter

pytestmark = pytest.mark.quick

LOOKUPS = [query("a.py::test_list", f"SELECT * FROM book WHERE id = {i}") for i in (1, 2, 3)]
SCRIPTS: dict[str, Script] = {
    "a.py": pytest_file(
        "a.py",
        {"test_list": "passed", "test_empty": "passed"},
        queries=[*LOOKUPS, query("a.py::test_empty", "SELECT count(*) FROM book")],
        lines=["a.py ..", "\x1b[32m2 passed\x1b[0m"],
    ),
    "b.py": pytest_file("b.py", {"test_bad": "failed"}, lines=["b.py F"]),
    "c.py": Script(events=pytest_file("c.py", {"test_x": "passed"}).events[:2], returncode=-11),
}


def write_run(tmp_path: Path, scripts: Mapping[str, Script], stop_at: str = "") -> Store:
    """Run ``scripts`` with a store writer observing; ``stop_at``: stop once that file starts."""
    store = Store(tmp_path / "store.duckdb")
    runs = plan(tmp_path, scripts)
    writer = StoreWriter(store, {key: os.fspath(runs.run_dir.log_path(key)) for key in scripts})
    launcher = Launcher(runs, FakeExecutor(scripts), [writer])
    if stop_at:
        launcher.observers.append(StopAt(launcher, stop_at))
    launcher.run()
    assert writer.error is None
    return store


class StopAt:
    """Stops the run when file ``key`` starts (as a user pressing stop right then)."""

    def __init__(self, launcher: Launcher, key: str):
        self.launcher, self.key = launcher, key

    def on_event(self, event: ev.Event, state: RunState) -> None:
        if isinstance(event, ev.FileStarted) and event.file == self.key:
            self.launcher.stop()

    def tick(self, state: RunState) -> None:
        """Nothing to draw."""

    def close(self, state: RunState) -> None:
        """Nothing to release."""


def test_a_run_lands_with_its_files_tests_queries_and_output(tmp_path: Path) -> None:
    store = write_run(tmp_path, SCRIPTS)
    (run,) = store.query("SELECT * FROM runs")
    assert (run["run_id"], run["status"], run["exit_code"]) == ("fake-run", "failed", 1)
    assert (run["files"], run["tests"], run["passed"], run["failed"]) == (
        3,
        3,
        2,
        1,
    )  # c.py died inside its test
    assert (run["queries"], run["n_plus_one"], run["executor"]) == (4, 1, "fake")
    assert run["finished"] >= run["started"]

    files = store.query(
        "SELECT file, status, returncode, exitstatus, tests, queries, output_lines, message,"
        " log_path FROM test_files ORDER BY file"
    )
    assert [(f["file"], f["status"], f["returncode"], f["exitstatus"]) for f in files] == [
        ("a.py", "passed", 0, 0),
        ("b.py", "failed", 1, 1),
        ("c.py", "crashed", -11, None),
    ]
    a, _, c = files
    assert (a["tests"], a["queries"], a["output_lines"]) == (2, 4, 2)
    assert c["message"] == "killed by signal 11 (SIGSEGV) while c.py::test_x was running"
    assert a["log_path"] == os.fspath(plan(tmp_path, SCRIPTS).run_dir.log_path("a.py"))
    assert Path(a["log_path"]).read_bytes() == b"a.py ..\n\x1b[32m2 passed\x1b[0m\n"

    tests = store.query("SELECT nodeid, outcome, queries, message FROM tests ORDER BY nodeid")
    assert [(t["nodeid"], t["outcome"], t["queries"]) for t in tests] == [
        ("a.py::test_empty", "passed", 1),
        ("a.py::test_list", "passed", 3),
        ("b.py::test_bad", "failed", 0),
        ("c.py::test_x", "error", 0),  # no call phase: it died in setup
    ]
    assert tests[2]["message"] == "failed here"

    sqls = store.query("SELECT file, nodeid, sql FROM queries ORDER BY nodeid, sql")
    assert [(q["nodeid"], q["sql"]) for q in sqls] == [
        ("a.py::test_empty", "SELECT count(*) FROM book"),
        *[("a.py::test_list", f"SELECT * FROM book WHERE id = {i}") for i in (1, 2, 3)],
    ]
    (finding,) = store.query("SELECT file, nodeid, count FROM n_plus_one")
    assert finding == {"file": "a.py", "nodeid": "a.py::test_list", "count": 3}

    lines = store.query("SELECT file, line, text FROM output_lines ORDER BY file, line")
    assert [(r["file"], r["line"], r["text"]) for r in lines] == [
        ("a.py", 1, "a.py .."),
        ("a.py", 2, "2 passed"),  # colour codes stripped for the store
        ("b.py", 1, "b.py F"),
    ]


def with_stack(script: Script, stack: ev.Stack) -> Script:
    """``script`` with ``stack`` told right after collection (as a child tells a new stack)."""
    return replace(script, events=[script.events[0], stack, *script.events[1:]])


def test_stacks_are_stored_once_and_findings_keep_the_sending_frame(tmp_path: Path) -> None:
    frames = [["tests/test_a.py", 3, "test_list"], ["app.py", 7, "load"]]
    stack = ev.Stack(stack_hash="stack-1", frames=frames)
    scripts = {"a.py": with_stack(SCRIPTS["a.py"], stack)}
    store = write_run(tmp_path, scripts)
    write_run(tmp_path, scripts)  # a second run tells the same stack: still one row
    rows = store.query("SELECT stack_hash, frames, first_run FROM stacks")
    assert rows == [
        {
            "stack_hash": "stack-1",
            "frames": ["tests/test_a.py:3 test_list", "app.py:7 load"],
            "first_run": "fake-run",
        }
    ]
    (finding,) = store.query("SELECT DISTINCT caller, sent_by, stack_hash FROM n_plus_one")
    assert finding == {
        "caller": "app.py:7 load",
        "sent_by": "app.py:7 load",
        "stack_hash": "stack-1",
    }
    senders = store.query("SELECT DISTINCT sent_by FROM queries")
    assert senders == [{"sent_by": "app.py:7 load"}]


def test_a_stopped_run_keeps_the_files_that_ran(tmp_path: Path) -> None:
    scripts = {**SCRIPTS, "h.py": Script(hang=True), "z.py": pytest_file("z.py", {"t": "passed"})}
    store = write_run(tmp_path, scripts, stop_at="h.py")
    (run,) = store.query("SELECT status, exit_code, files FROM runs")
    assert run == {"status": "stopped", "exit_code": 2, "files": 5}
    files = store.query("SELECT file, status FROM test_files ORDER BY file")
    assert [(f["file"], f["status"]) for f in files] == [
        ("a.py", "passed"),
        ("b.py", "failed"),
        ("c.py", "crashed"),
        ("h.py", "stopped"),
    ]  # z.py never started: no row, and nothing of it among the tests
    assert store.query("SELECT count(*) AS n FROM tests WHERE file = 'z.py'") == [{"n": 0}]


def test_a_second_run_adds_to_the_store(tmp_path: Path) -> None:
    first = write_run(tmp_path / "one", {"a.py": SCRIPTS["a.py"]})
    # the same store file, another run id: both runs are kept side by side
    scripts = {"b.py": SCRIPTS["b.py"]}
    runs = plan(tmp_path / "two", scripts, run_id="fake-run-2")
    Launcher(runs, FakeExecutor(scripts), [StoreWriter(first)]).run()
    rows = first.query("SELECT run_id, status, tests FROM runs ORDER BY run_id")
    assert rows == [
        {"run_id": "fake-run", "status": "passed", "tests": 2},
        {"run_id": "fake-run-2", "status": "failed", "tests": 1},
    ]
    assert first.query("SELECT DISTINCT run_id FROM test_files ORDER BY run_id") == [
        {"run_id": "fake-run"},
        {"run_id": "fake-run-2"},
    ]


def test_a_failed_write_is_kept_and_written_at_the_next_chance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Batch.write
    failures: list[str] = []

    def fails_once(self: Batch, con: duckdb.DuckDBPyConnection) -> None:
        if not failures:  # the first batch (the run's start) fails, as a full disk would
            failures.append("failed")
            raise duckdb.TransactionException("TransactionContext Error: injected conflict")
        original(self, con)

    monkeypatch.setattr(Batch, "write", fails_once)
    store = write_run(tmp_path, SCRIPTS)  # asserts the writer ends without an error
    assert failures == ["failed"]
    assert store.query("SELECT status FROM runs") == [{"status": "failed"}]
    files = store.query("SELECT file FROM test_files ORDER BY file")
    assert [f["file"] for f in files] == ["a.py", "b.py", "c.py"]
    assert store.query("SELECT count(*) AS n FROM queries") == [{"n": 4}]


def test_a_file_that_never_finished_is_written_at_the_end(tmp_path: Path) -> None:
    # as a replayed run whose launcher died: x.py started, ran a test, never finished
    store = Store(tmp_path / "store.duckdb")
    state = RunState(run_id="cut")
    writer = StoreWriter(store)
    events: list[ev.Event] = [
        ev.RunStarted(
            run_id="cut", root=str(tmp_path), files=["x.py", "y.py"], workers=1, executor="fake"
        ),
        ev.FileStarted(run_id="cut", file="x.py", path="x.py", pid=1, command=[]),
        replace(query("x.py::test_one", "SELECT 1"), run_id="cut", file="x.py"),
        *(
            ev.TestPhase(
                run_id="cut",
                file="x.py",
                nodeid="x.py::test_one",
                phase=phase,
                outcome="passed",
                duration=0.1,
                category="passed" if phase == "call" else "",
            )
            for phase in ("setup", "call", "teardown")
        ),
        ev.Output(run_id="cut", file="x.py", line=1, text="x.py ."),
        ev.RunDone(run_id="cut", status="interrupted", duration=1.0),
    ]
    dispatcher = Dispatcher(state, [writer])
    for event in events:
        dispatcher.deliver(event)
    dispatcher.close()
    assert writer.error is None and not dispatcher.errors
    files = store.query("SELECT file, status, passed, output_lines, queries FROM test_files")
    assert files == [
        {"file": "x.py", "status": "interrupted", "passed": 1, "output_lines": 1, "queries": 1}
    ]  # y.py never started: no row
    assert store.query("SELECT nodeid, outcome FROM tests") == [
        {"nodeid": "x.py::test_one", "outcome": "passed"}
    ]
    assert store.query("SELECT file FROM queries") == [{"file": "x.py"}]


def test_a_launcher_killed_mid_file_leaves_no_statement_without_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a query-heavy file hands its statements to the store before it ends; the launcher then
    # dies (the writer is never closed): the file's row is there, marked running
    monkeypatch.setattr("devformance_nb.store.writer.QUERY_BATCH", 2)
    store = Store(tmp_path / "store.duckdb")
    writer = StoreWriter(store)
    dispatcher = Dispatcher(RunState(run_id="cut"), [writer])
    dispatcher.deliver(
        ev.RunStarted(run_id="cut", root=str(tmp_path), files=["x.py"], workers=1, executor="fake")
    )
    dispatcher.deliver(ev.FileStarted(run_id="cut", file="x.py", path="x.py", pid=1, command=[]))
    for n in range(3):
        dispatcher.deliver(
            replace(query("x.py::test_one", f"SELECT {n}"), run_id="cut", file="x.py")
        )
    for _ in range(2):  # the run's start may still be writing: then this file's rows
        if writer._flusher is not None:
            writer._flusher.join()
        writer._flush_soon()
    assert writer._flusher is not None
    writer._flusher.join()
    assert writer.error is None
    assert store.query("SELECT count(*) AS n FROM queries") == [{"n": 2}]
    assert store.query(
        "SELECT count(*) AS n FROM queries q ANTI JOIN test_files f USING (run_id, file)"
    ) == [{"n": 0}]
    assert store.query("SELECT file, status FROM test_files") == [
        {"file": "x.py", "status": "running"}
    ]


def test_only_fingerprints_the_store_lacks_are_described(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devformance_nb.logic.fingerprint import fingerprint_hash
    from devformance_nb.store import rows

    store = Store(tmp_path / "runs.duckdb")
    described: list[str] = []
    real = rows.describe
    monkeypatch.setattr(rows, "describe", lambda fp: described.append(fp) or real(fp))
    old, new = "SELECT * FROM books WHERE id = ?", "SELECT * FROM authors WHERE id = ?"
    with store.writing() as con:
        rows.add_fingerprints(con, {fingerprint_hash(old): old})
        rows.add_fingerprints(con, {fingerprint_hash(old): old, fingerprint_hash(new): new})
    assert described == [old, new]
    stored = store.query("SELECT fingerprint, tables FROM fingerprints ORDER BY fingerprint")
    assert [(r["fingerprint"], list(r["tables"])) for r in stored] == [
        (new, ["authors"]),
        (old, ["books"]),
    ]
