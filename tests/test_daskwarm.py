"""Warm starts on a Dask worker: children forked from one server per project copy and run.

What a worker process does is done here in the test's own process: the functions are the
same, only the caller differs (test_daskexec runs them on real workers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import read_events
from devformance_nb.core.events import FileDone
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run import daskwarm
from devformance_nb.run.executor import Job


@pytest.fixture(autouse=True)
def no_servers_left() -> Iterator[None]:
    yield
    daskwarm.shutdown()


def job_for(root: Path, tmp_path: Path, run_id: str) -> Job:
    test = root / "tests" / "test_a.py"
    return Job(run_id, TestFile("tests/test_a.py", test), root, RunDir(tmp_path / run_id))


def run_child(job: Job) -> tuple[int, int, bytes]:
    """Fork ``job``'s child from the warm server: (its pid, its exit code, its output)."""
    job.run_dir.create()
    child = daskwarm.start(job.command(), job.environment(), os.fspath(job.root), (), job.run_id)
    assert child is not None
    output = b""
    while chunk := os.read(child.output_fd(), 65536):
        output += chunk
    code = child.wait(60)
    child.close()
    return child.pid, code, output


def test_children_fork_from_one_warm_server_per_project_and_run(
    make_project: MakeProject, tmp_path: Path
) -> None:
    body = (
        "import os, pathlib\n"
        "def test_a():\n"
        "    pathlib.Path('ppid').write_text(str(os.getppid()))\n"
    )
    root = make_project({"tests/test_a.py": body})
    first = job_for(root, tmp_path, "run-1")
    pid, code, output = run_child(first)
    assert code == 0, output.decode()
    done = [e for e in read_events(first.events_path) if isinstance(e, FileDone)]
    assert done and done[0].exitstatus == 0, "the plugin recorded the file in the child"
    options = ChildOptions.from_env(first.environment()["DEVFORMANCE_OPTIONS"])
    server = daskwarm.server_for(os.fspath(root), first.python, (), options, "run-1")
    assert server is not None and server._server is not None
    assert int((root / "ppid").read_text()) == server._server.proc.pid, "forked by the server"
    second = job_for(root, tmp_path, "run-2")
    _, code, _ = run_child(second)
    assert code == 0
    assert daskwarm.server_for(os.fspath(root), first.python, (), options, "run-2") is server
    assert pid > 0
    assert daskwarm.shutdown() == 1
