"""The recorder every adapter hands its statements to: one ``Query`` event per statement.

Adapters time the statement themselves (they sit right around the driver call) and call
:meth:`Recorder.record` once, after it ran or failed. The recorder adds what is the same for
every library: the statement number, the test and phase, the project call site and the
optional parameter text. It never raises into the code under test.
"""

from __future__ import annotations

import os
import reprlib
import sys
import threading
from typing import TYPE_CHECKING, Any

from devformance_nb.capture.frames import FrameIndex
from devformance_nb.events import Query

if TYPE_CHECKING:
    from devformance_nb.eventlog import EventWriter
    from devformance_nb.plugin import TestContext

PARAMS_LIMIT = 500

_PARAMS_REPR = reprlib.Repr()
# reprlib never walks a whole executemany parameter list: it stops after a few items
_PARAMS_REPR.maxstring = 80
_PARAMS_REPR.maxother = 80
_PARAMS_REPR.maxlist = _PARAMS_REPR.maxtuple = _PARAMS_REPR.maxdict = _PARAMS_REPR.maxset = 16
_PARAMS_REPR.maxlevel = 3


class ClaimedCursor:
    """Marks a DB-API cursor class whose statements a DB-API adapter times and records itself.

    ORM adapters (SQLAlchemy, later Django) see such a cursor and only set ``devformance_orm``
    on it for the duration of their execute, so a statement is recorded once, by the layer
    closest to the driver, with the ORM's name attached.
    """

    #: the ORM whose execute is running on this cursor now ("" outside any ORM)
    devformance_orm: str = ""


def known_rows(rowcount: Any) -> int | None:
    """A DB-API ``rowcount`` as a row count, or None when the driver does not know (-1)."""
    if type(rowcount) is int and rowcount >= 0:
        return rowcount
    return None


def short_params(params: Any) -> str | None:
    """A short, capped repr of statement parameters (never iterates a whole list)."""
    if params is None or (type(params) in (tuple, list, dict) and not params):
        return None  # no parameters (the DB-API default of an empty sequence)
    try:
        text = _PARAMS_REPR.repr(params)
    except Exception:  # a user type with a broken __repr__
        text = f"<{type(params).__name__}>"
    return text if len(text) <= PARAMS_LIMIT else text[: PARAMS_LIMIT - 3] + "..."


class Recorder:
    """Turns timed statements into ``Query`` events on the child's writer (thread-safe)."""

    def __init__(self, writer: EventWriter, context: TestContext, options: dict[str, Any]):
        self.writer = writer
        self.context = context
        self.capture_params = bool(options.get("capture_params", False))
        self.frames = FrameIndex(str(options.get("root") or os.getcwd()))
        #: statements that could not be recorded (the error is swallowed, the count kept)
        self.dropped = 0
        self._lock = threading.Lock()
        self._qseq = 0

    def record(
        self,
        sql: Any,
        vendor: str,
        alias: str,
        start: float,
        duration: float,
        rows: int | None,
        orm: str = "",
        many: bool = False,
        params: Any = None,
    ) -> None:
        """Write one ``Query`` event for a statement that ran (or failed) just now.

        Called from inside the adapter's wrapper, so the stack above it is the code that
        issued the statement. Any failure here is counted in ``dropped``, never raised.
        """
        try:
            caller, stack_hash = self.frames.locate(sys._getframe(1))
            context = self.context
            nodeid, phase = context.nodeid, context.phase
            text = sql if type(sql) is str else str(sql)
            shown = short_params(params) if self.capture_params else None
            with self._lock:
                # numbered under the lock, so qseq follows the order of the events file
                self._qseq += 1
                self.writer.write(
                    Query(
                        nodeid=nodeid,
                        phase=phase,
                        qseq=self._qseq,
                        start=start,
                        duration=duration,
                        sql=text,
                        vendor=vendor,
                        alias=alias,
                        rows=rows,
                        caller=caller,
                        stack_hash=stack_hash,
                        orm=orm,
                        many=many,
                        params=shown,
                    )
                )
        except Exception:
            self.dropped += 1

    @property
    def count(self) -> int:
        """How many statements were recorded so far."""
        return self._qseq

    def flush(self) -> None:
        """Hand buffered events to the OS (the writer stays open)."""
        with self._lock:
            self.writer.flush()
