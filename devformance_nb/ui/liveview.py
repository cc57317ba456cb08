"""LiveRunView: the live notebook dashboard, a thin observer of the headless launcher.

Threads (DESIGN.md, "Live UI"): widgets are created and displayed on the main
thread (``__init__``, ``expect``, ``start``). The launcher's loop thread calls
``on_event`` (plain Python bookkeeping only, it must stay cheap: a busy run
sends tens of thousands of output lines a second) and ``tick``/``close``,
which replace changed widgets' state in full, one comm message per widget,
within a message budget. While a run goes, main-thread handlers (Stop, Run)
only set plain flags that the next tick draws, so no widget is written from
two threads at once.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from devformance_nb.api import facade as api
from devformance_nb.api.facade import PathsArg
from devformance_nb.api.handle import Run
from devformance_nb.core import events as ev
from devformance_nb.core.config import (
    Overrides,
    available_cpus,
    find_root,
    load_config,
    overrides_from,
    with_settings_doc,
)
from devformance_nb.core.errors import DevformanceError, NoTestsFoundError
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile, discover
from devformance_nb.run.state import FileState, Observer, RunState
from devformance_nb.ui import cards, text
from devformance_nb.ui.filetable import FileTable
from devformance_nb.ui.filters import split_filter
from devformance_nb.ui.pane import CSS, Budget, FileBuffer, FilePane, assign
from devformance_nb.ui.panepool import PanePool, pool_size, wanted
from devformance_nb.ui.timeline import TimelineView
from devformance_nb.ui.watchtoggle import WatchToggle

if TYPE_CHECKING:
    from distributed import Client

#: the shortest interval between two redraws (the launcher ticks every 0.25 s)
MIN_REDRAW = 0.2


class LiveRunView:
    """A live dashboard of a test run: header, summary cards, a table of every file (sorted,
    filtered, paged) and an Accordion of live panes: every file's when the run has at most
    ``panepool.POOL_PANES`` files, else the files opened from the table, the failing ones and
    those running for a while.

    ``LiveRunView(paths, root=..., workers=..., ...)`` then ``display(view)`` and
    ``view.start()`` (or the Run button) runs the tests with it. To watch a
    run you start yourself, call ``view.expect(file_keys)`` on the main
    thread first and pass the view in ``observers``.
    """

    @with_settings_doc
    def __init__(
        self,
        paths: PathsArg = None,
        *,
        root: str | os.PathLike[str] | None = None,
        filter: str = "",
        observers: Sequence[Observer] = (),
        client: Client | None = None,
        workers: int | None = None,
        db: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        executor: str | None = None,
        preload: list[str] | tuple[str, ...] | None = None,
        pytest_args: list[str] | tuple[str, ...] | None = None,
        python: str | None = None,
        slow_query_ms: float | None = None,
        n_plus_one_min: int | None = None,
        allow_n_plus_one: list[str] | tuple[str, ...] | None = None,
        query_budgets: dict[str, int] | None = None,
        capture_sql: bool | None = None,
        capture_params: bool | None = None,
        coverage: bool | None = None,
        coverage_source: list[str] | tuple[str, ...] | None = None,
        coverage_contexts: bool | None = None,
        lock_timeout: float | None = None,
        scheduler: str | None = None,
        dask_retries: int | None = None,
        dask_ship: str | None = None,
        dask_warm: bool | None = None,
    ):
        """A view of the tests in ``paths`` (default: the project's testpaths), not started.

        ``filter`` is the header's file filter (paths or globs); ``workers`` its
        initial worker count, which a run started from the view uses; ``client`` a
        ``distributed.Client`` its runs use (``executor="dask"``).
        """
        settings = overrides_from(locals())  # first: locals() holds only the parameters here
        # the header's worker count is what a run uses: not a setting kept beside it
        workers = settings.pop("workers", None)
        self.paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths or [])
        self.root = root
        self.settings: Overrides = settings
        self.observers = list(observers)
        self.client = client
        #: the run this view started last (its ``stop``/``wait`` work from any thread)
        self.run: Run | None = None
        #: comm update messages sent by redraws (for the message budget and the bench)
        self.messages = 0
        self.state: RunState | None = None
        self._buffers: dict[str, FileBuffer] = {}
        self._pool = PanePool(on_close=self._dismiss)
        #: every file of the run, in its order; the files shown in panes, in the same order
        self._order: list[str] = []
        self._shown: list[str] = []
        #: files opened from the table (newest last) and panes the user closed
        self._opened: list[str] = []
        self._dismissed: set[str] = set()
        #: the file whose pane is open, and the index the view itself last opened
        self._selected: str | None = None
        self._auto_index: int | None = None
        self._run_id: str | None = None
        self._run_dir: str | None = None
        self._active = False
        self._start_lock = threading.Lock()
        self._stopping = False
        self._notice = ""
        self._user_chose = False
        self._drawing = False
        self._unshown = 0
        self._last_redraw = 0.0
        #: comm messages and bytes a second the redraws may use (replace it to tune)
        self.budget = Budget()
        self._build(workers or self._configured_workers() or available_cpus(), filter)

    # ----- main thread -------------------------------------------------------

    def _configured_workers(self) -> int | None:
        # the project's [tool.devformance] workers, for the header's initial value
        root = Path(self.root).resolve() if self.root is not None else find_root()
        try:
            return load_config(root, **self.settings).workers
        except DevformanceError:
            return None  # start() reports a bad setting when it matters

    def _build(self, workers: int, filter_text: str) -> None:
        self.run_button = w.Button(description="Run", button_style="primary")
        self.stop_button = w.Button(description="Stop", button_style="danger", disabled=True)
        self.workers = w.BoundedIntText(
            value=workers, min=1, max=512, description="workers",
            style={"description_width": "initial"}, layout=w.Layout(width="9em"),
        )  # fmt: skip
        self.filter = w.Text(
            value=filter_text, description="files", placeholder="all, or e.g. tests/api *order*",
            style={"description_width": "initial"}, layout=w.Layout(width="18em"),
        )  # fmt: skip
        self.status = w.HTML(value=text.status_html(None))
        self.summary = w.HTML(value=cards.summary_html(cards.Summary()))
        self.table = FileTable(on_open=self.open_file, on_change=self._request_redraw)
        self.timeline = TimelineView()
        self.accordion = w.Accordion()
        self.accordion.observe(self._on_select, names="selected_index")
        self.filter.observe(lambda _: self._request_redraw(), names="value")
        self.run_button.on_click(self._on_run_click)
        self.stop_button.on_click(lambda _: self.stop())
        self.watch = WatchToggle(self)
        header = w.HBox(
            [
                self.run_button,
                self.stop_button,
                self.watch.button,
                self.workers,
                self.filter,
                self.status,
            ],
            layout=w.Layout(align_items="center", flex_flow="row wrap"),
        )
        parts = [w.HTML(CSS), header, self.summary, self.timeline.widget, self.table.box]
        self.widget = w.VBox([*parts, self.accordion])
        self.widget.add_class("devformance-view")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def expect(self, keys: Sequence[str]) -> None:
        """Show these files, pending, replacing an earlier run's (main thread)."""
        self.state = None  # the earlier run's figures are not this one's
        self._order, self._buffers, self._shown = [], {}, []
        self._opened, self._dismissed = [], set()
        self._selected, self._auto_index, self._user_chose = None, None, False
        self._run_dir = None
        self.accordion.selected_index = None
        self._add(keys)

    def _add(self, keys: Sequence[str]) -> None:
        for key in keys:
            if key not in self._buffers:
                self._buffers[key] = FileBuffer()
                self._order.append(key)
        # widgets are made on the main thread only (the Watch toggle starts runs from its own)
        if threading.current_thread() is threading.main_thread():
            self._pool.grow(pool_size(len(self._order), self.workers.value))
        self._redraw(self.state, time.monotonic(), final=True)

    def reserve_panes(self, count: int) -> None:
        """Make the panes a run of ``count`` files gets, ahead of it (main thread: runs the
        Watch toggle starts from its own thread can only bind panes made before)."""
        self._pool.grow(pool_size(count, self.workers.value))

    def pane_for(self, key: str) -> FilePane | None:
        """The live pane showing the file ``key``, or None when it has none now."""
        return self._pool.bound.get(key)

    def open_file(self, key: str) -> None:
        """Give the file ``key`` a pane and open it (what picking it in the table does)."""
        if key not in self._buffers:
            raise KeyError(f"{key!r} is not a file of this view's run")
        self._opened = [k for k in self._opened if k != key] + [key]
        self._dismissed.discard(key)
        self._selected, self._user_chose = key, True
        self._request_redraw()

    def _dismiss(self, key: str) -> None:
        # the pane's "close" button: hidden until opened again
        self._opened = [k for k in self._opened if k != key]
        self._dismissed.add(key)
        if self._selected == key:
            self._selected = None
        self._request_redraw()

    def _request_redraw(self) -> None:
        # main thread (a click): while a run goes its loop draws at the next tick; otherwise
        # nothing else draws, so draw now
        self._last_redraw = 0.0
        if not self._active:
            self._redraw(self.state, time.monotonic(), final=True)

    def start(self, *, changed: bool = False, files: list[TestFile] | None = None) -> Run:
        """Discover the files (header filter applied), show them, start the run in the background.

        ``changed=True``: only the files a change affects run, the others are shown carried;
        ``files``: these, already found (the Watch toggle), instead of discovering them.
        Refused (RuntimeError) while this view's previous run still goes: two
        runs never write the same panes.
        """
        with self._start_lock:  # Run's click and the Watch toggle's thread: one wins
            if self._active:
                raise RuntimeError("a run is already going in this view: press Stop or wait")
            self._active = True
        self.status.value = text.status_html(None, "discovering test files…")
        try:
            root, files = self.select_files() if files is None else (self._root(), files)
        except BaseException as exc:
            self._active = False
            if isinstance(exc, DevformanceError):
                self.status.value = text.status_html(None, f"error: {exc}")
            raise
        self.expect([f.key for f in files])
        self.state, self._run_id, self._unshown = None, None, 0
        self._stopping, self._notice, self._last_redraw = False, "", 0.0
        self.budget = Budget(*self.budget.rates)
        self.run_button.disabled, self.stop_button.disabled = True, False
        settings = self.settings.copy()
        settings["workers"] = self.workers.value
        try:
            self.run = api.start_run(
                [f.path for f in files],
                root=root,
                observers=[self, *self.observers],
                changed=changed,
                client=self.client,
                **settings,
            )
        except BaseException:
            self._active = False
            self.run_button.disabled, self.stop_button.disabled = False, True
            raise
        return self.run

    def _root(self) -> Path:
        return Path(self.root).resolve() if self.root is not None else find_root()

    def select_files(self) -> tuple[Path, list[TestFile]]:
        """The project root and its test files the header's filter selects (a pytest child)."""
        root = self._root()
        config = load_config(root, **self.settings)
        paths, patterns = split_filter(self.filter.value, root)
        files = discover(root, [*self.paths, *paths], config.pytest_args, config.python)
        if patterns:
            files = [f for f in files if any(fnmatch.fnmatchcase(f.key, p) for p in patterns)]
        if not files:
            raise NoTestsFoundError(f"no test file matches the filter {self.filter.value!r}")
        return root, files

    def stop(self, notice: str = "") -> None:
        """Stop the run: no new file starts, running children are killed. Twice is harmless.

        ``notice`` is shown in the header (e.g. why the run was stopped).
        """
        if self.run is not None and self._active:
            self._stopping = True  # drawn by the next tick
            self._notice = notice or self._notice
            self.run.stop()

    def say(self, notice: str) -> None:
        """Show ``notice`` in the header (the next redraw keeps it while a run goes)."""
        self._notice = notice
        if not self._active:
            self.status.value = text.status_html(self.state, notice)

    @property
    def running(self) -> bool:
        """Whether this view's run is still going."""
        return self._active

    def _on_run_click(self, _: Any = None) -> None:
        if self._active:
            self._notice = "a run is already going: press Stop first"
            return
        try:
            self.start()
        except DevformanceError:
            pass  # start() shows the message in the header
        except RuntimeError:  # the Watch toggle started one a moment before
            self._notice = "a run is already going: press Stop first"

    def _on_select(self, change: dict[str, Any]) -> None:
        # the view sets selected_index only to _auto_index: anything else is the user's click
        if not self._drawing and change["new"] != self._auto_index:
            self._user_chose = True
            index = change["new"]
            shown = self._shown
            self._selected = shown[index] if index is not None and index < len(shown) else None
            if self._selected is not None:  # a pane the user opened keeps its file
                self._opened = [k for k in self._opened if k != self._selected]
                self._opened.append(self._selected)

    # ----- loop thread -------------------------------------------------------

    def _ignored(self, state: RunState) -> bool:
        return self._run_id is not None and state.run_id != self._run_id

    def on_event(self, event: ev.Event, state: RunState) -> None:
        """Fold one event into plain per-file bookkeeping (no widget is touched here)."""
        if self._run_id is not None and state.run_id != self._run_id:
            return
        if isinstance(event, ev.FileCarried) and event.file not in self._buffers:
            self._more_files([event.file])  # a run started elsewhere: its carried files
        buffer = self._buffers.get(event.file)
        if buffer is None and event.file:
            buffer = self._buffers[event.file] = FileBuffer()
        if isinstance(event, ev.Output) and buffer is not None:  # the hot path: keep it short
            buffer.tail.append(event.text)
            buffer.lines = event.line
            buffer.version += 1
        elif isinstance(event, ev.RunStarted):
            self._on_run_started(event, state)
        elif buffer is not None:
            buffer.version += 1

    def _on_run_started(self, event: ev.RunStarted, state: RunState) -> None:
        self._run_id, self.state, self._active = state.run_id, state, True
        run_dir = state.meta.get("run_dir")
        self._run_dir = str(run_dir) if run_dir else None
        for key, pane in self._pool.bound.items():
            pane.log_path = self._log_path(key)
        self._more_files([key for key in event.files if key not in self._buffers])
        for buffer in self._buffers.values():
            buffer.version += 1

    def _more_files(self, missing: list[str]) -> None:
        if missing and threading.current_thread() is threading.main_thread():
            self._add(missing)  # replays and tests drive the view from the main thread
        elif missing:
            # widgets are never made off the main thread: the table lists every file, the
            # panes are the ones made by expect()
            for key in missing:
                self._buffers[key] = FileBuffer()
                self._order.append(key)
            wanted_panes = pool_size(len(self._order), self.workers.value)
            self._unshown = max(0, wanted_panes - len(self._pool.panes))

    def _log_path(self, key: str) -> Path | None:
        return RunDir.at(self._run_dir).log_path(key) if self._run_dir else None

    def tick(self, state: RunState) -> None:
        """Redraw what changed, at most every MIN_REDRAW seconds and within the budget."""
        now = time.monotonic()
        if self._ignored(state) or now - self._last_redraw < MIN_REDRAW:
            return
        self._last_redraw = now
        self._redraw(state, now, final=False)

    def close(self, state: RunState) -> None:
        """Draw the final state of everything, whatever the budget, and re-enable Run."""
        if self._ignored(state):
            return
        self._redraw(state, time.monotonic(), final=True)
        # full state again: a frontend (or nbclient) that missed an update catches up
        self.accordion.send_state(["titles", "selected_index"])
        self.summary.send_state("value")
        self.status.send_state("value")
        self.table.table.send_state("value")
        self.timeline.widget.send_state("value")
        self.messages += 5 + assign(self.run_button, disabled=False)
        self.messages += assign(self.stop_button, disabled=True)
        self._active = self._stopping = False

    def _files(self, state: RunState | None) -> dict[str, FileState]:
        known = state.files if state is not None else {}
        return {k: known.get(k) or FileState(key=k) for k in self._order}

    def _redraw(self, state: RunState | None, now: float, *, final: bool) -> None:
        self.budget.refill(now)
        files = self._files(state)
        sent, nbytes = self._draw_overview(state, files)
        self.budget.charge(sent, nbytes)
        # the timeline after the overview, at its own slower pace: it grows with the files
        drawn, nbytes = self.timeline.update(state, now, self.budget, final=final)
        self.budget.charge(drawn, nbytes)
        sent += drawn
        for key in self._dirty_panes():
            if not final and not self.budget.allows():
                break  # the rest stays dirty and goes out on a later tick
            pane = self._pool.bound[key]
            messages, size = pane.update(files[key], self._buffers[key])
            pane.sent_at = now
            self.budget.charge(messages, size)
            sent += messages
        self.messages += sent

    def _draw_overview(
        self, state: RunState | None, files: dict[str, FileState]
    ) -> tuple[int, int]:
        sent, size = self.table.update(list(files.values()), self.filter.value)
        shown = wanted(self._order, files, self._opened, self._dismissed, len(self._pool.panes))
        panes = self._pool.bind(shown, self._log_path)
        self._shown = shown
        titles = tuple(text.title(files[k]) for k in shown)
        values: dict[str, Any] = {"children": tuple(p.box for p in panes), "titles": titles}
        key = self._auto_open(files)
        self._selected = key
        index = shown.index(key) if key in shown else None
        if index != self.accordion.selected_index:
            self._auto_index = values["selected_index"] = index
        self._drawing = True  # its own changes (and the children's reset) are not a click
        try:
            sent_a = assign(self.accordion, **values)
        finally:
            self._drawing = False
        size += sent_a * sum(map(len, titles))
        if state is None:
            return sent + sent_a, size
        summary = cards.summarize(state)
        if self._unshown:
            summary.notes.append(f"{self._unshown} files have no pane: call view.expect() first")
        head = text.status_html(state, self._notice, self._stopping)
        body = cards.summary_html(summary)
        sent_h, sent_b = assign(self.status, value=head), assign(self.summary, value=body)
        size += sent_h * len(head) + sent_b * len(body)
        return sent + sent_a + sent_h + sent_b, size

    def _auto_open(self, files: dict[str, FileState]) -> str | None:
        """The file to open: the first failing one, else a running one; the user's choice
        wins (a pane the user closed stays closed)."""
        current, shown = self._selected, self._shown
        if current not in shown:
            current = None
        if self._user_chose:
            return current
        if current is not None and text.is_failing(files[current]):
            return current
        failing = next((k for k in shown if text.is_failing(files[k])), None)
        if failing is not None:
            return failing
        running = next((k for k in shown if files[k].status == "running"), None)
        if current is None or files[current].is_finished:
            return running if running is not None else current
        return current

    def _dirty_panes(self) -> list[str]:
        """Changed panes: the open one first, then the longest waiting."""
        bound = self._pool.bound
        dirty = [k for k in self._shown if self._buffers[k].version != bound[k].sent_version]
        return sorted(dirty, key=lambda k: (k != self._selected, bound[k].sent_at))
