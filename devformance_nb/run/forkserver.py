"""The fork-server executor: a warm pytest process forks one child per test file.

A single-threaded server process imports pytest, this package's plugin, the
modules listed in ``preload`` and the installed libraries the project imports
(never a pytest plugin, a conftest file or other test infrastructure: see
``forkserve.warm_up``), then waits for requests on a Unix socket. Each
request carries the child's pytest arguments, environment and the write end
of its output pipe (passed as a file descriptor). The server forks; the child
starts its own session (process group), points stdout and stderr at the pipe,
and runs ``pytest.main``. The server reaps children and reports their exit
status back, so the launcher sees the same ``Child`` as with ``spawn``.

With coverage on, the server starts coverage.py before its first import, configured as a
child would be (``MeasureSettings``), and each child takes that measurement over: the
import-time lines of what the server imported (``preload`` modules of the project) count in
every child, and coverage's decision on each file is made once (``plugin.coverage``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devformance_nb.core.contract import ENV_FORKSERVER_WARM
from devformance_nb.run.executor import Child, Job, SpawnExecutor, kill_tree, spawn
from devformance_nb.run.forkproject import known_failures, project_signature, remember_failures
from devformance_nb.run.forkwire import LineBuffer, send_message


class ForkChild:
    """A child forked by the server: its pid, output pipe and exit status (via the server)."""

    def __init__(self, pid: int, fd: int, server: ForkServer):
        self.pid = pid
        self._fd = fd
        self._server = server

    def output_fd(self) -> int:
        return self._fd

    def poll(self) -> int | None:
        return self._server.exit_code(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        code = self._server.wait_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0)
        return code

    def kill_group(self) -> None:
        kill_tree(self.pid, alive=self.poll() is None)  # the server has not reaped it yet

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class ForkServer:
    """The launcher's side of one server process: requests, replies and exit codes."""

    def __init__(self, root: Path, python: str, warm: dict[str, Any]):
        self.root = root
        parent_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = parent_end
        self.proc = subprocess.Popen(
            [python, "-m", "devformance_nb.run.forkserve", str(server_end.fileno())],
            cwd=root,
            pass_fds=[server_end.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, ENV_FORKSERVER_WARM: json.dumps(warm)},
            start_new_session=True,
        )
        server_end.close()
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._pids: dict[int, int] = {}
        self._exits: dict[int, int] = {}
        self._next = 0
        self._ready = False
        #: the project's files the server imported, and why forking it is unsafe ('' if not)
        self.imported: list[str] = []
        self.unsafe = ""
        #: the imports the server left to the children (they failed in a server)
        self.skipped: list[str] = []
        #: fresh starts it took to leave failing imports out
        self.restarts = 0
        self._lines = LineBuffer()
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)
        self._dispatcher.start()
        self._await(lambda: self._ready or self._dead(), timeout=120)
        if not self._ready:
            err = self.proc.stderr.read().decode("utf-8", "replace") if self.proc.stderr else ""
            raise OSError(f"the fork server did not start:\n{err[-3000:]}")

    def _dead(self) -> bool:
        return self.proc.poll() is not None

    def _await(self, predicate: Any, timeout: float | None) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(predicate, timeout))

    def _dispatch(self) -> None:
        """Reads the server's replies: ready, started (pid per request), exited (code per pid)."""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:  # the server is gone: wake everyone waiting on it
                    self._cond.notify_all()
                    return
                for line in self._lines.feed(chunk):
                    self._handle(json.loads(line))
                self._cond.notify_all()

    def _handle(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            self.imported = list(message.get("imported", []))
            self.unsafe = str(message.get("unsafe", ""))
            self.skipped = [str(name) for name in message.get("skip", [])]
            self.restarts = int(message.get("restarts", 0))
            self._ready = True
        elif "started" in message:
            self._pids[message["req"]] = message["started"]
        elif "exited" in message:
            self._exits[message["exited"]] = message["code"]

    def fork(self, job: Job) -> ForkChild:
        """Ask the server for a child running ``job``; returns once its pid is known."""
        return self.request(job.command()[3:], job.environment(), job.root)

    def request(
        self, argv: list[str], env: dict[str, str], cwd: str | os.PathLike[str]
    ) -> ForkChild:
        """A child running pytest with ``argv`` (what follows ``python -m pytest``)."""
        read_fd, write_fd = os.pipe()
        try:
            with self._lock:
                self._next += 1
                req = self._next
                request = {"req": req, "argv": argv, "env": env, "cwd": os.fspath(cwd)}
                send_message(self._sock, request, write_fd)
        finally:
            os.close(write_fd)
        if not self._await(lambda: req in self._pids or self._dead(), timeout=60):
            os.close(read_fd)
            raise OSError("the fork server did not answer")
        if req not in self._pids:
            os.close(read_fd)
            raise OSError("the fork server ended unexpectedly")
        return ForkChild(self._pids.pop(req), read_fd, self)

    def exit_code(self, pid: int) -> int | None:
        with self._cond:
            return self._exits.get(pid)

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        self._await(lambda: pid in self._exits or self._dead(), timeout)
        with self._cond:
            if pid in self._exits:
                return self._exits.pop(pid)
        return -signal.SIGKILL if self._dead() else None

    def alive(self) -> bool:
        return not self._dead()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@dataclass(frozen=True)
class MeasureSettings:
    """How the server's coverage measurement is set up, as each child's would be."""

    #: what coverage measures (None: the project's coverage config, else its packages)
    source: tuple[str, ...] | None = None
    #: record which test ran each line
    contexts: bool = False


class ForkServerExecutor:
    """Starts children by forking a warm server; the server is reused while the project is
    unchanged (across runs of one notebook session, too)."""

    name = "forkserver"

    def __init__(
        self,
        root: Path,
        python: str,
        preload: list[str],
        coverage: bool,
        measure: MeasureSettings = MeasureSettings(),
    ):
        self.root = root
        self.python = python
        self.preload = list(preload)
        self.coverage = coverage
        #: what the server's own measurement follows (each child checks it is its own)
        self.measure = measure
        self._server: ForkServer | None = None
        self._signature: tuple[tuple[str, float], ...] = ()
        #: whether this run already checked the server against the project
        self._checked = False
        #: why the last server was unsafe to fork ('' if it was not): files spawn meanwhile
        self.unsafe = ""
        self._spawn = SpawnExecutor()
        self._lock = threading.Lock()

    def _ensure(self) -> ForkServer | None:
        """The server to fork from (None: fork is unsafe here, spawn instead)."""
        with self._lock:
            if not self._checked and (self._server is not None or self.unsafe):
                # once per run, at its first child: a restart later would kill running
                # children, and tests write config files of their own (a pyproject.toml in a
                # scratch folder) while the run goes on
                if self._stale():
                    self._drop()
            elif self._server is not None and not self._server.alive():
                self._server = None  # died mid-run: a new one serves the files left
            if self._server is None and not self.unsafe:
                self._start_server()
            self._checked = True
            return self._server

    def _start_server(self) -> None:
        warm = {
            "preload": self.preload,
            "coverage": self.coverage,
            "coverage_source": self.measure.source,
            "coverage_contexts": self.measure.contexts,
            "root": os.fspath(self.root),
            "skip": known_failures(self.root, self.python),
        }
        server = ForkServer(self.root, self.python, warm)
        if server.skipped != warm["skip"]:
            remember_failures(self.root, self.python, server.skipped)
        self._server = server
        self._signature = self._current_signature()
        if server.unsafe:  # never fork a process with threads or sockets of its own
            self.unsafe = server.unsafe
            self._server = None
            server.close()
            warnings.warn(
                f"devformance: not forking a warm server ({server.unsafe}); starting each "
                "file with spawn instead. Leave those modules out of preload to fork again.",
                RuntimeWarning,
                stacklevel=2,
            )

    def _stale(self) -> bool:
        """Whether there is no live server matching the project as it is now."""
        server = self._server
        return server is None or not server.alive() or self._signature != self._current_signature()

    def _drop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._server = None
        self.unsafe = ""

    def _current_signature(self) -> tuple[tuple[str, float], ...]:
        """The config files' and the server's imported project files' modification times."""
        imported = []
        for path in self._server.imported if self._server is not None else []:
            try:
                imported.append((path, os.stat(path).st_mtime))
            except OSError:
                imported.append((path, -1.0))  # deleted: the server holds a stale module
        return project_signature(self.root, self.preload) + tuple(imported)

    def start(self, job: Job) -> Child:
        server = self._ensure()
        if server is None:
            return self._spawn.start(job)
        return server.fork(job)

    def start_command(
        self, command: list[str], env: dict[str, str], cwd: str | os.PathLike[str]
    ) -> Child:
        """A child of ``command`` (``python -m pytest ...``, as ``Job.command()``), forked from
        the server, or spawned where forking is unsafe (a Dask task's child on its worker)."""
        server = self._ensure()
        if server is None:
            return spawn(command, env, cwd)
        return server.request(command[3:], env, cwd)

    def fork_now(
        self, command: list[str], env: dict[str, str], cwd: str | os.PathLike[str]
    ) -> Child | None:
        """A child of ``command`` (``python -m pytest ...``) forked from a server that is
        already up and current (a notebook's next run), else None: this never starts or waits
        for a server (the caller then starts its own process, beside the warm-up)."""
        if not self._lock.acquire(blocking=False):
            return None  # a server is being started or checked: not worth waiting for
        try:
            server = self._server
            if server is None:
                return None
            if not self._checked:  # the once-a-run check, as at a run's first child
                if self._stale():
                    self._drop()  # ``warm`` or the first child starts a new one
                    return None
                self._checked = True
        finally:
            self._lock.release()
        return server.request(command[3:], env, cwd)

    def warm(self) -> None:
        """Start (or check) the server in the background, e.g. while discovery runs.

        A failure here is left for ``start`` to raise, with the same message.
        """

        def ensure() -> None:
            with contextlib.suppress(Exception):
                self._ensure()

        threading.Thread(target=ensure, name="devformance-forkserver-warm", daemon=True).start()

    def close(self) -> None:
        """Keep the warm server for the next run (which checks it first); ``shutdown`` ends it."""
        with self._lock:
            self._checked = False

    def shutdown(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None


_EXECUTORS: dict[tuple[Any, ...], ForkServerExecutor] = {}


def shared_executor(
    root: Path,
    python: str,
    preload: list[str],
    coverage: bool,
    measure: MeasureSettings = MeasureSettings(),
) -> ForkServerExecutor:
    """The fork-server executor for this project, reused across runs in this process."""
    key = (os.fspath(root), python, tuple(preload), coverage, measure)
    executor = _EXECUTORS.get(key)
    if executor is None:
        executor = _EXECUTORS[key] = ForkServerExecutor(root, python, preload, coverage, measure)
    return executor


def available() -> bool:
    """Fork servers need ``os.fork`` and fd passing (POSIX)."""
    return hasattr(os, "fork") and hasattr(socket, "SCM_RIGHTS")
