"""Which files get a live pane, and a fixed pool of panes rebound to them.

A pane is about 15 widget models; one per file sank the view at 400 files (Jupyter's
server dropped the burst and the front end could not build the Accordion). So the panes
are a pool made once on the main thread, never more than ``POOL_PANES``, and rebound (trait
assignments only, any thread) to the files worth a pane: every file when the run fits the
pool; otherwise the files the user opened, the failing ones and those running long enough
to watch. Every file stays in the table either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devformance_nb.run.state import FileState
from devformance_nb.ui import text
from devformance_nb.ui.pane import FilePane

#: the most panes a view makes (a run with more files shows the ones that matter)
POOL_PANES = 40
#: failing files given a pane by themselves (the rest: in the table, opened on request)
FAILING_PANES = 10
#: files the user opened that keep their pane (the oldest gives way)
OPENED_PANES = 5
#: seconds a file runs before it gets a pane in a run larger than the pool (a file done in a
#: blink would only flash by)
RUNNING_PANE_AFTER = 1.0


def pool_size(files: int, workers: int) -> int:
    """Panes a view makes for a run: one per file when they fit, else enough for the opened
    and failing files and one per worker."""
    if files <= POOL_PANES:
        return files
    return min(POOL_PANES, OPENED_PANES + FAILING_PANES + workers)


def wanted(
    order: Sequence[str],
    files: Mapping[str, FileState],
    opened: Sequence[str],
    dismissed: set[str],
    size: int,
) -> list[str]:
    """The files to show in panes (at most ``size``), in the run's order: all of them when
    the run fits; else the opened ones, the failing ones, then those running for a while."""
    if len(order) <= size:
        return [k for k in order if k not in dismissed or k in opened]
    chosen = list(dict.fromkeys(opened[-OPENED_PANES:]))
    failing = [k for k in order if k not in dismissed and _failing(files.get(k))]
    running = [k for k in order if k not in dismissed and _watchable(files.get(k))]
    for key in [*failing[:FAILING_PANES], *running]:
        if len(chosen) >= size:
            break
        if key not in chosen:
            chosen.append(key)
    position = {k: i for i, k in enumerate(order)}
    return sorted(chosen[:size], key=lambda k: position.get(k, len(position)))


def _failing(fs: FileState | None) -> bool:
    return fs is not None and text.is_failing(fs)


def _watchable(fs: FileState | None) -> bool:
    return fs is not None and fs.status == "running" and (fs.duration or 0.0) >= RUNNING_PANE_AFTER


class PanePool:
    """Panes made on the main thread (``grow``), bound to files from any thread (``bind``)."""

    def __init__(self, on_close: Callable[[str], None]) -> None:
        self.panes: list[FilePane] = []
        #: file key -> the pane showing it
        self.bound: dict[str, FilePane] = {}
        self._on_close = on_close

    def grow(self, size: int) -> None:
        """Have ``size`` panes (main thread only: this makes widgets)."""
        while len(self.panes) < size:
            pane = FilePane("")
            pane.on_close = self._on_close
            self.panes.append(pane)

    def bind(self, keys: Sequence[str], log_path: Callable[[str], Path | None]) -> list[FilePane]:
        """Show ``keys`` (at most one per pane): panes keep the file they show, freed panes
        take the new ones. Returns the panes in the order of ``keys``."""
        keys = list(keys)[: len(self.panes)]
        keep = set(keys)
        for key in [k for k in self.bound if k not in keep]:
            del self.bound[key]
        taken = {id(p) for p in self.bound.values()}
        free = [p for p in self.panes if id(p) not in taken]
        for key in keys:
            if key not in self.bound:
                pane = free.pop(0)
                pane.rebind(key, log_path(key))
                self.bound[key] = pane
        return [self.bound[k] for k in keys]

    def close(self) -> None:
        """Close every pane (frees their comms)."""
        for pane in self.panes:
            pane.close()
        self.panes, self.bound = [], {}
