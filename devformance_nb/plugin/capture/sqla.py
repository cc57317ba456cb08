"""The SQLAlchemy adapter: engine-wide cursor events where needed, one event per statement.

SQLAlchemy is imported inside :meth:`SQLAlchemyAdapter.install`, which runs only once the
project has imported SQLAlchemy itself. A statement that SQLAlchemy's execution sends to the
driver (its innermost SQLAlchemy frame is a dialect's ``do_execute*``, see :data:`SENDERS`) is
recorded with ``orm="sqlalchemy"``, whoever records it.

Who records: when the DB-API cursor is a claimed one (a timing cursor of a DB-API adapter,
such as every sqlite3 and psycopg cursor), the DB-API layer records the statement, timed right
around the driver call with the driver's own rowcount; so a statement is never recorded twice.
Otherwise (a driver without an adapter, or a connection opened before capture started) this
adapter listens on the ``Engine`` class (every engine, including those made before install)
for ``before_cursor_execute``, ``after_cursor_execute`` and ``handle_error``, times from
``before`` to ``after`` (or ``handle_error``) and records; on claimed cursors those listeners
only tag the statement. The start time lives on the execution context, which every execution
has to itself, so nested executions cannot mix their timings and a failed one leaves nothing
behind.

A driver that runs statements in a thread of its own behind SQLAlchemy's asyncio bridge
(aiosqlite: SQLAlchemy's cursor wraps aiosqlite's, which wraps a claimed sqlite3 cursor) is
recorded by the DB-API layer too, in that thread, where the stack no longer shows the code
that sent the statement: ``before_cursor_execute`` tags the claimed cursor underneath with
the ORM and with the site found in SQLAlchemy's greenlet, so the statement is recorded once,
with the test's stack.

Any listener on the ``Engine`` class puts every execution of every engine on SQLAlchemy's
slower event path (several microseconds a statement), so the listeners are added only once
they can matter: the first time a pool hands out a DB-API connection whose cursors are not
claimed (a driver without an adapter, or a connection opened before capture started, say in a
fork server's warm-up). Until then the adapter only listens to pool checkouts, which happen
once per transaction, not per statement. Not seen: a connection checked out before capture
started and still held (a module-level ``engine.connect()`` in a fork server's warm-up).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter
from devformance_nb.plugin.capture.recorder import ClaimedCursor, known_rows

ORM = "sqlalchemy"
#: the dialect methods that hand SQLAlchemy's statements to the DB-API cursor (where
#: ``before_cursor_execute`` fires): a statement whose innermost SQLAlchemy frame is one of
#: them is SQLAlchemy's; a dialect's own probes on first connect are not
SENDERS = ("do_execute", "do_executemany", "do_execute_no_params")
#: key in a pool's connection record info: are the connection's cursors claimed?
CLAIMED = "devformance_claimed"
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


def claimed_inner(cursor: Any) -> ClaimedCursor | None:
    """The claimed cursor an adapting cursor wraps (SQLAlchemy's asyncio cursor around
    aiosqlite's around sqlite3's), or None."""
    for _ in range(2):
        cursor = getattr(cursor, "_cursor", None)
        if cursor is None:
            return None
        if isinstance(cursor, ClaimedCursor):
            return cursor
    return None


def claimed(dbapi_connection: Any) -> bool:
    """Whether a DB-API connection's cursors are timed by a DB-API adapter."""
    try:
        cursor = dbapi_connection.cursor()
    except Exception:  # a broken connection: let the engine listeners see what it does
        return False
    try:
        return isinstance(cursor, ClaimedCursor)
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


class SQLAlchemyAdapter(Adapter):
    """Tags or records every statement SQLAlchemy sends to a DB-API cursor."""

    library = "sqlalchemy"

    def install(self) -> None:
        """Tag SQLAlchemy's frames; listen to pool checkouts for unclaimed connections."""
        import sqlalchemy
        from sqlalchemy.pool import Pool

        self._listening: list[tuple[Any, str, Callable[..., Any]]] = []
        self._lock = threading.Lock()
        self._engines = False
        package = os.path.dirname(os.path.abspath(sqlalchemy.__file__))
        self.recorder.frames.tag_library(package, ORM, SENDERS)
        self._listen(Pool, "checkout", self._checked_out)

    @property
    def engines_listened(self) -> bool:
        """Whether the Engine class listeners are in place."""
        return self._engines

    def listen_to_engines(self) -> None:
        """Listen on the Engine class for cursor execution and errors (once)."""
        from sqlalchemy.engine import Engine

        with self._lock:
            if self._engines:
                return
            self._engines = True
            for name, listener in (
                ("before_cursor_execute", self._before),
                ("after_cursor_execute", self._after),
                ("handle_error", self._error),
            ):
                self._listen(Engine, name, listener)

    def _listen(self, target: Any, name: str, listener: Callable[..., Any]) -> None:
        from sqlalchemy import event

        event.listen(target, name, listener)
        self._listening.append((target, name, listener))

    def _checked_out(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if self._engines:
            return
        info = record.info  # the connection's own: forgotten when it is closed or recycled
        known = info.get(CLAIMED)
        if known is None:
            known = info[CLAIMED] = claimed(dbapi_connection)
        if not known:
            self.listen_to_engines()

    def uninstall(self) -> None:
        """Remove every listener added by ``install``."""
        listening = getattr(self, "_listening", [])
        if not listening:
            return
        from sqlalchemy import event

        while listening:
            target, name, listener = listening.pop()
            event.remove(target, name, listener)

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
            return
        inner = claimed_inner(cursor)
        if inner is not None:
            inner.devformance_orm = ORM
            inner.devformance_site = self.recorder.place_here()
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
        inner = claimed_inner(cursor)
        if inner is not None:
            inner.devformance_orm, inner.devformance_site = "", None
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
        inner = claimed_inner(cursor)
        if inner is not None:
            inner.devformance_orm, inner.devformance_site = "", None
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
