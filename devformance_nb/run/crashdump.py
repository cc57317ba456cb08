"""What a dead child left behind: its fatal-error traceback and the test it was running.

pytest turns on ``faulthandler`` in every child (its faulthandler plugin, on the stderr it
had before capturing), so a segfault or an abort prints "Fatal Python error: ..." and the
Python stack of every thread to the output the reader already reads. ``CrashDump`` keeps that
block (capped) as the lines go by, and follows the child's test reports to know which test
was running; the reader puts both in the file's crash message (with the out-of-memory
verdict of ``oomwatch`` for a SIGKILL), which the live view, the terminal and the store show.
"""

from __future__ import annotations

import contextlib
import signal

from devformance_nb.core import events as ev

#: lines of a fatal-error dump kept (a dump lists every thread; the first is the crashing one)
MAX_DUMP_LINES = 40
_START = "Fatal Python error:"
_END = "Extension modules:"


class CrashDump:
    """Fed every output line and child event of one file, in order."""

    def __init__(self) -> None:
        self._dump: list[str] = []
        self._in_dump = False
        #: the test whose set-up finished and whose teardown has not (None between tests)
        self.running: str | None = None

    def line(self, text: str) -> None:
        """Keep the lines of a fatal-error dump: from its first line to the list of
        extension modules that ends it (one long line, left to the log)."""
        if text.startswith(_START):
            self._dump, self._in_dump = [text], True
        elif self._in_dump:
            if text.startswith(_END):
                self._in_dump = False
            elif len(self._dump) < MAX_DUMP_LINES:
                self._dump.append(text)

    def event(self, event: ev.Event) -> None:
        """Follow the child's test reports."""
        if isinstance(event, ev.TestPhase):
            if event.phase == "setup":
                self.running = event.nodeid
            elif event.phase == "teardown" and event.nodeid == self.running:
                self.running = None

    @property
    def dump(self) -> str:
        """The fatal-error dump seen, '' if none."""
        return "\n".join(self._dump).strip()

    def describe(
        self, signal_number: int | None, what: str, cause: str = "", evidence: str = ""
    ) -> str:
        """The crash message: ``what`` happened (with the signal's name), its ``cause`` when
        known (out of memory), during which test, the ``evidence`` for the cause, then the
        dump when there is one. The first line's start says the most: surfaces cut it."""
        if signal_number is not None:
            with contextlib.suppress(ValueError):  # a number Python has no name for
                what = f"{what} ({signal.Signals(signal_number).name})"
        if cause:
            what = f"{what}, {cause}"
        if self.running:
            what = f"{what} while {self.running} was running"
        if evidence:
            what = f"{what} ({evidence})"
        dump = self.dump
        return f"{what}\n{dump}" if dump else what
