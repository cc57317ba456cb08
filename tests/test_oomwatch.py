"""A SIGKILL told apart: real children killed by us, and by the kernel's out-of-memory killer.

The out-of-memory test makes a memory cgroup below this test's own (root in a container
whose cgroup file system is writable; the test is skipped, saying why, where it is not),
runs the ``devformance`` command inside it on a file that allocates past the limit, and
reads the file's message where a user would: the terminal, the store and the live pane.
"""

from __future__ import annotations

import contextlib
import html
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api import facade as api
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic import oom
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.oomwatch import OomWatch
from devformance_nb.run.replay import replay
from devformance_nb.run.sampler import ProcessSampler
from devformance_nb.run.state import RunState
from devformance_nb.ui.liveview import LiveRunView

MB = 1_000_000

HOLDS_MEMORY = """
import sys
data = bytearray(150 * 1000 * 1000)
for i in range(0, len(data), 4096):
    data[i] = 1  # touched: resident
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def holding_child() -> Iterator[subprocess.Popen[str]]:
    """A real child holding 150 MB until it is killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDS_MEMORY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        child.wait(timeout=30)


def sampled(watch: OomWatch, pid: int) -> None:
    """One sample of the live child through the watch."""
    assert watch.sample(ProcessSampler(pid)) is not None, "the child lives: a sample"


def test_a_sigkill_that_is_not_for_memory_gets_no_verdict() -> None:
    with holding_child() as child:
        watch = OomWatch(child.pid)
        sampled(watch, child.pid)
        assert watch.rss is not None and watch.rss >= 150 * MB
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    assert watch.verdict() is None
    seen = watch.seen()
    if watch.counter_file is not None:  # the kernel's counter, where this machine has one
        assert seen.kills_before == seen.kills_after
    assert seen.limit is not None and seen.limit > seen.rss  # type: ignore[operator]


def test_without_a_counter_memory_near_the_limit_is_a_guess(tmp_path: Path) -> None:
    # ``proc`` without the child's cgroup file: no counter, as on a machine without cgroups;
    # the limit is injected (the machine's RAM, said to be just above what the child holds)
    with holding_child() as child:
        alone = OomWatch(child.pid, proc=str(tmp_path), ram=1)
        sampled(alone, child.pid)
        rss = alone.rss
        assert rss is not None and alone.counter_file is None
        near = OomWatch(child.pid, proc=str(tmp_path), ram=int(rss / 0.95))
        far = OomWatch(child.pid, proc=str(tmp_path), ram=rss * 3)
        sampled(near, child.pid)
        sampled(far, child.pid)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    verdict = near.verdict()
    assert verdict is not None and verdict.cause == "probably out of memory"
    assert verdict.evidence.startswith("a guess: SIGKILL with RSS at "), verdict
    assert verdict.evidence.endswith(" the machine's RAM"), verdict
    assert far.verdict() is None, "a third of the limit: no guess"


def test_a_child_that_is_gone_gives_no_baseline_and_no_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    watch = OomWatch(child.pid)  # reaped: /proc/PID is gone
    assert watch.counter_file is None and watch.kills is None
    assert watch.sample(ProcessSampler(child.pid)) is None and watch.rss is None
    assert watch.verdict() is None


# -- the kernel's out-of-memory killer, for real -------------------------------------------

GROWS = """
def test_small():
    assert True


def test_grows():
    # the biggest candidate by far: the killer takes this process, not the launcher
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")
    kept = []
    while True:
        block = bytearray(20 * 1000 * 1000)
        for i in range(0, len(block), 4096):
            block[i] = 1  # touched: resident
        kept.append(block)
"""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[Path]:
    """A new memory cgroup below this process's own, limited to ``limit`` bytes (no swap).

    Skips the test where the machine does not allow one (not root, a read-only cgroup file
    system, or a cgroup v2 parent that does not hand the memory controller to its children).
    """
    with open("/proc/self/cgroup") as fh, open("/proc/self/mountinfo") as mi:
        unified, memory = oom.cgroup_paths(fh.read())
        mounts = oom.cgroup_mounts(mi.read())
    v2 = oom.cgroup_folder(unified, mounts, 2) if unified is not None else None
    v1 = oom.cgroup_folder(memory, mounts, 1) if memory is not None else None
    if v2 and os.path.exists(os.path.join(v2, "memory.events")):
        parent, limit_file, no_swap = Path(v2), "memory.max", ("memory.swap.max", "0")
        with open(parent / "cgroup.subtree_control") as fh:
            if "memory" not in fh.read().split():
                pytest.skip(f"cgroup v2: {parent} does not delegate the memory controller")
    elif v1:
        parent, limit_file, no_swap = Path(v1), "memory.limit_in_bytes", ("memory.swappiness", "0")
    else:
        pytest.skip("no memory cgroup mounted here")
    folder = parent / f"devformance-test-{os.getpid()}"
    try:
        folder.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup under {parent}: {exc}")
    try:
        _write(folder / limit_file, str(limit))
        with contextlib.suppress(OSError):  # swap would only slow the kill down
            _write(folder / no_swap[0], no_swap[1])
        yield folder
    finally:
        deadline = time.monotonic() + 30
        while True:  # empty once its last process is reaped
            try:
                folder.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_the_out_of_memory_killer_is_named(
    make_project: MakeProject, tmp_path: Path, executor: str
) -> None:
    root = make_project({"tests/test_grow.py": GROWS})
    db = tmp_path / "db.duckdb"
    command = [
        sys.executable, "-m", "devformance_nb.cli", "run", "--workers", "1", "--no-coverage",
        "--executor", executor, "--db", str(db),
    ]  # fmt: skip
    with memory_cgroup(500 * MB) as cgroup:
        # the command, launcher and all, runs inside the limited cgroup: as in a CI container
        procs = shlex.quote(str(cgroup / "cgroup.procs"))
        shell = f"echo $$ > {procs} && exec {shlex.join(command)}"
        done = subprocess.run(
            ["sh", "-c", shell], cwd=root, capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 1, done.stdout + done.stderr
    said = (
        "killed by signal 9 (SIGKILL), out of memory while tests/test_grow.py::test_grows "
        "was running (the kernel's out-of-memory killer: cgroup oom_kill went "
    )
    assert said in done.stdout, done.stdout  # the terminal
    (row,) = api.open_store(db).query("SELECT run_id, status, message FROM test_files")
    assert row["status"] == "crashed"
    message = row["message"]
    assert message.startswith(said) and message.endswith(", limit 500 MB)"), message
    # the live pane: the run directory replayed into a view, as the launcher's loop does
    view = LiveRunView(root=root)
    dispatcher = Dispatcher(RunState(run_id=row["run_id"]), [view])
    for event in replay(RunDir.for_run(root, row["run_id"])):
        dispatcher.deliver(event)
    dispatcher.close()
    pane = view.pane_for("tests/test_grow.py")
    assert pane is not None and said in html.unescape(pane.head.value)
