"""The reader: runs one file's child and turns its output and events into events.

One reader runs per child on a worker thread. It only enqueues (through
``emit``); it never touches run state, and it never raises: a failure of its
own becomes a ``file_crashed`` event.

Statements (``query`` events, most of a database-heavy file's events) are not decoded as
they come: the parent decoding, fingerprinting and grouping each one competed with the
children for the cores (a real suite's 55,000 statements cost it 2 s of wall time). They
are read when the child ended, before ``file_finished``: a few decoded one by one, many
grouped by DuckDB straight from the events file (``file_queries``), which the store then
loads from the same file.

A reader works in two steps: ``run_child`` (the child, from its start to its end) and
``finish`` (its coverage data and statements read, then ``file_finished``). The launcher
starts the slot's next child between the two, so the parent's reading never leaves a core
idle (a test file's coverage read takes 20-50 ms, the first one parses every source: 2 s on
djangorestframework, while both slots waited).
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from threading import Event as Flag

from devformance_nb.core import events as ev
from devformance_nb.core.appendmap import seal
from devformance_nb.core.eventlog import EventTail
from devformance_nb.logic.oom import Verdict
from devformance_nb.run import runcoverage
from devformance_nb.run.crashdump import CrashDump
from devformance_nb.run.executor import Child, Executor, Job
from devformance_nb.run.oomwatch import OomWatch
from devformance_nb.run.sampler import ProcessSampler
from devformance_nb.run.state import file_status

#: longest output line kept in events and the store; the log file keeps all of it
MAX_LINE = 16_384
_POLL = 0.05
#: how long to wait for the pipe's EOF after the child ended (a stray grandchild may hold it)
_EXIT_GRACE = 2.0
_READ = 65_536
#: how a statement's line is told apart without decoding it (inside a JSON string a quote is
#: always escaped, so only the event's own kind can read like this)
_QUERY_MARK = b'"kind":"query"'
_STACK_MARK = b'"kind":"stack"'
#: a file with more statements than this has them read by DuckDB from its events file when its
#: child ends; fewer are decoded one by one then (DuckDB's fixed cost, about 20 ms a file, is
#: that of decoding and detecting about 500 statements in Python)
BULK_STATEMENTS = 1_000
#: reads a finished file's statements from its events file (``run.queryfacts.read_facts`` on
#: that one file, with the run's detection settings)
StatementReader = Callable[[Path], object]

Emit = Callable[[ev.Event], None]


class LineSplitter:
    """Bytes in, complete decoded lines out; bad UTF-8 replaced, huge lines capped."""

    def __init__(self, max_line: int = MAX_LINE):
        self._max = max_line
        self._buf = bytearray()
        self._overflow = False

    def feed(self, chunk: bytes) -> list[str]:
        """Lines completed by ``chunk``."""
        lines: list[str] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._append(chunk[start:])
                return lines
            self._append(chunk[start:end])
            lines.append(self._take())
            start = end + 1

    def finish(self) -> list[str]:
        """The last line, if the output did not end with a newline."""
        return [self._take()] if self._buf or self._overflow else []

    def _append(self, data: bytes) -> None:
        room = self._max - len(self._buf)
        if len(data) > room:
            self._overflow = True
            data = data[: max(room, 0)]
        self._buf += data

    def _take(self) -> str:
        text = self._buf.decode("utf-8", "replace").rstrip("\r")
        if self._overflow:
            text += " …[line truncated; the full line is in the log file]"
        self._buf.clear()
        self._overflow = False
        return text


def _write_all(log: io.FileIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        written = log.write(view)
        view = view[written:]


@dataclass
class _Outcome:
    exitstatus: int | None = None
    returncode: int | None = None
    stopped: bool = False
    timed_out: bool = False


class FileReader:
    """Streams one job: start the child, pump output and events, enforce timeout and stop."""

    def __init__(
        self,
        job: Job,
        emit: Emit,
        stop: Flag,
        timeout: float | None,
        statements: StatementReader | None = None,
    ):
        self.job = job
        #: reads the file's statements once its child ended (None: they are decoded one by
        #: one as they come, like every other event)
        self.statements = statements
        #: statement lines passed over undecoded so far, and their lines (and their stacks')
        #: while they are few
        self.passed_over = 0
        self.held: list[bytes] | None = []
        self.emit = emit
        self.stop = stop
        self.timeout = timeout
        self.key = job.test_file.key
        self.splitter = LineSplitter()
        self.tail = EventTail(job.events_path)
        self.lines = 0
        self.outcome = _Outcome()
        self.crash = CrashDump()
        #: the child's memory cgroup, looked up when it starts (None before)
        self.memory: OomWatch | None = None
        #: why the child was killed, as a remote child tells it (None: it did not say)
        self.explained: Verdict | None = None
        #: the child's coverage data, once it said it wrote it (read by ``finish``)
        self.coverage_written: ev.CoverageWritten | None = None
        #: when the child was started and when it ended (``run_child``)
        self.started = self.ended = 0.0

    def run_child(self, executor: Executor) -> str:
        """Start the child and follow it to its end; returns the file's status (never raises).

        Its coverage data and statements are left to ``finish``."""
        started = self.started = time.time()
        try:
            # unbuffered: each chunk reaches the OS as it is read, so a launcher killed mid-file
            # leaves the output so far in the log
            with open(self.job.log_path, "ab", buffering=0) as log:
                child = executor.start(self.job)
                if not getattr(child, "remote", False):  # elsewhere: its samples are events
                    self.memory = OomWatch(child.pid)  # now: /proc/PID is gone once it died
                self._emit(
                    ev.FileStarted(
                        path=os.fspath(self.job.test_file.path),
                        pid=child.pid,
                        command=self.job.command(),
                        worker=self.job.worker,
                    )
                )
                self._pump(child, log, started)
                # a remote child may know why it was killed (its worker left the cluster)
                self.explained = getattr(child, "verdict", None)
            status = file_status(
                self.outcome.exitstatus,
                self.outcome.returncode,
                stopped=self.outcome.stopped,
                timed_out=self.outcome.timed_out,
            )
            if status in ("crashed", "timeout", "stopped"):
                self._emit(self._crash_event(status))
        except Exception:  # a reader never raises: its failure is the file's error
            status = "error"
            self._emit(
                ev.FileCrashed(
                    reason="internal",
                    returncode=self.outcome.returncode,
                    message=traceback.format_exc(limit=5),
                )
            )
        self.ended = time.time()
        return status

    def finish(self, status: str) -> None:
        """Read what the ended child left (coverage data, statements), then say the file
        finished, at the time its child ended (never raises)."""
        if self.coverage_written is not None:
            self._read_coverage(self.coverage_written)
        self._read_statements()  # before file_finished: the state has them when the file ends
        self._emit(
            ev.FileFinished(
                status=status,
                returncode=self.outcome.returncode,
                duration=self.ended - self.started,
                t=self.ended,
            )
        )

    def _read_statements(self) -> None:
        """The file's statements: a few decoded here one by one, many grouped by DuckDB from
        its events file (never raises)."""
        if self.held is not None:
            held, self.held = self.held, None
            for raw in held:
                self._event(raw)
            return
        if self.statements is None or not self.passed_over:
            return
        path = Path(self.job.events_path)
        try:
            facts = self.statements(path)
        except Exception as exc:  # they stay on disk: ingest can read them again
            self._lines(
                [
                    f"[devformance] the file's {self.passed_over} statements were not read: "
                    f"{type(exc).__name__}: {exc}; they stay in {path} "
                    "(`devformance ingest RUN_DIR` loads them)"
                ]
            )
            return
        self._emit(ev.FileQueries(facts=facts, path=os.fspath(path)))

    def _emit(self, event: ev.Event) -> None:
        self.emit(replace(event, run_id=self.job.run_id, file=self.key, t=event.t or time.time()))

    def _crash_event(self, status: str) -> ev.FileCrashed:
        rc = self.outcome.returncode
        sig = -rc if rc is not None and rc < 0 else None
        named = None  # the signal named in the message: only when it is what happened
        cause = None
        if status == "timeout":
            what = f"timed out after {self.timeout:g} s; killed with its process group"
        elif status == "stopped":
            what = "stopped by the user"
        elif sig is not None:
            what, named = f"killed by signal {sig}", sig
            if sig == signal.SIGKILL and self.memory is not None:
                cause = self.memory.verdict()  # the out-of-memory killer's signal, or a guess
            elif sig == signal.SIGKILL:
                cause = self.explained
        else:
            what = f"exited with code {rc} before pytest finished"
        message = self.crash.describe(
            named, what, cause.cause if cause else "", cause.evidence if cause else ""
        )
        return ev.FileCrashed(reason=status, returncode=rc, signal=sig, message=message)

    def _pump(self, child: Child, log: io.FileIO, started: float) -> None:
        fd = child.output_fd()
        eof = False
        exited_at: float | None = None
        sampler = ProcessSampler(child.pid)
        try:
            while not eof:
                if exited_at is None and sampler.due(now := time.monotonic()):
                    sample = self.memory.sample(sampler, now) if self.memory else None
                    if sample is not None:
                        self._emit(sample)
                ready, _, _ = select.select([fd], [], [], _POLL)
                if ready:
                    chunk = os.read(fd, _READ)
                    eof = not chunk
                    _write_all(log, chunk)
                    self._lines(self.splitter.feed(chunk))
                self._events()
                self._enforce(child, started)
                if exited_at is None and child.poll() is not None:
                    exited_at = time.monotonic()
                if exited_at is not None and time.monotonic() - exited_at > _EXIT_GRACE:
                    break  # a stray grandchild holds the pipe open: stop waiting for it
        finally:
            child.kill_group()  # leave no grandchild behind, whatever happened
            self.outcome.returncode = child.wait()
            child.close()
        # the child is gone: a room its mapped events writer reserved and never wrote is cut
        # (best effort: every reader skips such a room anyway, so a file it fails on is fine)
        with contextlib.suppress(OSError):
            seal(self.job.events_path)
        self._lines(self.splitter.finish())
        self._events(final=True)

    def _enforce(self, child: Child, started: float) -> None:
        if self.outcome.stopped or self.outcome.timed_out:
            return
        if self.stop.is_set():
            self.outcome.stopped = True
            child.kill_group()
        elif self.timeout is not None and time.time() - started > self.timeout:
            self.outcome.timed_out = True
            child.kill_group()

    def _lines(self, lines: list[str]) -> None:
        for text in lines:
            self.lines += 1
            self.crash.line(text)
            self._emit(ev.Output(line=self.lines, text=text))

    def _events(self, final: bool = False) -> None:
        raw_lines = self.tail.read_lines()
        if final and (rest := self.tail.remainder()):
            raw_lines.append(rest)
        skip = self.statements is not None
        for raw in raw_lines:
            # statements and their stacks: read once the child ended
            statement = skip and _QUERY_MARK in raw
            if statement or (skip and _STACK_MARK in raw):
                self.passed_over += statement
                if self.held is not None:
                    self.held.append(raw)
                    if self.passed_over > BULK_STATEMENTS:  # many: DuckDB reads them all
                        self.held = None
                continue
            self._event(raw)

    def _event(self, raw: bytes) -> None:
        try:
            event = ev.decode(raw)
        except ev.EventDecodeError as exc:
            self._lines([f"[devformance] unreadable event skipped: {exc}"])
            return
        if isinstance(event, ev.FileDone):
            self.outcome.exitstatus = event.exitstatus
        self.crash.event(event)
        self.emit(event)
        if isinstance(event, ev.CoverageWritten) and event.data_file:
            self.coverage_written = event  # read by ``finish``, once the child ended

    def _read_coverage(self, written: ev.CoverageWritten) -> None:
        """Read the child's coverage data here, in the file's own thread, never in the loop.

        Reading takes tens of milliseconds through coverage's API; here it holds up no other
        file's events, no redraw of the live view, and no child (see ``finish``).
        """
        contexts = self.job.options.coverage_contexts
        try:
            self.emit(runcoverage.read_file(written, self.job.root, contexts))
        except Exception as exc:  # unreadable data: the file has no coverage, the run goes on
            self._lines([f"[devformance] coverage data not read: {exc}"])
