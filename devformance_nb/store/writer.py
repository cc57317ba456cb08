"""StoreWriter: the observer that persists a run into the store as it goes.

The run row is written when the run starts (status ``running``), each file's
rows when that file finishes, and the final status at the end, so a run
killed half way keeps every finished file. A file that never finished (the
run was stopped or its launcher died) is written at the run's end with what
it got to do. If the store cannot be written (locked, an I/O error, a
conflict), the run goes on; the batch is kept and written at the next chance,
the error is reported on the run, and the run directory keeps everything for
``devformance ingest``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from devformance_nb.core import events as ev
from devformance_nb.core.errors import StoreError
from devformance_nb.run.queryfacts import QueryFacts
from devformance_nb.run.state import FileState, RunState, exit_code
from devformance_nb.store.database import Store, mark_interrupted, registered, utc
from devformance_nb.store.queryload import insert_files
from devformance_nb.store.rows import (
    QueryBuffer,
    coverage_columns,
    finding_rows,
    source_file_rows,
    stack_row,
    test_file_coverage_rows,
    unused_eager_rows,
    write_queries,
    write_stacks,
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CATEGORIES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
#: tables holding rows of a run (deleted first when a run is written again by ingest)
RUN_TABLES = (
    "test_files",
    "tests",
    "output_lines",
    "queries",
    "n_plus_one",
    "unused_eager_loads",
    "coverage_files",
    "coverage_by_test_file",
    "coverage_contexts",
)
#: statements buffered before a write in the middle of a file (bounds memory)
QUERY_BATCH = 100_000


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes."""
    return _ANSI.sub("", text)


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """Bulk-insert ``rows`` (dicts with the same keys) into ``table`` through a DataFrame."""
    if not rows:
        return
    import pandas as pd  # here, not at import: the first write runs while children do

    frame = pd.DataFrame.from_records(rows)
    columns = ", ".join(frame.columns)
    with registered(con, "_devformance_rows", frame):
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _devformance_rows")


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


def file_coverage_rows(state: RunState, fs: FileState) -> dict[str, list[dict[str, Any]]]:
    """``coverage_by_test_file`` and ``coverage_contexts`` rows of one file."""
    result = fs.coverage_info.result if fs.coverage_info is not None else None
    return test_file_coverage_rows(result, state.run_id, fs.key)


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
        "worker": fs.worker,
        "worker_address": fs.worker_address or None,
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
        "peak_rss": fs.peak_rss,
        "cpu_user": fs.cpu_user,
        "cpu_system": fs.cpu_system,
        "peak_threads": fs.peak_threads,
        "peak_processes": fs.peak_processes,
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
            "cpu": t.cpu,
            "memory_growth": t.memory_growth,
            "max_queries": t.max_queries,
        }
        for t in fs.tests.values()
    ]


@dataclass
class Batch:
    """Rows waiting to be written, in one transaction, in the order a reader needs them."""

    start: dict[str, Any] | None = None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queries: list[tuple[Any, Any]] = field(default_factory=list)
    finish: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    #: finished files whose statements DuckDB loads from their events files: run id -> files
    statements: dict[str, list[tuple[Path, QueryFacts]]] = field(default_factory=dict)
    #: more writes for the same transaction, after the rows (ingest's bulk query load)
    extra: list[Callable[[duckdb.DuckDBPyConnection], None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.start or self.rows or self.queries or self.finish or self.statements or self.extra
        )

    def add(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Queue ``rows`` for ``table`` (one insert per table and batch).

        A ``test_files`` row replaces the file's earlier one (its ``running`` row, written
        when it started), in this batch and, when written, in the store.
        """
        if rows and table == "test_files":
            keys = {row["file"] for row in rows}
            kept = [row for row in self.rows.get(table, []) if row["file"] not in keys]
            self.rows[table] = kept + rows
        elif rows:
            self.rows.setdefault(table, []).extend(rows)

    def merge(self, later: Batch) -> Batch:
        """This batch followed by ``later`` (a failed write goes first next time)."""
        for table, rows in later.rows.items():
            self.add(table, rows)
        self.queries += later.queries
        for run_id, files in later.statements.items():
            self.statements.setdefault(run_id, []).extend(files)
        self.start = self.start or later.start
        self.finish, self.sources = later.finish or self.finish, later.sources or self.sources
        self.extra += later.extra
        return self

    def write(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write everything (inside the caller's transaction)."""
        if self.start is not None:
            _start_run(con, self.start)
        for frames in self.queries:
            write_queries(con, *frames)
        replaced: dict[str, list[str]] = {}
        for row in self.rows.get("test_files", []):
            replaced.setdefault(row["run_id"], []).append(row["file"])
        for run_id, files in replaced.items():  # one statement, not one a file
            con.execute(
                "DELETE FROM test_files WHERE run_id = ? AND list_contains(?, file)",
                [run_id, files],
            )
        for table in RUN_TABLES:
            insert_frame(con, table, self.rows.get(table, []))
        write_stacks(con, self.rows.get("stacks", []))
        for run_id, finished in self.statements.items():
            insert_files(con, run_id, finished)  # one DuckDB pass over every file's events
        if self.finish is not None:
            _finish_run(con, self.finish, self.sources)
        for write in self.extra:
            write(con)


def _start_run(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    mark_interrupted(con)
    for table in ("runs", *RUN_TABLES):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [row["run_id"]])
    insert_frame(con, "runs", [row])


def _finish_run(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any], sources: list[dict[str, Any]]
) -> None:
    con.execute("DELETE FROM runs WHERE run_id = ?", [row["run_id"]])
    insert_frame(con, "runs", [row])
    con.execute("DELETE FROM coverage_files WHERE run_id = ?", [row["run_id"]])
    insert_frame(con, "coverage_files", sources)


class StoreWriter:
    """Observer that writes the run into ``store``; ``error`` says if that failed.

    Finished files are written in batches, at most every ``FLUSH_SECONDS``, by a
    background thread: one short connection and one insert per table for every
    file that finished since the last write, so DuckDB's per-connection and
    per-statement costs do not grow with the number of files, and the loop never
    waits for the disk. A run killed half way loses at most the last second of
    files from the store; its run directory still has them for ``ingest``.
    A file's ``test_files`` row is written when it starts (status ``running``) and
    replaced when it ends, so a launcher killed mid-file leaves no statement or output
    without its file's row (the next run marks it interrupted; ``ingest`` completes it).

    ``defer=True`` writes nothing before ``close``, then the whole run in one
    transaction (``ingest``: a run is in the store whole or not at all).
    ``waits`` lists what the writer had to wait for (another process's lock).
    """

    FLUSH_SECONDS = 1.0

    def __init__(
        self, store: Store, log_paths: dict[str, str] | None = None, *, defer: bool = False
    ):
        self.store = store
        self.log_paths = log_paths or {}
        self.error: StoreError | None = None
        self.waits: list[str] = []
        self.defer = defer
        self._output: dict[str, list[dict[str, Any]]] = {}
        self._batch = Batch()
        self._written: set[str] = set()
        self._failed: Batch | None = None
        self._failed_once = False
        self._queries = QueryBuffer()
        #: each file's statements read from its events file, until the file is written
        self._statements: dict[str, ev.FileQueries] = {}
        self._flusher: threading.Thread | None = None
        self._last_flush = 0.0

    def on_event(self, event: ev.Event, state: RunState) -> None:
        if isinstance(event, ev.Query):
            self._queries.add(event)
            if len(self._queries) >= QUERY_BATCH:  # bounds memory on query-heavy files
                self._batch.queries.append(self._queries.take())
        elif isinstance(event, ev.FileQueries):
            self._statements[event.file] = event
        elif isinstance(event, ev.Stack):
            self._batch.add("stacks", [stack_row(state.run_id, event)])
        elif isinstance(event, ev.Output):
            text = strip_ansi(event.text)
            lines = self._output.setdefault(event.file, [])
            lines.append(
                {"run_id": state.run_id, "file": event.file, "line": event.line, "text": text}
            )
        elif isinstance(event, ev.RunStarted):
            self._batch.start = run_row(state)
            self._flush_soon()  # the run shows as running at once
        elif isinstance(event, ev.FileStarted):
            fs = state.file(event.file)
            self._batch.add("test_files", [file_row(state, fs, self.log_paths.get(fs.key))])
        elif isinstance(event, ev.FileFinished):
            self._add_file(state, state.file(event.file))

    def tick(self, state: RunState) -> None:
        """Hand what finished since the last write to the background writer."""
        if time.monotonic() - self._last_flush >= self.FLUSH_SECONDS:
            self._flush_soon()

    def also_write(self, write: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """Run ``write`` in the transaction that writes the rest of the run (at close)."""
        self._batch.extra.append(write)

    def close(self, state: RunState) -> None:
        """Write everything left and the final run row; waits for the store (the last chance).

        A file that started and never finished (stopped, or replayed from a launcher that
        died) is written too, with the tests, output and statements it got to.
        """
        for fs in state.files.values():
            if fs.key not in self._written and fs.started is not None:
                self._add_file(state, fs)
        if len(self._queries):  # statements of no file the state knows: keep them anyway
            self._batch.queries.append(self._queries.take())
        self._batch.finish = run_row(state)
        if state.coverage_result is not None:
            self._batch.sources = source_file_rows(state.coverage_result, state.run_id)
        if self._flusher is not None:
            self._flusher.join()
        self._write(self._take(), final=True)

    def _add_file(self, state: RunState, fs: FileState) -> None:
        self._written.add(fs.key)
        batch = self._batch
        if len(self._queries):
            batch.queries.append(self._queries.take())
        statements = self._statements.pop(fs.key, None)
        if statements is not None:  # DuckDB reads them from the events file, in the write
            files = batch.statements.setdefault(state.run_id, [])
            files.append((Path(statements.path), statements.facts))
        batch.add("test_files", [file_row(state, fs, self.log_paths.get(fs.key))])
        batch.add("tests", testcase_rows(state, fs))
        batch.add("output_lines", self._output.pop(fs.key, []))
        batch.add("n_plus_one", finding_rows(state.run_id, fs.n_plus_one))
        batch.add("unused_eager_loads", unused_eager_rows(state.run_id, fs.unused_eager))
        for table, rows in file_coverage_rows(state, fs).items():
            batch.add(table, rows)

    def _take(self) -> Batch:
        batch, self._batch = self._batch, Batch()
        if self._failed is not None:  # what could not be written before goes first
            batch, self._failed = self._failed.merge(batch), None
        return batch

    def _flush_soon(self) -> None:
        if self.defer:
            return
        if self._flusher is not None and self._flusher.is_alive():
            return  # the next tick tries again
        if not self._batch and self._failed is None:
            return
        self._last_flush = time.monotonic()
        batch = self._take()
        self._flusher = threading.Thread(
            target=self._write, args=(batch,), name="devformance-store", daemon=True
        )
        self._flusher.start()

    def _write(self, batch: Batch, final: bool = False) -> None:
        if not batch:
            return
        # after one lock failure, only the final attempt waits for the lock again
        timeout = self.store.lock_timeout if final or not self._failed_once else 0.0
        store = Store(self.store.path, lock_timeout=timeout, on_wait=self._waiting)
        try:
            with store.writing() as con:
                con.execute("BEGIN TRANSACTION")
                batch.write(con)
                con.execute("COMMIT")
            self.error = None
        except Exception as exc:  # any failure keeps the batch: never drop rows silently
            self._failed_once = True
            self._failed = batch
            self.error = exc if isinstance(exc, StoreError) else write_failed(self.store, exc)

    def _waiting(self, message: str) -> None:
        if message not in self.waits:
            self.waits.append(message)


def write_failed(store: Store, exc: Exception) -> StoreError:
    """A StoreError for an unexpected failure while writing (I/O, a conflict, pandas)."""
    return StoreError(
        f"could not write the store {store.path}: {type(exc).__name__}: {exc}. Nothing is "
        "lost: the run directory keeps everything, load it with `devformance ingest RUN_DIR`"
    )
