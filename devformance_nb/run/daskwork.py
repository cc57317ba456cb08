"""The Dask task: one test file's pytest child, run on a worker and streamed back as it goes.

This module runs inside Dask workers (a task names ``run_file`` by reference, so
devformance_nb must be installed there, as every child's plugin needs it anyway). The task
starts the same pytest child as the local executors, in its own session (forked from the
worker's warm server, ``daskwarm``, or spawned), never inside the worker process, so a
crashing file cannot take the worker down; while it runs, its output and its events file
(plus samples of its process tree) go back to the launcher through Dask's event topics
(``Worker.log_event``), at most ``1 / FLUSH_EVERY`` messages a second and ``MESSAGE_CAP``
bytes each; what is left when the child ends comes back as the task's result, with the
coverage data when the worker does not share the launcher's filesystem.

Nothing here imports ``distributed`` at module level: the launcher side imports this module
too (for the spec), and ``import devformance_nb`` must never pull Dask in.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import select
import shutil
import socket
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field, replace
from io import BytesIO
from typing import Any

from devformance_nb.core import events as ev
from devformance_nb.core.appendmap import seal
from devformance_nb.core.contract import ENV_EVENTS, ENV_OPTIONS, ENV_PARENT, ChildOptions
from devformance_nb.core.eventlog import EventTail
from devformance_nb.core.rundir import RunDir, reads_beside
from devformance_nb.run.executor import Child, inherited_environment, spawn
from devformance_nb.run.sampler import ProcessSampler

#: seconds between two messages of one file (at most 4 a second)
FLUSH_EVERY = 0.25
#: bytes of output and events one message carries; the rest waits for the next one
MESSAGE_CAP = 64 * 1024
_POLL = 0.05
#: how long to wait for the pipe's EOF after the child ended (a stray grandchild may hold it)
_EXIT_GRACE = 2.0
_READ = 65_536

_LOCK = threading.Lock()
#: the children running in this worker process, by attempt id (what ``cancel`` kills)
_RUNNING: dict[str, Child] = {}
#: attempts cancelled here (one not started yet never starts)
_CANCELLED: set[str] = set()
#: unpacked archives of this worker process, by digest
_UNPACK_LOCK = threading.Lock()


@dataclass(frozen=True)
class TaskSpec:
    """One attempt at one file, as the worker needs it (the launcher's paths; the worker moves
    them to its copy of the project when it has one)."""

    run_id: str
    key: str
    #: unique per attempt: routes its messages and names it to ``cancel``
    attempt: str
    #: the run's event topic
    topic: str
    #: the launcher's project root
    root: str
    #: the child's command line after the interpreter (``Job.command()[1:]``)
    argv: tuple[str, ...]
    #: the child's own variables (``Job.own_environment()``)
    env: dict[str, str] = field(default_factory=dict)
    #: the interpreter to run (None: the worker's own)
    python: str | None = None
    #: the launcher's coverage data file of this file ('' while coverage is off)
    coverage_path: str = ""
    #: the shipped archive's digest ('' when the workers share the launcher's filesystem)
    archive: str = ""
    #: fork the child from the worker's warm server (``daskwarm``); False: spawn it
    warm: bool = True
    #: what that server imports for every child (the ``preload`` setting)
    preload: tuple[str, ...] = ()


def probe(path: str, token: str) -> bool:
    """Whether this worker reads ``token`` in the file ``path`` (the launcher's filesystem)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read() == token
    except OSError:
        return False


def cancel(attempt: str) -> bool:
    """Kill ``attempt``'s child (and its process group) on this worker, or keep it from starting.

    Run on workers through ``Client.run``; True if a running child was killed here.
    """
    with _LOCK:
        _CANCELLED.add(attempt)
        child = _RUNNING.get(attempt)
    if child is None:
        return False
    child.kill_group()
    return True


def running_children() -> list[int]:
    """The pids of the children this worker process runs now (for tests and diagnostics)."""
    with _LOCK:
        return [child.pid for child in _RUNNING.values() if child.poll() is None]


def run_file(spec: TaskSpec, archive: bytes | None = None) -> dict[str, Any]:
    """Run one test file's child on this worker; stream it; return what was not streamed.

    ``archive`` is the zipped project when the workers do not share the launcher's filesystem.
    """
    from distributed import get_worker

    worker = get_worker()
    root = _project_root(spec, archive, worker.local_directory)
    scratch = tempfile.mkdtemp(prefix="devformance-", dir=worker.local_directory)
    try:
        return _Task(spec, root, scratch, worker).run()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _project_root(spec: TaskSpec, archive: bytes | None, local: str) -> str:
    if not spec.archive:
        if not os.path.isdir(spec.root):
            raise FileNotFoundError(
                f"the project root {spec.root} is not on worker {socket.gethostname()}: "
                "share it with the workers at the same path, or set dask_ship = 'archive'"
            )
        return spec.root
    if archive is None:
        raise ValueError("the project archive did not reach this worker")
    return unpack(archive, spec.archive, os.path.basename(spec.root) or "project", local)


def unpack(archive: bytes, digest: str, name: str, local: str) -> str:
    """The project unpacked under ``local`` (once per archive and worker process): its root."""
    folder = os.path.join(local, "devformance-projects", digest)
    root = os.path.join(folder, name)
    with _UNPACK_LOCK:
        if not os.path.isdir(root):
            staging = tempfile.mkdtemp(prefix="unpack-", dir=local)
            with zipfile.ZipFile(BytesIO(archive)) as zf:
                zf.extractall(os.path.join(staging, name))
            os.makedirs(os.path.dirname(folder), exist_ok=True)
            os.rename(staging, folder)  # whole or not at all: a crash leaves no half tree
    return root


class _Stream:
    """What the launcher has not had yet, sent as one message every ``FLUSH_EVERY`` seconds."""

    def __init__(self, worker: Any, spec: TaskSpec):
        self.worker = worker
        self.spec = spec
        self.out = bytearray()
        self.events = bytearray()
        #: bytes already sent of each (the launcher orders and checks messages by them)
        self.out_at = 0
        self.events_at = 0
        self._last = 0.0

    def send(self, message: dict[str, Any]) -> None:
        self.worker.log_event(self.spec.topic, {"attempt": self.spec.attempt, **message})

    def flush(self, now: float) -> None:
        if now - self._last < FLUSH_EVERY or not (self.out or self.events):
            return
        self._last = now
        room = MESSAGE_CAP // 2 if self.events else MESSAGE_CAP
        out = bytes(self.out[:room])
        events = bytes(self.events[: MESSAGE_CAP - len(out)])
        self.send({"out_at": self.out_at, "out": out, "ev_at": self.events_at, "ev": events})
        del self.out[: len(out)], self.events[: len(events)]
        self.out_at += len(out)
        self.events_at += len(events)


class _Task:
    """One attempt: the child, its pipe and events file, the stream back."""

    def __init__(self, spec: TaskSpec, root: str, scratch: str, worker: Any):
        self.spec = spec
        self.root = root
        # the worker's scratch folder is laid out as a run directory (one file's worth)
        self.events_path = os.fspath(RunDir.at(scratch).events_path(spec.key))
        self.coverage = _coverage_file(spec, root, scratch)
        self.stream = _Stream(worker, spec)
        self.address = str(worker.address)

    def run(self) -> dict[str, Any]:
        child = self._start()
        if child is None:  # cancelled before it started
            return self._result(-9, {})
        try:
            self.stream.send({"started": {"address": self.address, "pid": child.pid,
                                          "host": socket.gethostname()}})  # fmt: skip
            self._pump(child)
        finally:
            child.kill_group()  # no grandchild outlives the file
            returncode = child.wait()
            child.close()
            with _LOCK:
                _RUNNING.pop(self.spec.attempt, None)
        with contextlib.suppress(OSError):
            seal(self.events_path)  # the child is gone: its unwritten room is cut
        return self._result(returncode, self._coverage_data())

    def _start(self) -> Child | None:
        spec = self.spec
        python = spec.python or sys.executable
        command = [python, *(_moved(arg, spec.root, self.root) for arg in spec.argv)]
        env = self._environment()
        with _LOCK:  # a cancel that came first wins; one that comes later finds the child
            if spec.attempt in _CANCELLED:
                return None
            child = None
            if spec.warm:
                from devformance_nb.run import daskwarm

                child = daskwarm.start(command, env, self.root, spec.preload, spec.run_id)
            if child is None:
                child = spawn(command, env, self.root)
            _RUNNING[spec.attempt] = child
        return child

    def _environment(self) -> dict[str, str]:
        """The worker's environment and the job's own variables, moved to this copy."""
        own = {
            name: _moved(value, self.spec.root, self.root) for name, value in self.spec.env.items()
        }
        options = ChildOptions.from_env(self.spec.env.get(ENV_OPTIONS))
        data = self.coverage if options.coverage else ""
        own[ENV_OPTIONS] = replace(options, root=self.root, coverage_data=data).to_env()
        own[ENV_EVENTS] = self.events_path
        own[ENV_PARENT] = str(os.getpid())  # the worker: a child whose worker died ends itself
        return {**inherited_environment(), **own}

    def _pump(self, child: Child) -> None:
        fd = child.output_fd()
        tail = EventTail(self.events_path)
        sampler = ProcessSampler(child.pid)
        eof = False
        exited_at: float | None = None
        while not eof:
            now = time.monotonic()
            if exited_at is None and sampler.due(now):
                self._sample(sampler, now)
            ready, _, _ = select.select([fd], [], [], _POLL)
            if ready:
                chunk = os.read(fd, _READ)
                eof = not chunk
                self.stream.out += chunk
            self.stream.events += b"".join(line + b"\n" for line in tail.read_lines())
            self.stream.flush(time.monotonic())
            if exited_at is None and child.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > _EXIT_GRACE:
                break  # a stray grandchild holds the pipe open: stop waiting for it
        self._final_events(tail)

    def _final_events(self, tail: EventTail) -> None:
        with contextlib.suppress(OSError):
            seal(self.events_path)
        lines = tail.read_lines()
        if rest := tail.remainder():
            lines.append(rest)  # a line cut by the child's death: the reader reports it
        self.stream.events += b"".join(line + b"\n" for line in lines)

    def _sample(self, sampler: ProcessSampler, now: float) -> None:
        sample = sampler.sample(now)
        if sample is not None:
            stamped = replace(sample, run_id=self.spec.run_id, file=self.spec.key, t=time.time())
            self.stream.events += ev.encode(stamped).encode("utf-8") + b"\n"

    def _coverage_data(self) -> dict[str, bytes]:
        """The child's coverage data files, their paths moved to the launcher's root ({} when
        the launcher reads them where they are, on the shared filesystem)."""
        if not self.spec.archive or not self.spec.coverage_path:
            return {}
        found = {}
        for path in [self.coverage, *sorted(glob.glob(glob.escape(self.coverage) + ".gw*"))]:
            if os.path.isfile(path) and os.path.getsize(path):
                found[path[len(self.coverage) :]] = _remapped(path, self.root, self.spec.root)
        return found

    def _result(self, returncode: int, coverage: dict[str, bytes]) -> dict[str, Any]:
        stream = self.stream
        return {
            "returncode": returncode,
            "address": self.address,
            "out_at": stream.out_at,
            "out": bytes(stream.out),
            "ev_at": stream.events_at,
            "ev": bytes(stream.events),
            "coverage": coverage,
            "reads": _read_bytes(reads_beside(self.events_path)),
        }


def _read_bytes(path: str) -> bytes:
    """The file's bytes (b'' when the child never wrote it)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _coverage_file(spec: TaskSpec, root: str, scratch: str) -> str:
    if not spec.archive:
        return spec.coverage_path  # the launcher's own path, on the shared filesystem
    return os.fspath(RunDir.at(scratch).coverage_path(spec.key))


def _moved(value: str, old: str, new: str) -> str:
    """``value`` with the launcher's root ``old`` replaced by this worker's ``new``."""
    if old == new or old not in value:
        return value
    return re.sub(re.escape(old) + r'(?=[/\\"\s]|$)', lambda _: new, value)


def _remapped(path: str, worker_root: str, launcher_root: str) -> bytes:
    """The coverage data file at ``path`` with its source paths moved to ``launcher_root``,
    through coverage's own API (``CoverageData.update`` with path aliases)."""
    from coverage import CoverageData
    from coverage.files import PathAliases

    source = CoverageData(basename=path)
    source.read()
    aliases = PathAliases(relative=False)
    aliases.add(worker_root.rstrip(os.sep) + os.sep, launcher_root.rstrip(os.sep) + os.sep)
    mapped = path + ".mapped"
    out = CoverageData(basename=mapped)
    if _takes_map_path():
        out.update(source, map_path=aliases.map)
    else:  # pragma: no cover - coverage before 7.6
        out.update(source, aliases=aliases)  # type: ignore[call-arg]
    out.write()
    with open(mapped, "rb") as fh:
        return fh.read()


def _takes_map_path() -> bool:
    """coverage 7.6 renamed ``CoverageData.update``'s ``aliases`` to ``map_path``."""
    import inspect

    from coverage import CoverageData

    return "map_path" in inspect.signature(CoverageData.update).parameters
