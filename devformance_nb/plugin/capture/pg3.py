"""The psycopg 3 adapter: every cursor a connection makes is a timing cursor.

psycopg 3 connections make cursors from two attributes, ``cursor_factory`` and
``server_cursor_factory`` (named cursors), set in ``Connection.__init__`` and by
``connect(cursor_factory=...)``; Django and SQLAlchemy pass their own classes there. Install
puts a property of each name on ``psycopg.Connection``: the setter stores the class as
usual (in the instance's ``__dict__``), the getter hands out a subclass of it with
:class:`TimingCursor` mixed in while capture runs. So every connection, also one opened
before install or by a pool, and whatever cursor class it was given, times each
``execute`` and ``executemany`` right around the driver call, once per statement.
Uninstall removes the properties: connections read their stored classes directly again.

Not captured: cursors constructed directly (``psycopg.ClientCursor(conn)``; Django's
server-side ``.iterator()`` cursors, which the Django adapter records instead), ``copy()``,
``stream()``, and async connections. In pipeline mode a statement's duration is the time to
queue it. The vendor is ``postgresql`` (Django's and SQLAlchemy's name); the alias is the
connection's ``devformance_alias`` when an ORM adapter set one (Django's alias), else the
database name.
"""

from __future__ import annotations

import time
from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter
from devformance_nb.plugin.capture.recorder import ClaimedCursor, Recorder, known_rows

VENDOR = "postgresql"
#: the connection attributes psycopg makes cursors from
FACTORIES = ("cursor_factory", "server_cursor_factory")

#: the recorder of the installed adapter; None makes every timing cursor a pass-through
_recorder: Recorder | None = None

_time = time.time
_perf = time.perf_counter


def query_text(query: Any, connection: Any) -> Any:
    """A statement as text: ``str`` as is, bytes decoded, ``psycopg.sql`` objects rendered."""
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


def connection_alias(connection: Any) -> str:
    """The alias an ORM adapter gave ``connection``, else its database name (cached)."""
    try:
        alias = connection.__dict__.get("devformance_alias")
        if alias is None:
            alias = str(connection.info.dbname)
            connection.devformance_alias = alias
        return str(alias)
    except Exception:  # a closed or broken connection
        return ""


class TimingCursor(ClaimedCursor):
    """Mixed into a psycopg cursor class: records each ``execute`` and ``executemany``."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        """psycopg's ``execute``, timed and recorded as one statement."""
        recorder = _recorder
        if recorder is None:
            return super().execute(query, params, **kwargs)  # type: ignore[misc]
        start, began = _time(), _perf()
        try:
            result = super().execute(query, params, **kwargs)  # type: ignore[misc]
        except BaseException:
            _done(self, recorder, query, start, began, False, params, failed=True)
            raise
        _done(self, recorder, query, start, began, False, params)
        return result

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        """psycopg's ``executemany``, timed and recorded as one statement (``many``)."""
        recorder = _recorder
        if recorder is None:
            return super().executemany(query, params_seq, **kwargs)  # type: ignore[misc]
        start, began = _time(), _perf()
        try:
            result = super().executemany(query, params_seq, **kwargs)  # type: ignore[misc]
        except BaseException:
            _done(self, recorder, query, start, began, True, params_seq, failed=True)
            raise
        _done(self, recorder, query, start, began, True, params_seq)
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
    text = query_text(query, connection)
    alias = connection_alias(connection)
    recorder.record(
        text, VENDOR, alias, start, duration, rows, cursor.devformance_orm, many, params
    )


_timed: dict[type, type] = {}


def timing_class(theirs: Any) -> Any:
    """``theirs`` with :class:`TimingCursor` mixed in (made once per class), or ``theirs``."""
    if not isinstance(theirs, type) or issubclass(theirs, TimingCursor):
        return theirs
    found = _timed.get(theirs)
    if found is None:
        try:
            found = type(f"Timed{theirs.__name__}", (TimingCursor, theirs), {})
        except TypeError:  # incompatible layouts: leave theirs untimed
            found = theirs
        _timed[theirs] = found
    return found


def _factory_property(name: str) -> property:
    def get(connection: Any) -> Any:
        try:
            theirs = connection.__dict__[name]
        except KeyError:
            raise AttributeError(name) from None
        return theirs if _recorder is None else timing_class(theirs)

    def set_(connection: Any, value: Any) -> None:
        connection.__dict__[name] = value

    return property(get, set_, doc=f"psycopg's {name}, timed by devformance_nb's capture")


class Psycopg3Adapter(Adapter):
    """Times every cursor of every psycopg 3 (sync) connection."""

    library = "psycopg"

    def install(self) -> None:
        """Put the timing ``cursor_factory`` properties on ``psycopg.Connection``."""
        global _recorder
        import psycopg

        self._class: Any = psycopg.Connection
        self._added: list[str] = []
        for name in FACTORIES:
            if name in vars(self._class):  # a class attribute of its own: not ours to replace
                continue
            setattr(self._class, name, _factory_property(name))
            self._added.append(name)
        _recorder = self.recorder

    def uninstall(self) -> None:
        """Remove the properties; connections read their own factories again."""
        global _recorder
        _recorder = None
        for name in getattr(self, "_added", []):
            if isinstance(vars(self._class).get(name), property):
                delattr(self._class, name)
        self._added = []
