"""The psycopg2 adapter: a connection factory whose cursors time every statement.

``psycopg2.connect`` (which Django, SQLAlchemy and ``psycopg2.pool`` call through the module)
is replaced by a function that passes a ``connection_factory``: a subclass of psycopg2's
connection (or of the caller's own factory) whose ``cursor()`` mixes :class:`TimingCursor`
into the requested cursor class (``cursor_factory`` argument, the connection's default, or
psycopg2's cursor). The timing cursor wraps exactly the driver call, so duration and
``rowcount`` are the driver's own, and each ``execute``/``executemany`` is one event.

psycopg2's classes are C types, so the subclasses are made at install (this module must not
import psycopg2 before the project does). Not captured: connections opened before install,
async connections, ``callproc`` and the ``copy_*`` methods.
"""

from __future__ import annotations

import time
from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter
from devformance_nb.plugin.capture.pg3 import VENDOR
from devformance_nb.plugin.capture.recorder import ClaimedCursor, Recorder, known_rows

#: the recorder of the installed adapter; None makes every timing class a pass-through
_recorder: Recorder | None = None
#: psycopg2.connect as found at install time (restored at uninstall)
_original_connect: Any = None
#: psycopg2's own classes, and the timing subclasses made from them at install
_base_cursor: Any = None
_base_connection: Any = None
_timing_connection: Any = None

_time = time.time
_perf = time.perf_counter


def query_text(query: Any, connection: Any) -> Any:
    """A statement as text: ``str`` as is, bytes decoded, ``psycopg2.sql`` objects rendered."""
    if type(query) is str:
        return query
    if isinstance(query, (bytes, bytearray, memoryview)):
        return bytes(query).decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)
    if as_string is not None:
        try:
            return as_string(connection)
        except Exception:  # a closed connection or an unrenderable composition
            pass
    return query


class TimingCursor(ClaimedCursor):
    """Mixed into a psycopg2 cursor class: records each ``execute`` and ``executemany``."""

    def execute(self, query: Any, vars: Any = None) -> Any:
        """psycopg2's ``execute``, timed and recorded as one statement."""
        recorder = _recorder
        if recorder is None:
            return super().execute(query, vars)  # type: ignore[misc]
        start, began = _time(), _perf()
        try:
            result = super().execute(query, vars)  # type: ignore[misc]
        except BaseException:
            _done(self, recorder, query, start, began, False, vars, failed=True)
            raise
        _done(self, recorder, query, start, began, False, vars)
        return result

    def executemany(self, query: Any, vars_list: Any) -> Any:
        """psycopg2's ``executemany``, timed and recorded as one statement (``many``)."""
        recorder = _recorder
        if recorder is None:
            return super().executemany(query, vars_list)  # type: ignore[misc]
        start, began = _time(), _perf()
        try:
            result = super().executemany(query, vars_list)  # type: ignore[misc]
        except BaseException:
            _done(self, recorder, query, start, began, True, vars_list, failed=True)
            raise
        _done(self, recorder, query, start, began, True, vars_list)
        return result


def _done(
    cursor: Any,
    recorder: Recorder,
    query: Any,
    start: float,
    began: float,
    many: bool,
    params: Any,
    failed: bool = False,
) -> None:
    duration = _perf() - began
    connection = cursor.connection
    rows = None if failed else known_rows(cursor.rowcount)
    recorder.record(
        query_text(query, connection),
        VENDOR,
        connection_alias(connection),
        start,
        duration,
        rows,
        cursor.devformance_orm,
        many,
        params,
    )


def connection_alias(connection: Any) -> str:
    """The alias an ORM adapter gave ``connection``, else its database name (cached)."""
    try:
        alias = connection.__dict__.get("devformance_alias")
        if alias is None:
            alias = str(connection.info.dbname)
            connection.devformance_alias = alias
        return str(alias)
    except Exception:  # a closed connection, or a C connection without a __dict__
        return ""


_combined: dict[tuple[type, type], type] = {}


def _combine(timing: type, theirs: type) -> type:
    """A subclass of both ``timing`` and ``theirs`` (cached), or ``theirs`` if impossible."""
    if issubclass(theirs, timing):
        return theirs
    key = (timing, theirs)
    found = _combined.get(key)
    if found is None:
        try:
            found = type(f"Timing{theirs.__name__}", (timing, theirs), {})
        except TypeError:  # incompatible layouts: leave theirs untimed
            found = theirs
        _combined[key] = found
    return found


def cursor_class(factory: Any) -> Any:
    """The timing version of a cursor class (psycopg2's own for None); other callables kept."""
    if factory is None:
        factory = _base_cursor
    if isinstance(factory, type) and issubclass(factory, _base_cursor):
        return _combine(TimingCursor, factory)
    return factory


def connection_class(factory: Any) -> Any:
    """The timing version of a connection class (psycopg2's own for None)."""
    if factory is None:
        return _timing_connection
    if isinstance(factory, type) and issubclass(factory, _base_connection):
        return _combine(_timing_connection, factory)
    return factory


def _make_timing_connection(base: type) -> type:
    def cursor(self: Any, *args: Any, **kwargs: Any) -> Any:
        """A cursor whose class has the timing cursor mixed in."""
        if len(args) > 1:  # cursor(name, cursor_factory, ...)
            args = (args[0], cursor_class(args[1]), *args[2:])
        else:
            factory = kwargs.get("cursor_factory") or self.cursor_factory
            kwargs["cursor_factory"] = cursor_class(factory)
        return base.cursor(self, *args, **kwargs)  # type: ignore[attr-defined]

    return type("TimingConnection", (base,), {"cursor": cursor, "__module__": __name__})


def connect(
    dsn: Any = None, connection_factory: Any = None, cursor_factory: Any = None, **kw: Any
) -> Any:
    """``psycopg2.connect`` with a timing connection factory (the caller's kept, combined)."""
    if _recorder is not None and not (kw.get("async") or kw.get("async_")):
        connection_factory = connection_class(connection_factory)
    return _original_connect(
        dsn, connection_factory=connection_factory, cursor_factory=cursor_factory, **kw
    )


class Psycopg2Adapter(Adapter):
    """Times every psycopg2 connection opened after install, whoever opens it."""

    library = "psycopg2"

    def install(self) -> None:
        """Make the timing classes and replace ``psycopg2.connect``."""
        global _recorder, _original_connect, _base_cursor, _base_connection, _timing_connection
        import psycopg2
        import psycopg2.extensions

        if _base_connection is not psycopg2.extensions.connection:
            _base_cursor = psycopg2.extensions.cursor
            _base_connection = psycopg2.extensions.connection
            _timing_connection = _make_timing_connection(_base_connection)
            _combined.clear()
        if psycopg2.connect is not connect:
            _original_connect = psycopg2.connect
        self._saved = psycopg2.connect
        _recorder = self.recorder
        psycopg2.connect = connect

    def uninstall(self) -> None:
        """Restore ``psycopg2.connect``; open timing connections become pass-throughs."""
        global _recorder
        _recorder = None
        saved = getattr(self, "_saved", None)
        if saved is None:
            return
        import psycopg2

        if psycopg2.connect is connect:  # a later patch by someone else is theirs to undo
            psycopg2.connect = saved
