"""A Dask task seen as a local child: its streamed output and events land where a reader looks.

The launcher's reader (``run.reader``) reads a child's output pipe and tails its events file.
A ``DaskChild`` gives it both: the output lines its task streams back are written into a
local pipe, and its events into the job's own events file in the run directory, so readers,
run state, store and views work as for a local child. One feeder thread per child does the
writing (Dask's event handlers run on the client's event loop, which must never block).

Messages carry byte offsets: the feeder applies them in order, and what the task did not
stream comes with its result. Coverage data that came back with the result (the workers did
not share the filesystem) is written next to the events file, and the ``coverage`` event is
held until then and pointed at it. With ``dask_retries`` the events of an attempt are held
until it ends, so an attempt whose worker died leaves no half record behind the next one.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import subprocess
import threading
import time
import traceback
from typing import Any, Protocol

from devformance_nb.core import events as ev
from devformance_nb.logic.oom import Verdict
from devformance_nb.run.executor import Job

#: seconds between two looks at whether a running file's worker is still in the cluster
WATCH_EVERY = 0.5
#: how long a finished task's last streamed messages may trail its result
_CATCH_UP = 5.0
#: how long a killed task may take to end before the launcher gives up on it
KILL_GRACE = 10.0
_COVERAGE_KIND = b'"kind":"coverage"'


class Tasks(Protocol):
    """What a Dask child needs of its executor."""

    def submit(self, child: DaskChild) -> None:
        """Start a new attempt at ``child``'s file (sets ``child.attempt``)."""

    def kill(self, child: DaskChild) -> None:
        """Kill the current attempt's child on its worker, or keep it from starting."""

    def forget(self, child: DaskChild) -> None:
        """Drop the current attempt: its task is cancelled (and killed wherever Dask may run
        it again), its late messages ignored."""

    def alive(self, address: str) -> bool:
        """Whether the worker at ``address`` is still in the cluster."""


class Ordered:
    """Bytes that arrive as (offset, data) pieces, given back in order, each byte once."""

    def __init__(self) -> None:
        self.have = 0
        self._early: dict[int, bytes] = {}

    def add(self, at: int, data: bytes) -> bytes:
        """The bytes ``data`` (at offset ``at``) makes contiguous, and any early ones after."""
        if data:
            self._early[at] = data
        out = bytearray()
        progress = True
        while progress:
            progress = False
            for start in sorted(self._early):
                piece = self._early[start]
                if start > self.have:
                    break
                del self._early[start]
                if start + len(piece) > self.have:
                    out += piece[self.have - start :]
                    self.have = start + len(piece)
                progress = True
        return bytes(out)


class _Attempt:
    """What the feeder knows of the current attempt's stream."""

    def __init__(self) -> None:
        self.out = Ordered()
        self.events = Ordered()
        #: the start of an event line whose end has not come yet
        self.partial = b""
        #: event lines not written yet (retries on, or waiting for coverage data)
        self.held: list[bytes] = []
        #: the held ``coverage`` event waiting for its data file, and its place in ``held``
        self.coverage_line: bytes | None = None
        self.coverage_at = 0

    def lines(self, data: bytes) -> list[bytes]:
        """The event lines ``data`` completes."""
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line for line in lines if line.strip()]


class DaskChild:
    """One test file running as a Dask task (the ``Child`` protocol)."""

    remote = True

    def __init__(self, job: Job, tasks: Tasks, retries: int = 0):
        self.job = job
        #: the child's pid on its worker (0 until it started there)
        self.pid = 0
        #: the worker running it ('' until it started)
        self.address = ""
        self.attempt = ""
        #: the running task (a ``distributed.Future``), set by the executor
        self.future: Any = None
        self.returncode: int | None = None
        #: why it was killed, when its worker left the cluster (the reader's crash message)
        self.verdict: Verdict | None = None
        self._tasks = tasks
        self._retries, self._retries_left = retries, retries
        self._inbox: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # the feeder never blocks on a gone reader
        self._events = open(job.events_path, "ab", buffering=0)  # noqa: SIM115 - the feeder's
        self._state = _Attempt()
        self._reader_gone = False
        self._killed_at: float | None = None
        self._done = threading.Event()
        self._feeder = threading.Thread(
            target=self._feed, name=f"devformance-dask-{job.test_file.key}", daemon=True
        )
        self._feeder.start()

    # the Child protocol, called by the file's reader

    def output_fd(self) -> int:
        return self._read_fd

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._reader_gone = True  # the reader reads no more: output still coming is dropped
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"Dask task of {self.job.test_file.key}", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def kill_group(self) -> None:
        if self._done.is_set() or self._killed_at is not None:
            return
        self._killed_at = time.monotonic()
        self._tasks.kill(self)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._read_fd)

    # fed by the executor (from Dask's threads: never block here)

    def deliver(self, kind: str, attempt: str, payload: Any) -> None:
        """A message (``msg``) or the end (``done``) of attempt ``attempt``."""
        self._inbox.put((kind, attempt, payload))

    # the feeder thread

    def _feed(self) -> None:
        try:
            while not self._done.is_set():
                try:
                    kind, attempt, payload = self._inbox.get(timeout=WATCH_EVERY)
                except queue.Empty:
                    kind, attempt, payload = "", "", None
                if kind and attempt == self.attempt:
                    if kind == "msg":
                        self._message(payload)
                    else:
                        self._finish(payload)
                if not self._done.is_set():
                    self._watch()
        except Exception:  # the feeder never leaves the reader waiting
            self._say(f"internal error following the Dask task:\n{traceback.format_exc(limit=5)}")
            self._end(1)

    def _watch(self) -> None:
        """A worker that left the cluster, or a killed task that will not end."""
        if self.address and not self._tasks.alive(self.address):
            self._worker_lost()
        elif self._killed_at is not None and time.monotonic() - self._killed_at > KILL_GRACE:
            self._tasks.forget(self)
            self._say(f"the Dask task did not end {KILL_GRACE:g} s after it was killed")
            self._end(-signal.SIGKILL)

    def _message(self, message: dict[str, Any]) -> None:
        started = message.get("started")
        if started is not None and self.address:
            # Dask ran this attempt again: the worker it first ran on left the cluster
            self._worker_lost()
        elif started is not None:
            self._placed(started)
        if started is not None:
            return
        self._output(self._state.out.add(message["out_at"], message["out"]))
        self._event_bytes(self._state.events.add(message["ev_at"], message["ev"]))

    def _placed(self, started: dict[str, Any]) -> None:
        self.address, self.pid = str(started["address"]), int(started["pid"])
        placed = ev.FilePlaced(
            run_id=self.job.run_id,
            file=self.job.test_file.key,
            t=time.time(),
            address=self.address,
            host=str(started.get("host", "")),
            pid=self.pid,
        )
        self._events.write(ev.encode(placed).encode("utf-8") + b"\n")

    def _finish(self, future: Any) -> None:
        """The attempt's task ended: what it did not stream, its coverage, its exit code."""
        try:
            result = future.result()
        except Exception as exc:
            if self.address and not self._tasks.alive(self.address):
                self._worker_lost()
                return
            if self._killed_at is None:
                self._say(f"the Dask task failed on {self.address or 'the cluster'}: {exc!r}")
            self._end(-signal.SIGKILL if self._killed_at is not None else 1)
            return
        finally:
            future.release()  # the worker may forget the result now
        self._catch_up(result["out_at"], result["ev_at"])
        self._output(self._state.out.add(result["out_at"], result["out"]))
        self._event_bytes(self._state.events.add(result["ev_at"], result["ev"]))
        self._coverage_back(result["coverage"])
        self._reads_back(result.get("reads", b""))
        self._end(int(result["returncode"]))

    def _reads_back(self, data: bytes) -> None:
        """Write the project files the child read (root-relative paths: the same on every
        machine) where change-based selection looks for them."""
        if data:
            path = self.job.run_dir.reads_path(self.job.test_file.key)
            with contextlib.suppress(OSError):
                path.write_bytes(data)

    def _catch_up(self, out_at: int, events_at: int) -> None:
        """Apply the streamed messages that trail the result (up to ``_CATCH_UP`` seconds)."""
        deadline = time.monotonic() + _CATCH_UP
        state = self._state
        while state.out.have < out_at or state.events.have < events_at:
            try:
                kind, attempt, payload = self._inbox.get(
                    timeout=max(0.0, deadline - time.monotonic())
                )
            except queue.Empty:
                missing = out_at - state.out.have + events_at - state.events.have
                self._say(f"{missing} bytes streamed from the worker were lost on the way")
                state.out.have, state.events.have = out_at, events_at
                return
            if kind == "msg" and attempt == self.attempt:
                self._message(payload)

    def _worker_lost(self) -> None:
        address = self.address
        self._tasks.forget(self)
        if self._retries_left > 0:
            self._retries_left -= 1
            attempt = self._retries - self._retries_left
            self._say(
                f"Dask worker {address} left the cluster while it ran this file; running it "
                f"again on another worker (retry {attempt} of {self._retries})"
            )
            self._state = _Attempt()  # the dead attempt's held events are dropped
            self.address, self.pid = "", 0
            self._tasks.submit(self)
            return
        self._say(
            f"Dask worker {address} left the cluster while it ran this file (killed, or its "
            "connection was lost): the file crashed"
        )
        self.verdict = Verdict(
            "its Dask worker left the cluster", f"{address}: killed, or its connection lost"
        )
        self._end(-signal.SIGKILL)

    def _end(self, returncode: int) -> None:
        """Write what is held, close the pipe (the reader's EOF), then give the exit code."""
        if self._done.is_set():
            return
        state = self._state
        if state.coverage_line is not None:  # its data never came back
            self._coverage_back({})
        if state.partial.strip():  # a line cut by the child's death: the reader reports it
            self._event_bytes(b"\n")
        self._write_events(state.held)
        state.held = []
        with contextlib.suppress(OSError):
            self._events.close()
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        self.returncode = returncode
        self._done.set()

    # writing

    def _say(self, text: str) -> None:
        self._output(f"[devformance] {text}\n".encode())

    def _output(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._reader_gone:
            try:
                view = view[os.write(self._write_fd, view) :]
            except BlockingIOError:  # a full pipe: wait for the reader, or for its going
                select.select([], [self._write_fd], [], 0.2)
            except (BrokenPipeError, OSError):
                self._reader_gone = True

    def _event_bytes(self, data: bytes) -> None:
        state = self._state
        ready = []
        for line in state.lines(data):
            if _COVERAGE_KIND in line and state.coverage_line is None and self._remote_data(line):
                # it and what follows wait for the data file, which comes with the result
                state.coverage_line, state.coverage_at = line, len(state.held)
            if self._retries or state.coverage_line is not None:
                state.held.append(line)
            else:
                ready.append(line)
        self._write_events(ready)

    def _write_events(self, lines: list[bytes]) -> None:
        if lines:
            self._events.write(b"".join(line + b"\n" for line in lines))

    def _remote_data(self, line: bytes) -> bool:
        """Whether a ``coverage`` event names a data file on the worker, not here."""
        try:
            written = ev.decode(line)
        except ev.EventDecodeError:
            return False
        path = getattr(written, "data_file", "")
        return bool(path) and path != os.fspath(self.job.coverage_path)

    def _coverage_back(self, files: dict[str, bytes]) -> None:
        """Write the returned data files here; point the held ``coverage`` event at them."""
        state = self._state
        line, state.coverage_line = state.coverage_line, None
        if line is None:
            return
        target = os.fspath(self.job.coverage_path)
        for suffix, data in files.items():
            with open(target + suffix, "wb") as fh:
                fh.write(data)
        written = ev.decode(line)
        assert isinstance(written, ev.CoverageWritten)
        if "" in files:
            moved = ev.encode(_with_data_file(written, target, written.message))
        else:
            moved = ev.encode(_with_data_file(written, "", "the coverage data did not come back"))
        state.held[state.coverage_at] = moved.encode("utf-8")
        if not self._retries:
            self._write_events(state.held)
            state.held = []


def _with_data_file(written: ev.CoverageWritten, path: str, message: str) -> ev.CoverageWritten:
    from dataclasses import replace

    return replace(written, data_file=path, message=message)
