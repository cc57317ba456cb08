"""The ``sqlite3`` adapter: a connection factory whose cursors time every statement.

``sqlite3.connect`` (and ``sqlite3.dbapi2.connect``, which SQLAlchemy and Django call) is
replaced by a function that passes a ``factory``: a subclass of ``sqlite3.Connection`` (or of
the caller's own factory) whose ``cursor()`` returns a timing cursor and whose ``execute``
shortcuts go through that cursor (the C shortcuts would bypass it). The timing cursor wraps
exactly the driver call, so duration and ``rowcount`` are the driver's own.

Row counts: ``rowcount`` for DML (and executemany, where it is the total); SELECT rows are
fetched lazily after ``execute`` returns, so they stay unknown (None) rather than fetched.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from types import FrameType
from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter
from devformance_nb.plugin.capture.recorder import ClaimedCursor, Recorder, known_rows

VENDOR = "sqlite"
#: indexes of ``factory`` and ``uri`` in sqlite3.connect's positional arguments after database
FACTORY_INDEX = 4
URI_INDEX = 6
#: packages whose own bookkeeping databases are not the project's SQL (coverage's data file)
TOOL_PACKAGES = ("coverage",)
TOOL_FRAMES = 8

#: the recorder of the installed adapter; None makes every timing class a pass-through
_recorder: Recorder | None = None
#: the connect function found at install time (restored at uninstall)
_original_connect: Any = None

_time = time.time
_perf = time.perf_counter
_cursor_execute = sqlite3.Cursor.execute


def database_alias(database: Any, uri: bool) -> str:
    """A short name for a database argument: ':memory:', a file's basename, or ''."""
    try:
        name = os.fsdecode(database)
    except TypeError:
        return ""
    if uri and name.startswith("file:"):
        name = name[len("file:") :].partition("?")[0]
    if name in ("", ":memory:"):
        return name
    return os.path.basename(name.rstrip("/\\")) or name


class TimingCursor(ClaimedCursor, sqlite3.Cursor):
    """A cursor that records each execute, executemany and executescript."""

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        recorder = _recorder
        if recorder is None:
            return super().execute(sql, parameters)
        start, began = _time(), _perf()
        try:
            # the driver's own method, unless a caller's cursor class (combined with ours)
            # may override it: super() costs a lookup through the classes on each statement
            if type(self) is TimingCursor:
                result = _cursor_execute(self, sql, parameters)
            else:
                result = super().execute(sql, parameters)
        except BaseException:
            _done(self, recorder, sql, start, began, None, False, parameters)
            raise
        duration = _perf() - began
        # _done inlined: this is the hottest path of the capture
        rows = self.rowcount
        recorder.record(
            sql,
            VENDOR,
            getattr(self.connection, "devformance_alias", ""),
            start,
            duration,
            rows if type(rows) is int and rows >= 0 else None,
            self.devformance_orm,
            False,
            parameters,
            self.devformance_site,
        )
        return result

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        recorder = _recorder
        if recorder is None:
            return super().executemany(sql, seq_of_parameters)
        start, began = _time(), _perf()
        try:
            result = super().executemany(sql, seq_of_parameters)
        except BaseException:
            _done(self, recorder, sql, start, began, None, True, seq_of_parameters)
            raise
        _done(self, recorder, sql, start, began, self.rowcount, True, seq_of_parameters)
        return result

    def executescript(self, sql_script: str, /) -> Any:
        recorder = _recorder
        if recorder is None:
            return super().executescript(sql_script)
        start, began = _time(), _perf()
        try:
            return super().executescript(sql_script)
        finally:
            # a script's rowcount is meaningless (-1): its statements are not counted apart
            _done(self, recorder, sql_script, start, began, None, False, None)


def _done(
    cursor: TimingCursor,
    recorder: Recorder,
    sql: str,
    start: float,
    began: float,
    rowcount: Any,
    many: bool,
    params: Any,
) -> None:
    duration = _perf() - began
    alias = getattr(cursor.connection, "devformance_alias", "")
    rows = known_rows(rowcount)
    orm, site = cursor.devformance_orm, cursor.devformance_site
    recorder.record(sql, VENDOR, alias, start, duration, rows, orm, many, params, site)


class TimingConnection(sqlite3.Connection):
    """A connection whose cursors, and execute shortcuts, are timing cursors."""

    devformance_alias: str = ""

    def cursor(self, factory: Any = None) -> Any:
        """A timing cursor (of the caller's cursor class, combined, when one is given)."""
        return super().cursor(_cursor_class(factory))

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str, /) -> Any:
        return self.cursor().executescript(sql_script)


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
        except TypeError:  # incompatible layouts (their __slots__): leave theirs untimed
            found = theirs
        _combined[key] = found
    return found


def _cursor_class(factory: Any) -> Any:
    if factory is None or factory is sqlite3.Cursor:
        return TimingCursor
    if isinstance(factory, type) and issubclass(factory, sqlite3.Cursor):
        return _combine(TimingCursor, factory)
    return factory  # any other callable: not ours to wrap


def _connection_class(factory: Any) -> Any:
    if factory is None or factory is sqlite3.Connection:
        return TimingConnection
    if isinstance(factory, type) and issubclass(factory, sqlite3.Connection):
        return _combine(TimingConnection, factory)
    return factory


def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
    """``sqlite3.connect`` with a timing connection factory (the caller's kept, combined)."""
    if _opened_by_tool(sys._getframe(1)):
        return _original_connect(database, *args, **kwargs)
    if len(args) > FACTORY_INDEX:
        factory = _connection_class(args[FACTORY_INDEX])
        args = (*args[:FACTORY_INDEX], factory, *args[FACTORY_INDEX + 1 :])
    else:
        kwargs["factory"] = _connection_class(kwargs.get("factory"))
    connection = _original_connect(database, *args, **kwargs)
    if isinstance(connection, TimingConnection):
        uri = args[URI_INDEX] if len(args) > URI_INDEX else kwargs.get("uri", False)
        connection.devformance_alias = database_alias(database, bool(uri))
    return connection


def _tool_folders() -> tuple[str, ...]:
    folders = []
    for name in TOOL_PACKAGES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            folders.append(os.path.dirname(path) + os.sep)
    return tuple(folders)


def _opened_by_tool(frame: FrameType | None) -> bool:
    """Whether a test tool (coverage saving its data file) opens this connection."""
    folders = _tool_folders()
    depth = 0
    while folders and frame is not None and depth < TOOL_FRAMES:
        if frame.f_code.co_filename.startswith(folders):
            return True
        frame, depth = frame.f_back, depth + 1
    return False


class SQLite3Adapter(Adapter):
    """Times every sqlite3 connection opened after install, whoever opens it."""

    library = "sqlite3"

    def install(self) -> None:
        """Replace ``sqlite3.connect`` and ``sqlite3.dbapi2.connect``."""
        global _recorder, _original_connect
        if sqlite3.connect is not connect:
            _original_connect = sqlite3.connect
        self._saved = (sqlite3.connect, sqlite3.dbapi2.connect)
        _recorder = self.recorder
        sqlite3.connect = connect
        sqlite3.dbapi2.connect = connect

    def uninstall(self) -> None:
        """Restore both connect functions; open timing connections become pass-throughs."""
        global _recorder
        _recorder = None
        saved = getattr(self, "_saved", None)
        if saved is None:
            return
        # a later patch by someone else (a test's monkeypatch) is theirs to undo: keep it
        if sqlite3.connect is connect:
            sqlite3.connect = saved[0]
        if sqlite3.dbapi2.connect is connect:
            sqlite3.dbapi2.connect = saved[1]
