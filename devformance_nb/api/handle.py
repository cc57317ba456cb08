"""A run's handle: live while it goes, a summary once it ended (what ``start_run`` returns)."""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devformance_nb.core.config import Config
from devformance_nb.core.errors import StoreError
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run.launcher import Launcher
from devformance_nb.run.state import FileState, RunState, exit_code
from devformance_nb.store.database import Store
from devformance_nb.store.selection import Selection
from devformance_nb.store.writer import StoreWriter

_ICON_TEXT = {
    "passed": "ok",
    "failed": "FAIL",
    "error": "ERROR",
    "crashed": "CRASH",
    "timeout": "TIMEOUT",
    "stopped": "STOP",
    "empty": "empty",
    "not_run": "-",
    "interrupted": "INTR",
    "running": "...",
    "pending": "...",
}


@dataclass
class RunSetup:
    """A run ready to start: its files, settings and launcher."""

    root: Path
    config: Config
    files: list[TestFile]
    store: Store | None
    launcher: Launcher
    writer: StoreWriter | None
    #: which files run and why (``changed=True``), None when every file runs
    selection: Selection | None = None


#: the longest a wait sleeps before it looks again for an interrupt
WAIT_SLICE = 0.25


def _slice(deadline: float | None) -> float:
    if deadline is None:
        return WAIT_SLICE
    return max(0.0, min(WAIT_SLICE, deadline - time.monotonic()))


class Run:
    """A test run: live while it goes, a summary once it ended.

    ``wait()`` blocks until the end, ``stop()`` ends it early; ``state`` holds
    per-file details; ``exit_code`` follows pytest's numbering.
    """

    def __init__(self, setup: RunSetup):
        self._setup = setup
        self._thread: threading.Thread | None = None

    @property
    def id(self) -> str:
        return self._setup.launcher.plan.run_id

    @property
    def root(self) -> Path:
        return self._setup.root

    @property
    def selection(self) -> Selection | None:
        """With ``changed=True``: each file run or carried, and why."""
        return self._setup.selection

    @property
    def run_dir(self) -> Path:
        return self._setup.launcher.plan.run_dir.path

    @property
    def db(self) -> Path | None:
        return self._setup.store.path if self._setup.store else None

    @property
    def state(self) -> RunState:
        return self._setup.launcher.state

    @property
    def files(self) -> list[FileState]:
        return list(self.state.files.values())

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def done(self) -> bool:
        return self._setup.launcher.done.is_set()

    @property
    def exit_code(self) -> int:
        if self.store_error is not None and self.state.status == "passed":
            return StoreError.exit_code
        return exit_code(self.state.status)

    @property
    def store_error(self) -> StoreError | None:
        """Why the store could not be written, if it could not (the run dir still has it all)."""
        return self._setup.writer.error if self._setup.writer else None

    @property
    def store_waits(self) -> list[str]:
        """What writing the store had to wait for (another run or process holding it)."""
        return list(self._setup.writer.waits) if self._setup.writer else []

    def stop(self) -> None:
        """Stop the run: no new file starts, running children are killed. Safe from any thread."""
        self._setup.launcher.stop()

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the run ended (or ``timeout`` seconds passed); returns the run.

        Interrupting the wait (Ctrl-C, or Jupyter's interrupt button) stops the
        run: the children are killed, finished files are kept.
        """
        done = self._setup.launcher.done
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # in slices: a Ctrl-C the kernel handed to another thread of this process only
            # wakes the main thread's next check, and one long wait would sleep through it
            while not done.wait(_slice(deadline)):
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            self.stop()
            done.wait()
        if self._thread is not None and self.done:
            self._thread.join()
        return self

    def _run(self) -> None:
        self._setup.launcher.run()

    def _start_background(self) -> None:
        self._thread = threading.Thread(target=self._run, name="devformance-loop", daemon=True)
        self._thread.start()

    def totals(self) -> dict[str, int]:
        """Tests finished and pytest's categories summed over files."""
        return self.state.totals()

    def summary(self) -> str:
        """A readable multi-line summary of the run."""
        t = self.totals()
        duration = self.state.duration or 0.0
        head = (
            f"run {self.id}: {self.status} in {duration:.1f} s, {len(self.state.files)} files, "
            f"{t['tests']} tests: {t.get('passed', 0)} passed, {t.get('failed', 0)} failed, "
            f"{t.get('error', 0)} errors, {t.get('skipped', 0)} skipped"
        )
        lines = [head]
        for fs in self.files:
            took = f"{fs.duration:.2f} s" if fs.duration is not None else ""
            lines.append(f"  {_ICON_TEXT.get(fs.status, fs.status):>7}  {fs.key}  {took}")
        if self.db:
            lines.append(f"store: {self.db}")
        if self.store_error:
            lines.append(f"store not written: {self.store_error}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.status} files={len(self.state.files)}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(fs.status)}</td><td><code>{html.escape(fs.key)}</code></td>"
            f"<td>{fs.done}</td><td>{fs.counts.get('failed', 0) + fs.counts.get('error', 0)}</td>"
            f"<td>{(fs.duration or 0):.2f} s</td></tr>"
            for fs in self.files
        )
        t = self.totals()
        return (
            f"<div><b>run {html.escape(self.id)}</b>: {html.escape(self.status)}, "
            f"{t['tests']} tests, {t.get('passed', 0)} passed, {t.get('failed', 0)} failed, "
            f"{t.get('error', 0)} errors"
            "<table><tr><th>status</th><th>file</th><th>tests</th><th>failed</th>"
            f"<th>time</th></tr>{rows}</table></div>"
        )
