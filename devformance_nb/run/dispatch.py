"""The dispatcher: fold each event into the run state, then tell every observer.

The launcher's loop, ``devformance ingest`` and the tests all deliver events through one
``Dispatcher``, so every observer sees the same state for the same events wherever they
come from. A failing observer is reported and skipped; the others, and the run, go on.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from devformance_nb.core import events as ev
from devformance_nb.run.state import FileState, Observer, RunState


def print_failure(text: str) -> None:
    """Where a failing observer is reported by default: the launcher's stderr."""
    print(f"devformance: an observer failed:\n{text}", file=sys.stderr)


class Dispatcher:
    """Owns a run's state: ``deliver`` folds an event and notifies the observers in order.

    Call it from one thread only (the launcher's loop): observers never need locks.
    ``errors`` keeps the traceback of every observer call that raised.
    """

    def __init__(
        self,
        state: RunState,
        observers: Sequence[Observer] = (),
        report: Callable[[str], None] = print_failure,
    ):
        self.state = state
        self.observers = list(observers)
        self.errors: list[str] = []
        self._report = report

    def deliver(self, event: ev.Event) -> FileState | None:
        """Fold ``event`` into the state, then pass it to each observer; returns its file."""
        touched = self.state.apply(event)
        self.notify(event)
        return touched

    def notify(self, event: ev.Event) -> None:
        """Pass an event already folded into the state to each observer."""
        self._each([(o.on_event, (event, self.state)) for o in self.observers])

    def tick(self) -> None:
        """Tell every observer that time passed (views redraw here)."""
        self._each([(o.tick, (self.state,)) for o in self.observers])

    def close(self) -> None:
        """Tell every observer that the run ended."""
        self._each([(o.close, (self.state,)) for o in self.observers])

    def _each(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        # Ctrl-C can land inside an observer (a view writing to a terminal that reads slowly):
        # the others still hear the event, then the interrupt goes on to the caller
        interrupted = False
        for method, args in calls:
            try:
                self._call(method, *args)
            except KeyboardInterrupt:
                interrupted = True
        if interrupted:
            raise KeyboardInterrupt

    def _call(self, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except Exception:  # one broken observer must not end the run for the others
            text = traceback.format_exc(limit=6)
            self.errors.append(text)
            self._report(text)
