"""The Django adapter: an execute wrapper on every connection of every database alias.

Installed once ``django.db`` is imported (settings need not be configured yet). It wraps the
connections that are already open in this thread and listens to Django's
``connection_created`` signal, which every ``DatabaseWrapper`` sends each time it opens a
DB-API connection: so connections opened later, in other threads, and the test database
connections pytest-django makes (including the temporary ``postgres`` one used to create
them) are wrapped too. The wrapper is inserted first in ``execute_wrappers``, so a project's
own ``with connection.execute_wrapper(...)`` blocks, which pop their last wrapper on exit,
never remove it.

Who records (as with SQLAlchemy): Django's cursors sit on a DB-API cursor. When that one is
claimed (the sqlite3 and psycopg adapters time it), the driver layer records the statement
and the wrapper only tags it ``orm="django"`` for the duration of the call; the Django alias
("default", "replica", ...) is given to the DB-API connection as ``devformance_alias``, which
the driver adapters report as the alias. Otherwise (a driver without an adapter, Django's
server-side cursors on psycopg 3) the wrapper times the call and records it itself, with
Django's vendor and alias. Either way a statement is one event.

Savepoints and the transaction statements Django wraps around each test are recorded like
any statement; detection never reports them as N+1 or slow.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter
from devformance_nb.plugin.capture.recorder import ClaimedCursor, Recorder, known_rows

ORM = "django"
DISPATCH_UID = "devformance_nb.plugin.capture.djangodb"

_time = time.time
_perf = time.perf_counter


class ExecuteWrapper:
    """The callable put in each connection's ``execute_wrappers``."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder: Recorder | None = recorder

    def __call__(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        recorder = self.recorder
        cursor = getattr(context["cursor"], "cursor", None)
        if isinstance(cursor, ClaimedCursor):
            outer = cursor.devformance_orm
            cursor.devformance_orm = ORM
            try:
                return execute(sql, params, many, context)
            finally:
                cursor.devformance_orm = outer
        if recorder is None:  # uninstalled while a connection still holds the wrapper
            return execute(sql, params, many, context)
        start, began = _time(), _perf()
        rows = None
        try:
            result = execute(sql, params, many, context)
            rows = known_rows(getattr(cursor, "rowcount", -1))
            return result
        finally:
            connection = context["connection"]
            recorder.record(
                sql,
                str(getattr(connection, "vendor", "")),
                str(getattr(connection, "alias", "")),
                start,
                _perf() - began,
                rows,
                ORM,
                many,
                params,
            )


class DjangoAdapter(Adapter):
    """Wraps every Django database connection, now and later."""

    library = "django.db"

    def install(self) -> None:
        """Wrap this thread's open connections and listen for new ones."""
        from django.db.backends.signals import connection_created

        self._wrapper = ExecuteWrapper(self.recorder)
        self._wrapped: weakref.WeakSet[Any] = weakref.WeakSet()
        connection_created.connect(self._created, weak=False, dispatch_uid=DISPATCH_UID)
        self._listening = True
        from django.conf import settings
        from django.db import connections

        if not settings.configured:  # nothing can be open; never import the settings early
            return
        try:
            opened = connections.all(initialized_only=True)
        except Exception:  # broken settings: the project will hear of them itself
            opened = []
        for connection in opened:
            if connection.connection is not None:
                self._wrap(connection)

    def uninstall(self) -> None:
        """Stop listening and take the wrapper out of every connection that holds it."""
        if getattr(self, "_listening", False):
            from django.db.backends.signals import connection_created

            connection_created.disconnect(dispatch_uid=DISPATCH_UID)
            self._listening = False
        wrapper = getattr(self, "_wrapper", None)
        if wrapper is None:
            return
        wrapper.recorder = None
        for connection in list(self._wrapped):
            wrappers = connection.execute_wrappers
            while wrapper in wrappers:
                wrappers.remove(wrapper)
        self._wrapped.clear()

    def _created(self, sender: Any = None, connection: Any = None, **kwargs: Any) -> None:
        if connection is not None:
            self._wrap(connection)

    def _wrap(self, connection: Any) -> None:
        wrappers = connection.execute_wrappers
        if self._wrapper not in wrappers:
            wrappers.insert(0, self._wrapper)
            self._wrapped.add(connection)
        # the driver adapters report this as the statement's alias (a C connection without
        # a __dict__ cannot take it: the driver's own alias stays)
        with contextlib.suppress(AttributeError):
            connection.connection.devformance_alias = str(connection.alias)
