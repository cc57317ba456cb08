"""A scripted fake executor for pure-logic tests of the launcher, readers and store writer.

Like pytest-xdist's scheduler tests with fake nodes: no pytest child runs. Each fake child
writes its scripted output lines into a real OS pipe and its scripted events into the Job's
real events file, then "exits" with its scripted return code, or hangs until ``kill_group``.
Everything downstream of the executor (``FileReader``, the launcher's queue and loop, the
dispatcher, observers, the store) is the real code. Deterministic and process-free on purpose:
whatever needs a real process is tested with the real executors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run.executor import Job
from devformance_nb.run.launcher import LaunchPlan
from devformance_nb.run.state import RunState

#: what ``kill_group`` leaves as the return code: killed by SIGKILL, like the real children
KILLED = -int(signal.SIGKILL)
#: fake pids start here: high enough not to look like a real process in a failure message
_FIRST_PID = 4_000_000


@dataclass(frozen=True)
class Script:
    """What one fake child does, in order: write ``lines`` and ``events``, then end or hang.

    ``returncode`` is how it ends (negative: killed by that signal); ``hang`` keeps it running,
    its pipe open, until ``kill_group``; ``start_error`` makes the executor fail to start it.
    """

    lines: Sequence[str] = ()
    events: Sequence[ev.Event] = ()
    returncode: int = 0
    hang: bool = False
    start_error: str = ""


def phases_of(nodeid: str, category: str = "passed", message: str = "") -> list[ev.TestPhase]:
    """The three phases pytest reports for one test whose call ended in ``category``."""
    return [
        ev.TestPhase(nodeid=nodeid, phase="setup", outcome="passed", duration=0.001),
        ev.TestPhase(
            nodeid=nodeid,
            phase="call",
            outcome="failed" if category == "failed" else "passed",
            duration=0.01,
            category=category,
            message=message,
        ),
        ev.TestPhase(nodeid=nodeid, phase="teardown", outcome="passed", duration=0.001),
    ]


def query(nodeid: str, sql: str, duration: float = 0.001, stack_hash: str = "stack-1") -> ev.Query:
    """One captured SQL statement of test ``nodeid``, sent by project code (the writer numbers
    nothing: qseq is 0)."""
    caller = "app.py:7 load" if stack_hash else ""
    return ev.Query(
        nodeid=nodeid,
        phase="call",
        qseq=0,
        start=0.0,
        duration=duration,
        sql=sql,
        vendor="sqlite",
        caller=caller,
        sent_by=caller,
        stack_hash=stack_hash,
    )


def pytest_file(
    key: str,
    outcomes: Mapping[str, str],
    *,
    queries: Iterable[ev.Query] = (),
    lines: Sequence[str] = (),
) -> Script:
    """A file that pytest ran to the end: ``outcomes`` maps test names to their category.

    Its exit status follows pytest's (1 when a test failed, 5 when none was collected) and
    ``queries`` are written after the tests' setup phases, inside their calls.
    """
    nodeids = [f"{key}::{name}" for name in outcomes]
    events: list[ev.Event] = [ev.Collected(count=len(nodeids), nodeids=nodeids)]
    by_test: dict[str, list[ev.Query]] = {}
    for q in queries:
        by_test.setdefault(q.nodeid, []).append(q)
    counts: dict[str, int] = {}
    for nodeid, category in zip(nodeids, outcomes.values(), strict=True):
        setup, call, teardown = phases_of(nodeid, category, f"{category} here")
        events += [setup, *by_test.get(nodeid, []), call, teardown]
        counts[category] = counts.get(category, 0) + 1
    exitstatus = 5 if not nodeids else 1 if counts.get("failed") else 0
    events.append(ev.FileDone(exitstatus=exitstatus, counts=counts, duration=0.05))
    return Script(lines=lines, events=events, returncode=exitstatus)


class FakeChild:
    """A fake running file: a real pipe for output, a scripted end; implements ``Child``."""

    def __init__(self, job: Job, script: Script, pid: int):
        self.job = job
        self.script = script
        self.pid = pid
        self.killed = False
        self._read_fd, self._write_fd = os.pipe()
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._returncode: int | None = None
        self._play()

    def _play(self) -> None:
        # Events first, then output: the reader must cope with either order, and writing
        # events before the pipe's EOF makes a finished child's file complete when it is read.
        job = self.job
        # no background flusher: close() writes everything, and no thread outlives the start
        writer = EventWriter(job.events_path, job.run_id, job.test_file.key, flush_every=None)
        try:
            for event in self.script.events:
                writer.write(event)
        finally:
            writer.close()
        # A pipe holds 64 KiB: scripts stay far below, so writing never blocks the caller.
        data = "".join(f"{line}\n" for line in self.script.lines).encode("utf-8")
        os.write(self._write_fd, data)
        if not self.script.hang:
            self._end(self.script.returncode)

    def _end(self, returncode: int) -> None:
        with self._lock:
            if self._returncode is not None:
                return
            self._returncode = returncode
            os.close(self._write_fd)  # the reader sees EOF, as when a process exits
            self._ended.set()

    def output_fd(self) -> int:
        return self._read_fd

    def poll(self) -> int | None:
        return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.job.command(), timeout or 0.0)
        assert self._returncode is not None
        return self._returncode

    def kill_group(self) -> None:
        # the reader kills every child once it ended, as a guard: only a live one counts
        if self._returncode is None:
            self.killed = True
        self._end(KILLED)

    def close(self) -> None:
        os.close(self._read_fd)


class FakeExecutor:
    """Starts a ``FakeChild`` per job from ``scripts`` (by file key); implements ``Executor``.

    ``started`` lists the keys in the order they started, ``threads`` the thread that
    started each; ``children`` keeps every child for inspection.
    """

    name = "fake"

    def __init__(self, scripts: Mapping[str, Script]):
        self.scripts = dict(scripts)
        self.started: list[str] = []
        self.threads: list[int] = []
        self.children: dict[str, FakeChild] = {}
        self.closed = False
        self._lock = threading.Lock()

    def start(self, job: Job) -> FakeChild:
        key = job.test_file.key
        script = self.scripts[key]
        with self._lock:  # workers start children concurrently
            self.started.append(key)
            self.threads.append(threading.get_ident())
            pid = _FIRST_PID + len(self.started)
        if script.start_error:
            raise OSError(script.start_error)
        child = self.children[key] = FakeChild(job, script, pid)
        return child

    def close(self) -> None:
        self.closed = True


@dataclass
class Recorder:
    """An observer that records every call and the thread it came from; implements ``Observer``."""

    events: list[ev.Event] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    ticks: int = 0
    closed: list[str] = field(default_factory=list)

    def on_event(self, event: ev.Event, state: RunState) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)

    def tick(self, state: RunState) -> None:
        self.threads.add(threading.get_ident())
        self.ticks += 1

    def close(self, state: RunState) -> None:
        self.threads.add(threading.get_ident())
        self.closed.append(state.status)

    def kinds(self, file: str | None = None) -> list[str]:
        """The kinds of the events recorded, of one file's only if ``file`` is given."""
        return [e.kind for e in self.events if file is None or e.file == file]


def plan(
    tmp_path: Path,
    scripts: Mapping[str, Script],
    workers: int = 1,
    run_id: str = "fake-run",
    **more: Any,
) -> LaunchPlan:
    """A launch plan for the scripted files, in the scripts' order, under ``tmp_path``."""
    root = tmp_path / "project"
    files = [TestFile(key, root / key) for key in scripts]
    return LaunchPlan(
        run_id=run_id,
        root=root,
        run_dir=RunDir.for_run(root, run_id),
        files=files,
        workers=workers,
        **more,
    )
