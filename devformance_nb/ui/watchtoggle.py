"""The live view's Watch toggle: on every batch of saves under the project, a --changed run.

On, a background thread watches the project root with ``devformance watch``'s own
``saves`` (the same filter and debounce). Each batch of saves is planned against
the last recorded run (``store.selection.plan``): a save no test file depends on is only
said in the header; otherwise the view starts a --changed run of the files found when the
toggle went on (found again when files come or go, or pytest's configuration changes).
A run never starts while another goes in the view: the thread waits for it, and the saves
made meanwhile (watchfiles keeps them) make one more round after it. Off ends the watch;
a run it started goes on to its end.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import ipywidgets as w

from devformance_nb.core.config import Config, Overrides, db_path, load_config
from devformance_nb.core.errors import DevformanceError
from devformance_nb.logic.discovery import TestFile
from devformance_nb.store.database import Store
from devformance_nb.store.selection import plan

#: how often a round waiting for the view's run looks again (the toggle may go off meanwhile)
_WAIT_STEP = 0.5


class Watched(Protocol):
    """What the toggle needs of the view (``LiveRunView``)."""

    settings: Overrides

    @property
    def running(self) -> bool: ...

    def select_files(self) -> tuple[Path, list[TestFile]]:
        """The project root and the test files the header selects."""
        ...

    def start(self, *, changed: bool = False, files: list[TestFile] | None = None) -> Any:
        """Start a run in the view (RuntimeError while one goes)."""
        ...

    def say(self, notice: str) -> None:
        """Show ``notice`` in the view's header."""
        ...

    def reserve_panes(self, count: int) -> None:
        """Make the panes a run of ``count`` files gets (main thread)."""
        ...


class WatchToggle:
    """A ToggleButton "Watch" and the thread it starts and ends."""

    def __init__(self, view: Watched) -> None:
        self.view = view
        self.button = w.ToggleButton(
            value=False,
            description="Watch",
            tooltip="on every save, run the test files the change affects (--changed)",
            icon="eye",
        )
        self.button.observe(self._toggled, names="value")
        #: the saves of each round that started a run (newest last), for tests and the curious
        self.rounds: list[list[str]] = []
        #: the saves of a round waiting for the view's run to end (None: none waits)
        self.queued: list[str] | None = None
        #: the error that ended the watch, if one did
        self.error: BaseException | None = None
        #: set once the watcher listens (a save made before then is not seen)
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def watching(self) -> bool:
        """Whether the watch thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _toggled(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        """Start watching (what turning the toggle on does); twice is harmless."""
        if self.watching:
            return
        try:
            root, files = self.view.select_files()  # on the main thread: a discovery child
        except DevformanceError as exc:  # no tests, a bad path: said, and the toggle goes off
            self.error = exc
            self.view.say(f"watch not started: {exc}")
            self.button.value = False
            return
        config = load_config(root, **self.view.settings)
        self.view.reserve_panes(len(files))  # the rounds' runs start off the main thread
        self._stop = threading.Event()
        self.listening = threading.Event()
        self.error = None
        self._thread = threading.Thread(
            target=self._watch,
            args=(root, config, files, self._stop, self.listening),
            name="devformance-watch",
            daemon=True,
        )
        self._thread.start()
        self.view.say(f"starting to watch {root}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching (what turning the toggle off does); a run it started goes on."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self.button.value:
            self.button.value = False

    def _watch(
        self,
        root: Path,
        config: Config,
        files: list[TestFile],
        stop: threading.Event,
        listening: threading.Event,  # this watch's own: a later start makes another
    ) -> None:
        try:
            # here, not at the top: the CLI's module brings rich, which a view that never
            # watches has no use for
            from devformance_nb.cli.watch import saves

            store = Store(db_path(root, config), config.lock_timeout)
            for saved, rediscover in saves(root, stop, lambda: self._listens(root, listening)):
                if rediscover:
                    files = self.view.select_files()[1]
                self._round(store, root, config, files, saved, stop)
        except Exception as exc:  # the thread ends; the header says why, the toggle goes off
            self.error = exc
            self.view.say(f"watch ended: {exc}")
            stop.set()
            self.button.value = False

    def _listens(self, root: Path, listening: threading.Event) -> None:
        listening.set()
        self.view.say(f"watching {root}: each save runs what it affects")

    def _round(
        self,
        store: Store,
        root: Path,
        config: Config,
        files: list[TestFile],
        saved: list[str],
        stop: threading.Event,
    ) -> None:
        while not stop.is_set():
            while self.view.running and not stop.is_set():
                self.queued = saved
                stop.wait(_WAIT_STEP)  # one run at a time: this round waits for it
            self.queued = None
            if stop.is_set():
                return
            # planned after the wait: the run just ended may have recorded what it read
            selection = plan(store, root, [f.key for f in files], None, config.python)
            if not selection.selected:
                self.view.say(f"{', '.join(saved)}: no test file affected")
                return
            try:
                self.view.start(changed=True, files=files)
            except RuntimeError:  # Run was pressed in between: wait for that run
                continue
            self.rounds.append(saved)
            return
