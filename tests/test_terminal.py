"""The terminal view: a live table of the running files on a terminal, plain lines elsewhere."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MakeProject
from rich.console import Console

from devformance_nb.api import facade as api
from devformance_nb.cli.terminal import (
    TerminalView,
    file_line,
    file_row,
    fit_left,
    live_display,
    running_table,
)
from devformance_nb.core import events as ev
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.state import FileState, RunState

CRASH = """killed by signal 11 (SIGSEGV) while t.py::test_dies was running
Fatal Python error: Segmentation fault

Current thread 0x1 (most recent call first):
  File "/p/t.py", line 12 in test_dies
  File "/lib/_pytest/python.py", line 159 in pytest_pyfunc_call"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PASS = "def test_ok():\n    pass\n"
FAIL = "def test_bad():\n    assert 0\n"
#: a test that holds its file running until the test creates the gate (bounded, never hangs)
BLOCKED = """
import pathlib, time

def test_blocked():
    print("waiting for the gate", flush=True)
    deadline = time.monotonic() + 120
    while not pathlib.Path({gate!r}).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""
HEADER = re.compile(r"^file\s+tests\s+CPU\s+memory\s+elapsed\s+last output", re.M)


def plain(text: str) -> str:
    """``text`` without colour and cursor codes (a carriage return ends a line, as on screen)."""
    return ANSI.sub("", text).replace("\r", "\n")


def wait_for(condition: Callable[[], bool], seconds: float = 120.0) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds`` (a bound, not a measurement)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # the poll's pause, not a wait for the condition


def terminal(width: int = 120, height: int = 30) -> tuple[Console, io.StringIO]:
    """A rich Console that takes a StringIO for an interactive terminal."""
    buf = io.StringIO()
    console = Console(
        file=buf, force_terminal=True, force_interactive=True, width=width, height=height
    )
    return console, buf


@pytest.mark.quick
def test_a_crash_says_what_happened_and_where() -> None:
    fs = FileState(key="t.py", status="crashed", crash=CRASH, started=0.0, finished=1.0)
    lines = file_line(fs).splitlines()
    assert lines[0].startswith("CRASHED  t.py")
    assert lines[1].strip() == "killed by signal 11 (SIGSEGV) while t.py::test_dies was running"
    assert lines[2].strip() == 'File "/p/t.py", line 12 in test_dies'
    assert len(lines) == 3


@pytest.mark.quick
def test_a_problem_on_a_dask_worker_names_the_worker() -> None:
    crash = "killed by signal 9 (SIGKILL), its Dask worker left the cluster"
    fs = FileState(key="t.py", status="crashed", crash=crash, worker_address="tcp://10.0.0.7:40001")
    assert file_line(fs).splitlines()[1:] == [
        f"         {crash}",
        "         on Dask worker tcp://10.0.0.7:40001",
    ]
    passed = FileState(key="t.py", status="passed", worker_address="tcp://10.0.0.7:40001")
    assert "\n" not in file_line(passed), "a passed file's line stays one line"


@pytest.mark.quick
def test_an_error_shows_its_last_line_and_a_pass_nothing() -> None:
    error = "Traceback (most recent call last):\n  ...\nImportError: no module named app"
    fs = FileState(key="t.py", status="error", errors=[error])
    assert file_line(fs).splitlines()[1].strip() == "ImportError: no module named app"
    assert file_line(FileState(key="t.py", status="passed", crash="x")).count("\n") == 0


@pytest.mark.quick
def test_a_running_files_row_before_and_after_its_first_sample() -> None:
    fs = FileState(key="t.py", status="running", started=time.time(), last_output="x")
    assert file_row(fs)[1:4] == ("0/?", "–", "–")
    assert file_row(FileState(key="t.py", started=time.time() - 125.0))[4] == "2:05"
    fs.collected, fs.done, fs.cpu_percent, fs.rss = 12, 5, 97.4, 123_456_789
    key, tests, cpu, memory, elapsed, last = file_row(fs)
    assert (key, tests, cpu, memory, last) == ("t.py", "5/12", "97%", "123 MB", "x")
    assert re.fullmatch(r"\d+\.\ds", elapsed)


def running_state(count: int) -> RunState:
    state = RunState(run_id="r")
    keys = [f"tests/test_{i}.py" for i in range(count)]
    now = time.time()
    state.apply(ev.RunStarted(root="/p", files=keys, workers=count, executor="spawn", t=now))
    for i, key in enumerate(keys):
        state.apply(ev.FileStarted(file=key, path=f"/p/{key}", pid=i, command=[], t=now - i))
        line = f"\x1b[1m{key}\x1b[0m " + "output " * 40  # colour codes and a line too long
        state.apply(ev.Output(file=key, line=1, text=line))
    return state


@pytest.mark.quick
def test_the_table_cuts_the_last_line_to_fit_and_counts_the_rows_it_leaves_out() -> None:
    console, buf = terminal(width=100)
    console.print(running_table(running_state(5), max_rows=3, width=100))
    lines = plain(buf.getvalue()).splitlines()
    assert HEADER.match(lines[0]) and all(len(line) <= 100 for line in lines)
    rows = [line for line in lines if line.startswith("tests/test_")]
    # oldest first: test_4 started first
    assert [row.split()[0] for row in rows] == ["tests/test_4.py", "tests/test_3.py"]
    assert all(row.endswith("…") and "output output" in row for row in rows), rows
    assert lines[-1].split() == ["+3", "more"]


@pytest.mark.quick
def test_a_long_path_is_cut_from_the_left_and_keeps_its_file_name() -> None:
    assert fit_left("tests/deep/test_x.py", 20) == "tests/deep/test_x.py"
    assert fit_left("tests/deep/test_x.py", 12) == "…p/test_x.py"
    state = running_state(1)
    key = "tests/integration/very/deep/folder/structure/test_something_long_name.py"
    state.apply(ev.FileStarted(file=key, path=f"/p/{key}", pid=9, command=[], t=time.time()))
    console, buf = terminal(width=120)
    console.print(running_table(state, width=120))
    lines = plain(buf.getvalue()).splitlines()
    assert all(len(line) <= 120 for line in lines)
    assert any(line.startswith("…") and "test_something_long_name.py" in line for line in lines)


@pytest.mark.quick
def test_on_a_dumb_terminal_the_lines_are_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    buf = io.StringIO()
    view = TerminalView(console=Console(file=buf, force_terminal=True))
    assert not view.live
    dispatcher = Dispatcher(RunState(run_id="r"), [view])
    dispatcher.deliver(ev.RunStarted(root="/p", files=["t.py"], workers=1, executor="spawn", t=1))
    dispatcher.deliver(ev.FileStarted(file="t.py", path="/p/t.py", pid=1, command=[], t=2))
    dispatcher.tick()
    dispatcher.deliver(
        ev.FileFinished(file="t.py", status="passed", returncode=0, duration=1.0, t=3)
    )
    dispatcher.deliver(ev.RunDone(status="passed", duration=2.0, t=3))
    dispatcher.close()
    assert buf.getvalue().splitlines() == [
        "devformance: run r: 1 files, 1 workers (spawn)",
        "PASSED   t.py  no tests  1.00s",
        "devformance: passed - 0 tests in 1 files (nothing ran) in 2.0s",
    ]


@pytest.mark.quick
def test_the_display_leaves_room_for_the_summary_on_a_short_terminal() -> None:
    console, buf = terminal(width=100, height=10)
    console.print(live_display(running_state(12), console.height, console.width))
    lines = plain(buf.getvalue()).rstrip("\n").splitlines()
    assert len(lines) <= 10 and "0/12 files  0 tests  0 failed" in lines[-1]


def test_the_live_table_shows_a_running_file_then_the_summary(
    make_project: MakeProject, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    root = make_project(
        {"tests/test_block.py": BLOCKED.format(gate=str(gate)), "tests/test_quick.py": PASS}
    )
    console, buf = terminal()
    stdout = sys.stdout
    view = TerminalView(console=console)
    run = api.start_run(
        root=root, workers=2, store=False, coverage=False, pytest_args=["-s"], observers=[view]
    )
    try:
        row = re.compile(
            r"^tests/test_block\.py\s+0/1\s+\d+%\s+[\d,]+ MB\s+\d+\.\ds\s+"
            r"tests/test_block\.py waiting for the gate",
            re.M,
        )
        # the blocked file's row, with its samples and its last line, and the quick
        # file's line printed above a later frame of the table
        wait_for(lambda: bool(row.search(plain(buf.getvalue()))))
        wait_for(lambda: "PASSED   tests/test_quick.py  1 passed" in plain(buf.getvalue()))
        shown = plain(buf.getvalue())
        assert shown.index("PASSED   tests/test_quick.py") < shown.rindex("last output")
        assert HEADER.search(shown), "the table's header"
    finally:
        gate.touch()
        run.wait(timeout=300)
    assert run.status == "passed"
    raw = buf.getvalue()
    shown = plain(raw)
    end = shown[shown.rindex("PASSED   tests/test_block.py") :]
    assert re.search(r"━+ 2/2 files  2 tests  0 failed  \d+\.\ds\n", end), end
    assert "devformance: passed - 2 tests in 2 files (2 passed)" in end
    # the cursor shows again and print goes to the real stdout once the run ended
    assert raw.rindex("\x1b[?25h") > raw.rindex("\x1b[?25l")
    assert sys.stdout is stdout


def test_on_a_pipe_the_lines_are_plain_as_before(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS, "tests/test_b.py": FAIL})
    out = io.StringIO()
    view = TerminalView(out=out)
    run = api.run_tests(root=root, workers=2, store=False, coverage=False, observers=[view])
    text = out.getvalue()
    assert "\x1b" not in text
    first, *files, last = text.splitlines()
    assert first == f"devformance: run {run.id}: 2 files, 2 workers ({run.state.executor})"
    patterns = {
        r"PASSED   tests/test_a\.py  1 passed  \d+\.\d\ds",
        r"FAILED   tests/test_b\.py  1 failed  \d+\.\d\ds",
    }
    assert len(files) == 2
    assert all(any(re.fullmatch(p, line) for line in files) for p in patterns), files
    assert re.fullmatch(
        r"devformance: failed - 2 tests in 2 files \(1 failed, 1 passed\) in \d+\.\ds", last
    )


class Terminal:
    """``devformance`` run under a pseudo-terminal of 120 x 40, its output read as it comes."""

    def __init__(self, args: list[str], cwd: Path):
        self.master, child_end = pty.openpty()
        fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        unset = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
        env = {k: v for k, v in os.environ.items() if k not in unset}
        env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
        command = [sys.executable, "-m", "devformance_nb.cli", *args]
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=child_end, stdout=child_end, stderr=child_end
        )
        os.close(child_end)  # the command holds it now: reads end (EIO) once it exits
        self.chunks: list[bytes] = []
        self.closed = False

    @property
    def raw(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    def read(self, until: Callable[[str], bool] | None = None, seconds: float = 300.0) -> str:
        """Read until ``until`` holds for the output (plain), else to the end; bounded."""
        deadline = time.monotonic() + seconds
        while not self.closed and not (until and until(plain(self.raw))):
            assert time.monotonic() < deadline, f"not in the output in time:\n{plain(self.raw)}"
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if not ready:
                self.closed = self.proc.poll() is not None
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                data = b""
            self.chunks.append(data)
            self.closed = not data
        assert until is None or until(plain(self.raw)), plain(self.raw)
        return self.raw

    def close(self) -> int:
        """Wait for the command (killed if it hangs) and close the terminal; its exit code."""
        try:
            return self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)


def test_the_command_draws_the_table_on_a_real_terminal(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS, "tests/test_b.py": FAIL})
    term = Terminal(["run", "tests", "--workers", "2"], root)
    try:
        raw = term.read()
    finally:
        code = term.close()
    shown = plain(raw)
    assert code == 1, shown
    assert "\x1b[?25l" in raw and raw.rindex("\x1b[?25h") > raw.rindex("\x1b[?25l")
    assert HEADER.search(shown), shown
    assert re.search(r"2/2 files  2 tests  1 failed", shown), shown
    assert "devformance: failed - 2 tests in 2 files (1 failed, 1 passed)" in shown
    assert "stored as run" in shown


def test_ctrl_c_stops_the_run_and_leaves_the_terminal_clean(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project({"tests/test_block.py": BLOCKED.format(gate=str(tmp_path / "never"))})
    term = Terminal(["run", "tests", "--", "-s"], root)
    try:
        term.read(until=lambda shown: "waiting for the gate" in shown)
        term.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the command
        raw = term.read()
    finally:
        code = term.close()
    shown = plain(raw)
    assert code == 2, shown
    # the cursor is shown again after the table, and the last lines are plain lines
    assert raw.rindex("\x1b[?25h") > raw.rindex("\x1b[?25l")
    assert "STOPPED  tests/test_block.py" in shown
    assert "devformance: stopped - 0 tests in 1 files" in shown
