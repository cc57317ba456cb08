"""A pytest plugin that counts the SQL statements SQLite itself runs, as a ground truth.

Loaded with ``-p sqltrace`` (this folder on ``PYTHONPATH``) into a plain pytest run, without
devformance. Every ``sqlite3`` connection gets a trace callback (``set_trace_callback``):
SQLite calls it for each statement it starts, whoever issued it. At the end the count is
written to the file named by ``SQLTRACE_OUT``.

What SQLite runs is more than what the project issues, so the count is reconciled to
devformance's definition of a statement (one per ``execute``, ``executemany`` or
``executescript`` call the project's code or its ORM makes):

- ``COMMIT`` and ``ROLLBACK`` that the driver runs for ``Connection.commit()`` and
  ``rollback()`` (SQLAlchemy ends every transaction that way) are not counted: no statement
  was sent;
- the ``BEGIN`` the driver slips in before a data change in ``sqlite3``'s legacy transaction
  mode is not counted; its text is ``"BEGIN " + isolation_level``, which no project spells;
- ``executemany`` (traced once per parameter set) and ``executescript`` (once per statement
  of the script) count once per call.

Nothing here records what the statements were or where they came from: only SQLite's own
count, so the comparison with the store is independent of devformance's capture.

``python sqltrace.py ROOT FILE...`` runs each test file alone, as devformance does (session
fixtures run once per file), in a child forked from this warm process (two at a time), and
prints ``{file: counts}`` as JSON.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

ENV_OUT = "SQLTRACE_OUT"

_lock = threading.Lock()
_counts = {"traced": 0, "counted": 0, "driver_commit_rollback": 0, "implicit_begin": 0}
_local = threading.local()  # per thread: inside commit()/rollback(), or inside a batch call


def _trace(sql: str) -> None:
    with _lock:
        _counts["traced"] += 1
        if getattr(_local, "driver", 0):
            _counts["driver_commit_rollback"] += 1
        elif getattr(_local, "legacy", None) is not None and sql == "BEGIN " + _local.legacy:
            _counts["implicit_begin"] += 1
        elif getattr(_local, "batch", None) is not None:
            if not _local.batch:  # the first statement of an executemany/executescript call
                _local.batch = True
                _counts["counted"] += 1
        else:
            _counts["counted"] += 1


@contextmanager
def _flag(name: str, value: Any) -> Iterator[None]:
    before = getattr(_local, name, None)
    setattr(_local, name, value)
    try:
        yield
    finally:
        setattr(_local, name, before)


class TracedCursor(sqlite3.Cursor):
    """Marks batch calls and the legacy mode's isolation level (None: the driver never begins
    a transaction by itself); SQLite's trace does the counting."""

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        with _flag("legacy", self.connection.isolation_level):
            return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        with _flag("legacy", self.connection.isolation_level), _flag("batch", False):
            return super().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str, /) -> Any:
        with _flag("batch", False):
            return super().executescript(sql_script)


class TracedConnection(sqlite3.Connection):
    """Traces every statement; its cursors (and execute shortcuts) are traced cursors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_trace_callback(_trace)

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or TracedCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str, /) -> Any:
        return self.cursor().executescript(sql_script)

    def commit(self) -> None:
        with _flag("driver", 1):
            super().commit()

    def rollback(self) -> None:
        with _flag("driver", 1):
            super().rollback()


_connect = sqlite3.connect


def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
    """``sqlite3.connect`` with the traced connection class."""
    kwargs.setdefault("factory", TracedConnection)
    return _connect(database, *args, **kwargs)


sqlite3.connect = connect
sqlite3.dbapi2.connect = connect


def pytest_unconfigure(config: pytest.Config) -> None:
    """Write the counts (``counted`` is the reconciled number of statements)."""
    out = os.environ.get(ENV_OUT)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(_counts, fh)


def _run_alone(root: str, test_file: str, out: str) -> int:
    """In a forked child: plain pytest on one file, counts to ``out``; returns the pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.dup2(2, 1)  # pytest's report to stderr: stdout carries the counts only
        os.chdir(root)
        os.environ[ENV_OUT] = out
        args = [test_file, "-q", "-p", "no:cacheprovider", "-p", "sqltrace"]
        code = int(pytest.main(args))
    finally:
        os._exit(code)


def main(root: str, files: list[str], workers: int = 2) -> dict[str, dict[str, int]]:
    """Counts of each file of ``files`` (relative to ``root``), each run alone."""
    sys.path.insert(0, root)  # the project's own pythonpath; imports warm the children
    import sqlalchemy  # noqa: F401

    counts: dict[str, dict[str, int]] = {}
    running: dict[int, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        todo = list(files)
        while todo or running:
            while todo and len(running) < workers:
                test_file = todo.pop(0)
                out = os.path.join(tmp, f"{len(counts) + len(running)}.json")
                running[_run_alone(root, test_file, out)] = (test_file, out)
            pid, status = os.wait()
            test_file, out = running.pop(pid)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{test_file} failed under plain pytest")
            with open(out, encoding="utf-8") as fh:
                counts[test_file] = json.load(fh)
    return counts


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
