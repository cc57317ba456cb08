"""The SQLAlchemy adapter: engine-wide cursor events, one event per statement.

Listens on the ``Engine`` class (every engine, including those made before install) for
``before_cursor_execute``, ``after_cursor_execute`` and ``handle_error``. SQLAlchemy is
imported inside :meth:`SQLAlchemyAdapter.install`, which runs only once the project has
imported SQLAlchemy itself.

Who records: when the DB-API cursor is a claimed one (a timing cursor of a DB-API adapter,
such as every sqlite3 cursor), the DB-API layer records the statement, timed right around the
driver call with the driver's own rowcount, and this adapter only tags it ``orm="sqlalchemy"``
while SQLAlchemy's execute runs; so a statement is never recorded twice. Otherwise (a driver
without an adapter, or a connection opened before capture started) this adapter times from
``before`` to ``after`` (or ``handle_error``) and records. The start time lives on the
execution context, which every execution has to itself, so nested executions cannot mix
their timings and a failed one leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from devformance_nb.capture.adapters import Adapter
from devformance_nb.capture.recorder import ClaimedCursor, known_rows

ORM = "sqlalchemy"
#: attribute holding (wall start, perf_counter start) on an execution context
STARTED = "_devformance_started"

_time = time.time
_perf = time.perf_counter


def engine_alias(conn: Any) -> str:
    """The database name of a connection's URL (a file's basename for SQLite)."""
    try:
        database = conn.engine.url.database or ""
        if conn.dialect.name == "sqlite":
            return ":memory:" if database in ("", ":memory:") else os.path.basename(database)
        return str(database)
    except Exception:  # a connection whose engine is gone or a mocked one
        return ""


def _pop_start(context: Any) -> tuple[float, float] | None:
    started: tuple[float, float] | None = getattr(context, STARTED, None)
    if started is not None:
        setattr(context, STARTED, None)
    return started


class SQLAlchemyAdapter(Adapter):
    """Tags or records every statement SQLAlchemy sends to a DB-API cursor."""

    library = "sqlalchemy"

    def install(self) -> None:
        """Listen on the Engine class for cursor execution and errors."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self._listening: list[tuple[str, Callable[..., Any]]] = []
        for name, listener in (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("handle_error", self._error),
        ):
            event.listen(Engine, name, listener)
            self._listening.append((name, listener))

    def uninstall(self) -> None:
        """Remove every listener added by ``install``."""
        listening = getattr(self, "_listening", [])
        if not listening:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        while listening:
            name, listener = listening.pop()
            event.remove(Engine, name, listener)

    def _before(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if isinstance(cursor, ClaimedCursor):
            cursor.devformance_orm = ORM
        elif context is not None:
            setattr(context, STARTED, (_time(), _perf()))

    def _after(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if isinstance(cursor, ClaimedCursor):
            cursor.devformance_orm = ""
            return
        started = _pop_start(context)
        if started is not None:
            rows = known_rows(getattr(cursor, "rowcount", -1))
            self._record(conn, statement, parameters, started, rows, executemany)

    def _error(self, exception_context: Any) -> None:
        context = exception_context.execution_context
        cursor = getattr(context, "cursor", None)
        if isinstance(cursor, ClaimedCursor):
            cursor.devformance_orm = ""  # the DB-API layer recorded the failed statement
            return
        started = _pop_start(context)
        if started is not None:
            many = bool(getattr(context, "executemany", False))
            conn = exception_context.connection
            statement = exception_context.statement
            self._record(conn, statement, exception_context.parameters, started, None, many)

    def _record(
        self,
        conn: Any,
        statement: Any,
        parameters: Any,
        started: tuple[float, float],
        rows: int | None,
        many: bool,
    ) -> None:
        duration = _perf() - started[1]
        try:
            vendor = str(conn.dialect.name)
        except Exception:
            vendor = ""
        self.recorder.record(
            statement, vendor, engine_alias(conn), started[0], duration, rows, ORM, many, parameters
        )
