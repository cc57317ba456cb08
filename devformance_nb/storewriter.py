"""StoreWriter: the observer that persists a run into the store as it goes.

The run row is written when the run starts (status ``running``), each file's
rows when that file finishes, and the final status at the end, so a run
killed half way keeps every finished file. If the store is locked, the run
goes on; pending files are written at the next chance, and the run directory
keeps everything for ``devformance ingest``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd

from devformance_nb import events as ev
from devformance_nb.errors import StoreError
from devformance_nb.queryrows import QueryBuffer, finding_rows, write_queries
from devformance_nb.state import FileState, RunState, exit_code
from devformance_nb.store import Store, mark_interrupted, utc

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
COVERAGE_COLUMNS = (
    "coverage_percent",
    "coverage_statements",
    "coverage_covered",
    "coverage_branches",
    "coverage_covered_branches",
    "coverage_test_files",
    "coverage_note",
)
_CATEGORIES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
#: tables holding rows of a run (deleted first when a run is written again by ingest)
RUN_TABLES = (
    "test_files",
    "tests",
    "output_lines",
    "queries",
    "n_plus_one",
    "coverage_files",
    "coverage_by_test_file",
    "coverage_contexts",
)
#: statements buffered before a write in the middle of a file (bounds memory)
QUERY_BATCH = 100_000

Write = Callable[[duckdb.DuckDBPyConnection], None]


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes."""
    return _ANSI.sub("", text)


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """Bulk-insert ``rows`` (dicts with the same keys) into ``table`` through a DataFrame."""
    if not rows:
        return
    frame = pd.DataFrame.from_records(rows)
    columns = ", ".join(frame.columns)
    con.register("_devformance_rows", frame)
    try:
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _devformance_rows")
    finally:
        con.unregister("_devformance_rows")


def run_row(state: RunState) -> dict[str, Any]:
    """The ``runs`` row for ``state`` as it is now."""
    totals = state.totals()
    meta = state.meta
    return {
        "run_id": state.run_id,
        "started": utc(state.started),
        "finished": utc(state.finished),
        "status": state.status,
        "exit_code": exit_code(state.status) if state.finished else None,
        "duration": state.duration if state.finished else None,
        "root": state.root,
        "run_dir": meta.get("run_dir"),
        "git_commit": meta.get("git_commit"),
        "git_branch": meta.get("git_branch"),
        "git_dirty": meta.get("git_dirty"),
        "host": meta.get("host"),
        "pid": meta.get("pid"),
        "python": meta.get("python"),
        "pytest_version": meta.get("pytest_version"),
        "devformance_version": meta.get("devformance_version"),
        "workers": state.workers,
        "executor": state.executor,
        "config": json.dumps(state.config, default=str),
        "files": len(state.files),
        "tests": totals["tests"],
        "passed": totals.get("passed", 0),
        "failed": totals.get("failed", 0),
        "errors": totals.get("error", 0),
        "skipped": totals.get("skipped", 0),
        "xfailed": totals.get("xfailed", 0),
        "xpassed": totals.get("xpassed", 0),
        "slow_query_ms": state.slow_query_ms,
        "queries": sum(fs.queries for fs in state.files.values()),
        "query_time": sum(fs.query_time for fs in state.files.values()),
        "slow_queries": sum(len(fs.slow) for fs in state.files.values()),
        "n_plus_one": sum(len(fs.n_plus_one) for fs in state.files.values()),
        **coverage_columns(state.coverage_result, len(state.files)),
    }


def coverage_columns(result: Any, expected_files: int | None = None) -> dict[str, Any]:
    """The ``coverage_*`` columns of a run or file row (all None when not measured)."""
    if result is None:
        return dict.fromkeys(COVERAGE_COLUMNS)
    from devformance_nb import covdata

    return covdata.total_columns(result, expected_files)


def file_coverage_rows(state: RunState, fs: FileState) -> dict[str, list[dict[str, Any]]]:
    """``coverage_by_test_file`` and ``coverage_contexts`` rows of one file."""
    result = fs.coverage_info.result if fs.coverage_info is not None else None
    if result is None:
        return {}
    from devformance_nb import covdata

    return {
        "coverage_by_test_file": covdata.by_test_file_rows(result, state.run_id, fs.key),
        "coverage_contexts": covdata.context_rows(result, state.run_id, fs.key),
    }


def file_row(state: RunState, fs: FileState, log_path: str | None) -> dict[str, Any]:
    """The ``test_files`` row of one finished file."""
    counts = {c: fs.counts.get(c, 0) for c in _CATEGORIES}
    return {
        "run_id": state.run_id,
        "file": fs.key,
        "path": fs.path,
        "status": fs.status,
        "returncode": fs.returncode,
        "exitstatus": fs.exitstatus,
        "started": utc(fs.started),
        "finished": utc(fs.finished),
        "duration": fs.duration,
        "collected": fs.collected,
        "tests": fs.done,
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["error"],
        "skipped": counts["skipped"],
        "xfailed": counts["xfailed"],
        "xpassed": counts["xpassed"],
        "message": "\n".join([*fs.errors, fs.crash]).strip() or None,
        "log_path": log_path,
        "output_lines": fs.output_lines,
        "queries": fs.queries,
        "query_time": fs.query_time,
        "slow_queries": len(fs.slow),
        "n_plus_one": len(fs.n_plus_one),
        **coverage_columns(fs.coverage_info.result if fs.coverage_info is not None else None, 1),
        **_coverage_problem(fs),
    }


def _coverage_problem(fs: FileState) -> dict[str, Any]:
    # a child that could not measure (broken config, unsaved data) says why on its row
    info = fs.coverage_info
    if info is None or info.result is not None or not info.message:
        return {}
    return {"coverage_note": info.message}


def testcase_rows(state: RunState, fs: FileState) -> list[dict[str, Any]]:
    """The ``tests`` rows of one file."""
    return [
        {
            "run_id": state.run_id,
            "file": fs.key,
            "nodeid": t.nodeid,
            "outcome": t.outcome,
            "duration": t.duration,
            "setup_duration": t.durations.get("setup"),
            "call_duration": t.durations.get("call"),
            "teardown_duration": t.durations.get("teardown"),
            "message": t.message or None,
            "queries": t.queries,
            "query_time": t.query_time,
        }
        for t in fs.tests.values()
    ]


class StoreWriter:
    """Observer that writes the run into ``store``; ``error`` says if that failed."""

    def __init__(self, store: Store, log_paths: dict[str, str] | None = None):
        self.store = store
        self.log_paths = log_paths or {}
        self.error: StoreError | None = None
        self._output: dict[str, list[dict[str, Any]]] = {}
        self._pending: list[Write] = []
        self._failed_once = False
        self._queries = QueryBuffer()

    def on_event(self, event: ev.Event, state: RunState) -> None:
        if isinstance(event, ev.Query):
            self._queries.add(event)
            if len(self._queries) >= QUERY_BATCH:
                self._submit(self._query_write())
        elif isinstance(event, ev.Output):
            text = strip_ansi(event.text)
            lines = self._output.setdefault(event.file, [])
            lines.append(
                {"run_id": state.run_id, "file": event.file, "line": event.line, "text": text}
            )
        elif isinstance(event, ev.RunStarted):
            row = run_row(state)
            self._submit(lambda con: self._start_run(con, row))
        elif isinstance(event, ev.FileFinished):
            self._submit(self._file_write(state, state.file(event.file)))

    def tick(self, state: RunState) -> None:
        """Nothing to redraw."""

    def close(self, state: RunState) -> None:
        row = run_row(state)
        sources: list[dict[str, Any]] = []
        if state.coverage_result is not None:
            from devformance_nb import covdata

            sources = covdata.source_file_rows(state.coverage_result, state.run_id)

        def finish(con: duckdb.DuckDBPyConnection) -> None:
            self._finish_run(con, row)
            con.execute("DELETE FROM coverage_files WHERE run_id = ?", [row["run_id"]])
            insert_frame(con, "coverage_files", sources)

        self._submit(finish, final=True)

    def _start_run(self, con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
        mark_interrupted(con)
        for table in ("runs", *RUN_TABLES):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [row["run_id"]])
        insert_frame(con, "runs", [row])

    def _finish_run(self, con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
        con.execute("DELETE FROM runs WHERE run_id = ?", [row["run_id"]])
        insert_frame(con, "runs", [row])

    def _file_write(self, state: RunState, fs: FileState) -> Write:
        file_rows = [file_row(state, fs, self.log_paths.get(fs.key))]
        tests = testcase_rows(state, fs)
        output = self._output.pop(fs.key, [])
        findings = finding_rows(state.run_id, fs.n_plus_one)
        coverage = file_coverage_rows(state, fs)
        queries = self._query_write()

        def write(con: duckdb.DuckDBPyConnection) -> None:
            queries(con)
            insert_frame(con, "test_files", file_rows)
            insert_frame(con, "tests", tests)
            insert_frame(con, "output_lines", output)
            insert_frame(con, "n_plus_one", findings)
            for table, rows in coverage.items():
                insert_frame(con, table, rows)

        return write

    def _query_write(self) -> Write:
        frames = self._queries.take()
        return lambda con: write_queries(con, *frames)

    def _submit(self, write: Write, final: bool = False) -> None:
        self._pending.append(write)
        # after one lock failure, only the final attempt waits for the lock again
        timeout = self.store.lock_timeout if final or not self._failed_once else 0.0
        try:
            with Store(self.store.path, lock_timeout=timeout).writing() as con:
                con.execute("BEGIN TRANSACTION")
                for pending in self._pending:
                    pending(con)
                con.execute("COMMIT")
            self._pending.clear()
            self.error = None
        except StoreError as exc:
            self._failed_once = True
            self.error = exc
