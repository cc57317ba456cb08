"""Executors: how one test file becomes one isolated pytest child process.

An executor only starts children; reading their output and events is the
reader's job (``devformance_nb.run.reader``), the same for every executor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from devformance_nb.core.contract import (
    ENV_CHILD_PID,
    ENV_EVENTS,
    ENV_FILE,
    ENV_OPTIONS,
    ENV_PARENT,
    ENV_RUN_ID,
    ENV_WORKER_INPUT,
    XDIST_TESTRUNUID,
    XDIST_WORKER,
    XDIST_WORKER_COUNT,
    ChildOptions,
    worker_name,
)
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run.preconfig import CHILD_PYTEST_ARGS


@dataclass(frozen=True)
class Job:
    """Everything needed to run one test file."""

    run_id: str
    test_file: TestFile
    root: Path
    run_dir: RunDir
    pytest_args: tuple[str, ...] = ()
    #: the run's options for every child (``child_options`` completes them for this file)
    options: ChildOptions = field(default_factory=ChildOptions)
    python: str = sys.executable
    #: the worker slot running this file (``gw<worker>``) and how many slots the run has
    worker: int = 0
    workers: int = 1
    #: this slot's pytest-xdist ``workerinput`` (None: xdist is not installed)
    worker_input: dict[str, Any] | None = None

    @property
    def events_path(self) -> Path:
        return self.run_dir.events_path(self.test_file.key)

    @property
    def log_path(self) -> Path:
        return self.run_dir.log_path(self.test_file.key)

    @property
    def coverage_path(self) -> Path:
        """This file's own coverage data file (written only when coverage is on)."""
        return self.run_dir.coverage_path(self.test_file.key)

    def child_options(self) -> ChildOptions:
        """The plugin's settings for this file's child (``DEVFORMANCE_OPTIONS``)."""
        data = os.fspath(self.coverage_path) if self.options.coverage else ""
        return replace(self.options, root=os.fspath(self.root), coverage_data=data)

    def command(self) -> list[str]:
        """The child's pytest command line."""
        return [
            self.python,
            "-m",
            "pytest",
            *CHILD_PYTEST_ARGS,
            "--color=yes",
            *self.pytest_args,
            os.fspath(self.test_file.path),
        ]

    def environment(self) -> dict[str, str]:
        """The child's environment: ours (``inherited_environment``) plus its own variables."""
        return {**inherited_environment(), **self.own_environment()}

    def own_environment(self) -> dict[str, str]:
        """The variables this child gets whatever machine runs it: the plugin's settings and
        the xdist worker identity (a remote executor adds them to its worker's environment)."""
        return {
            "PYTHONUNBUFFERED": "1",
            ENV_EVENTS: os.fspath(self.events_path),
            ENV_RUN_ID: self.run_id,
            ENV_FILE: self.test_file.key,
            ENV_PARENT: str(os.getpid()),
            ENV_OPTIONS: self.child_options().to_env(),
            **self._worker_environment(),
        }

    def _worker_environment(self) -> dict[str, str]:
        """What pytest-xdist sets in a worker, for this file's slot."""
        found = {
            XDIST_WORKER: worker_name(self.worker),
            XDIST_WORKER_COUNT: str(self.workers),
            XDIST_TESTRUNUID: self.run_id,
        }
        if self.worker_input is not None:
            found[ENV_WORKER_INPUT] = json.dumps(self.worker_input)
        return found


def inherited_environment() -> dict[str, str]:
    """This process's environment as a child inherits it.

    The variables that make coverage.py (``COVERAGE_PROCESS_START``) or pytest-cov
    (``COV_CORE_*``) measure subprocesses are left out: a measured parent must not make each
    child start a second tracer beside ours.
    """
    return {k: v for k, v in os.environ.items() if not _measures_subprocesses(k)}


def _measures_subprocesses(name: str) -> bool:
    # and a child pid of our own: the launcher may itself run inside a devformance child
    # (or a test that used the plugin), whose pid would make every child look nested
    return name in ("COVERAGE_PROCESS_START", ENV_CHILD_PID) or name.startswith("COV_CORE_")


class Child(Protocol):
    """A running test file: a process with one output pipe (stdout and stderr merged).

    A child that runs on another machine (a Dask task) has a class attribute ``remote =
    True``: its pid is not one of this machine's, so its reader does not sample it (the
    executor streams the samples its worker took, with the child's events). Once ended, it
    may say why it was killed in ``verdict`` (a ``logic.oom.Verdict``): its worker was lost.
    """

    pid: int

    def output_fd(self) -> int:
        """File descriptor of the output pipe (read until EOF)."""

    def poll(self) -> int | None:
        """Exit code if ended (negative: killed by that signal), else None."""

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end; raises subprocess.TimeoutExpired."""

    def kill_group(self) -> None:
        """Kill the child, its process group and its descendants (a setsid grandchild too)."""

    def close(self) -> None:
        """Release the output pipe once everything was read."""


class Executor(Protocol):
    """Starts one child per job."""

    name: str

    def start(self, job: Job) -> Child:
        """Start ``job`` and return its child; raises OSError if it cannot start."""

    def close(self) -> None:
        """Release whatever the executor holds (servers, pools)."""


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (its children, theirs...), from /proc; [] without it."""
    parents: dict[int, list[int]] = {}
    try:
        names = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc (macOS): the process group is all a kill reaches
        return []
    for name in names:
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                # the command name, in parentheses, may hold spaces: the ppid is after its ")"
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # ended meanwhile
            continue
        parents.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def kill_tree(pid: int, alive: bool = True) -> None:
    """SIGKILL child ``pid``'s process group and, while it is ``alive``, every process below it.

    A grandchild that left the group (``setsid``, ``start_new_session=True``) is out of reach
    of the group kill: found through /proc while its parent lives, it is killed by pid. Once
    the child is reaped its pid may be another process's: then only the group is killed.
    """
    strays = descendants(pid) if alive else []
    for target in (pid, *strays):  # already gone (and its group with it) is fine
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if target == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(target, signal.SIGKILL)


class SpawnChild:
    """A ``subprocess.Popen`` child in its own session and process group."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc
        self.pid = proc.pid

    def output_fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def kill_group(self) -> None:
        kill_tree(self.pid, alive=self.proc.returncode is None)  # not reaped yet: still ours

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def spawn(command: list[str], env: dict[str, str], cwd: str | os.PathLike[str]) -> SpawnChild:
    """Start ``command`` as a child: stdin from /dev/null, stdout and stderr on one pipe."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: a kill reaches grandchildren
    )
    return SpawnChild(proc)


class SpawnExecutor:
    """``python -m pytest FILE`` per job: portable and fully isolated, the baseline."""

    name = "spawn"

    def start(self, job: Job) -> SpawnChild:
        return spawn(job.command(), job.environment(), job.root)

    def close(self) -> None:
        """Nothing to release."""
