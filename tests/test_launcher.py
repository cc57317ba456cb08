"""The launcher with a scripted fake executor: scheduling, the one loop, stop, timeout, crashes.

The real-process versions of stop, timeout and crashes live in test_faults.py; these run the
same launcher, readers and dispatcher in milliseconds, with every outcome chosen by a script.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeExecutor, Recorder, Script, plan, pytest_file

from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import read_events
from devformance_nb.logic.scheduling import LongestFirst
from devformance_nb.run.launcher import Launcher
from devformance_nb.run.state import RunState

pytestmark = pytest.mark.quick

PASS = {"test_ok": "passed"}
#: the hanging fake's timeout: the passing fakes end in milliseconds, far below it
FAKE_TIMEOUT = 3.0
HANG = Script(
    lines=["collecting ..."], events=[ev.Collected(count=1, nodeids=["h.py::t"])], hang=True
)


def passing(*keys: str) -> dict[str, Script]:
    return {key: pytest_file(key, PASS, lines=[f"{key} ."]) for key in keys}


def statuses(state: RunState) -> dict[str, str]:
    return {key: fs.status for key, fs in state.files.items()}


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds`` (a bound, not a measurement)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)  # the poll's pause, not a wait for the condition


def run_in_thread(launcher: Launcher) -> threading.Thread:
    """Run the launcher's loop on a thread of its own, as the notebook's background run does."""
    thread = threading.Thread(target=launcher.run, name="test-loop", daemon=True)
    thread.start()
    return thread


def launch(
    tmp_path: Path, scripts: Mapping[str, Script], workers: int = 1, **more: Any
) -> tuple[Launcher, FakeExecutor, Recorder]:
    executor = FakeExecutor(scripts)
    recorder = Recorder()
    launcher = Launcher(plan(tmp_path, scripts, workers, **more), executor, [recorder])
    return launcher, executor, recorder


def test_every_file_runs_exactly_once_across_workers(tmp_path: Path) -> None:
    keys = [f"tests/test_{i:02}.py" for i in range(12)]
    launcher, executor, recorder = launch(tmp_path, passing(*keys), workers=4)
    state = launcher.run()
    assert sorted(executor.started) == keys  # each once: no file twice, none left out
    for key in keys:
        assert recorder.kinds(key).count("file_started") == 1
        assert recorder.kinds(key).count("file_finished") == 1
    assert set(statuses(state).values()) == {"passed"}
    assert state.status == "passed" and state.workers == 4 and state.executor == "fake"
    assert executor.closed and recorder.closed == ["passed"]


def test_observers_hear_everything_on_the_loop_thread_only(tmp_path: Path) -> None:
    scripts = {**passing("a.py", "b.py", "c.py"), "h.py": HANG}
    # the hang ends by timeout, so the run lasts long enough for the loop to tick; the timeout
    # is generous so that the passing fakes never reach it, however loaded the machine
    launcher, executor, recorder = launch(tmp_path, scripts, workers=2, timeout=FAKE_TIMEOUT)
    loop = run_in_thread(launcher)
    loop.join(60)
    assert not loop.is_alive()
    assert recorder.threads == {loop.ident}  # events, ticks and close: all from the loop
    assert loop.ident not in executor.threads  # children were started by the workers
    assert recorder.ticks >= 1
    kinds = recorder.kinds()
    assert kinds[0] == "run_started" and kinds[-1] == "run_done"
    assert recorder.kinds("a.py") == [
        "file_started",
        "output",
        "collected",
        "test",
        "test",
        "test",
        "file_done",
        "file_finished",
    ]


def test_longest_first_order_is_kept_with_one_worker(tmp_path: Path) -> None:
    scripts = passing("a.py", "b.py", "c.py", "d.py")
    durations = {"a.py": 1.0, "b.py": 5.0, "c.py": 3.0}  # d.py is new: it gets the average, 3.0
    runs = plan(tmp_path, scripts)
    ordered = LongestFirst(durations).order(runs.files)
    runs.files = ordered
    executor, recorder = FakeExecutor(scripts), Recorder()
    Launcher(runs, executor, [recorder]).run()
    assert executor.started == ["b.py", "c.py", "d.py", "a.py"]
    # one worker: each file finishes before the next one starts
    ends = [
        (e.kind, e.file) for e in recorder.events if e.kind in ("file_started", "file_finished")
    ]
    assert ends == [
        (kind, key) for key in executor.started for kind in ("file_started", "file_finished")
    ]


def test_stop_kills_the_running_file_and_starts_no_other(tmp_path: Path) -> None:
    scripts = {**passing("a.py"), "h.py": HANG, **passing("z.py")}
    launcher, executor, recorder = launch(tmp_path, scripts, workers=1)
    loop = run_in_thread(launcher)
    wait_for(lambda: "h.py" in executor.started)
    launcher.stop()  # from another thread than the loop's, as the UI's stop button
    loop.join(60)
    assert not loop.is_alive()
    assert executor.started == ["a.py", "h.py"]
    assert executor.children["h.py"].killed
    state = launcher.state
    assert statuses(state) == {"a.py": "passed", "h.py": "stopped", "z.py": "not_run"}
    assert state.status == "stopped"
    assert state.files["h.py"].crash == "stopped by the user"
    assert recorder.kinds("z.py") == []  # never started, so nothing about it but the run's


class CtrlCWhileDrawing(Recorder):
    """Ctrl-C lands in its first tick while h.py runs (a view writing to a slow terminal)."""

    def tick(self, state: RunState) -> None:
        super().tick(state)
        hung = state.files.get("h.py")
        if hung is not None and hung.status == "running" and not self.closed:
            self.closed.append("interrupted")  # once: the next ticks draw as usual
            raise KeyboardInterrupt


def test_ctrl_c_inside_an_observer_stops_the_run_as_in_the_wait(tmp_path: Path) -> None:
    scripts = {**passing("a.py"), "h.py": HANG, **passing("z.py")}
    executor, observer = FakeExecutor(scripts), CtrlCWhileDrawing()
    launcher = Launcher(plan(tmp_path, scripts), executor, [observer])
    loop = run_in_thread(launcher)  # an interrupt escaping the loop ends only this thread
    loop.join(60)
    assert not loop.is_alive()
    assert statuses(launcher.state) == {"a.py": "passed", "h.py": "stopped", "z.py": "not_run"}
    assert launcher.state.status == "stopped" and executor.children["h.py"].killed
    assert observer.closed == ["interrupted", "stopped"], "the run ended through its close"


def test_a_timeout_kills_the_file_and_marks_it(tmp_path: Path) -> None:
    scripts = {"h.py": HANG, **passing("a.py")}
    launcher, executor, _ = launch(tmp_path, scripts, workers=2, timeout=FAKE_TIMEOUT)
    state = launcher.run()
    assert statuses(state) == {"h.py": "timeout", "a.py": "passed"}
    assert executor.children["h.py"].killed
    hung = state.files["h.py"]
    assert hung.crash.startswith(f"timed out after {FAKE_TIMEOUT:g} s") and hung.returncode == -9
    assert hung.collected == 1  # what it wrote before the kill is kept
    assert state.status == "failed"


@pytest.mark.parametrize(
    ("returncode", "message"),
    [
        (-11, "killed by signal 11 (SIGSEGV) while c.py::test_b was running"),
        (3, "exited with code 3 before pytest finished while c.py::test_b was running"),
    ],
)
def test_a_child_that_ends_without_file_done_crashed(
    tmp_path: Path, returncode: int, message: str
) -> None:
    done = pytest_file("c.py", {"test_a": "passed", "test_b": "passed"})
    # everything but file_done: the child died in the middle of test_b
    scripts = {
        "c.py": Script(events=done.events[:-3], returncode=returncode),
        **passing("a.py"),
    }
    launcher, _, recorder = launch(tmp_path, scripts)
    state = launcher.run()
    assert statuses(state) == {"c.py": "crashed", "a.py": "passed"}
    crashed = state.files["c.py"]
    assert (crashed.crash, crashed.returncode, crashed.done) == (message, returncode, 1)
    (event,) = [e for e in recorder.events if isinstance(e, ev.FileCrashed)]
    assert event.signal == (-returncode if returncode < 0 else None)
    assert state.status == "failed"


def test_a_child_that_cannot_start_is_an_error_and_the_run_goes_on(tmp_path: Path) -> None:
    scripts = {"x.py": Script(start_error="no such interpreter"), **passing("a.py")}
    launcher, executor, _ = launch(tmp_path, scripts)
    state = launcher.run()
    assert statuses(state) == {"x.py": "error", "a.py": "passed"}
    assert "OSError: no such interpreter" in state.files["x.py"].crash
    assert executor.started == ["x.py", "a.py"]


class Broken:
    """An observer that raises on every call."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self) -> None:
        self.calls += 1
        raise RuntimeError(f"broken observer, call {self.calls}")

    def on_event(self, event: ev.Event, state: RunState) -> None:
        self._fail()

    def tick(self, state: RunState) -> None:
        self._fail()

    def close(self, state: RunState) -> None:
        self._fail()


def test_a_failing_observer_is_reported_and_the_others_hear_everything(tmp_path: Path) -> None:
    scripts = {
        **passing("a.py", "b.py"),
        "f.py": pytest_file("f.py", {"test_x": "failed"}, lines=["F"]),
    }
    control = Recorder()
    Launcher(plan(tmp_path / "control", scripts), FakeExecutor(scripts), [control]).run()

    broken, recorder = Broken(), Recorder()
    launcher = Launcher(
        plan(tmp_path / "broken", scripts), FakeExecutor(scripts), [broken, recorder]
    )
    state = launcher.run()
    assert state.status == "failed" and statuses(state)["f.py"] == "failed"
    # the observer after the broken one got the very events a run without it gives
    assert Counter((e.kind, e.file) for e in recorder.events) == Counter(
        (e.kind, e.file) for e in control.events
    )
    assert recorder.closed == ["failed"]
    assert len(launcher.observer_errors) == broken.calls > len(recorder.events)
    assert "RuntimeError: broken observer, call 1" in launcher.observer_errors[0]


def test_the_journal_holds_the_launchers_events_in_order(tmp_path: Path) -> None:
    scripts = {**passing("a.py"), "c.py": Script(returncode=-9), **passing("b.py")}
    launcher, _, _ = launch(tmp_path, scripts)
    launcher.run()
    journal = list(read_events(launcher.plan.run_dir.journal))
    assert all(isinstance(e, ev.Event) for e in journal)
    assert [(e.kind, e.file) for e in journal] == [  # type: ignore[union-attr]
        ("run_started", ""),
        ("file_started", "a.py"),
        ("file_finished", "a.py"),
        ("file_started", "c.py"),
        ("file_crashed", "c.py"),
        ("file_finished", "c.py"),
        ("file_started", "b.py"),
        ("file_finished", "b.py"),
        ("run_done", ""),
    ]
    assert [e.seq for e in journal] == list(range(1, 10))  # type: ignore[union-attr]
    assert {e.run_id for e in journal} == {"fake-run"}  # type: ignore[union-attr]
    finished = [e for e in journal if isinstance(e, ev.FileFinished)]
    assert [e.status for e in finished] == ["passed", "crashed", "passed"]
    assert isinstance(journal[-1], ev.RunDone) and journal[-1].status == "failed"


def test_the_final_state_adds_up_the_script(tmp_path: Path) -> None:
    scripts = {
        "a.py": pytest_file("a.py", {"t1": "passed", "t2": "failed", "t3": "skipped"}),
        "b.py": pytest_file("b.py", {"t1": "passed", "t2": "xfailed"}, lines=["1", "2", "3"]),
        "e.py": pytest_file("e.py", {}),
        "c.py": Script(events=pytest_file("c.py", {"t1": "passed"}).events[:-1], returncode=-9),
    }
    launcher, _, _ = launch(tmp_path, scripts, workers=3)
    state = launcher.run()
    assert state.totals() == {"tests": 6, "passed": 3, "failed": 1, "skipped": 1, "xfailed": 1}
    assert state.status_counts() == {"failed": 1, "passed": 1, "empty": 1, "crashed": 1}
    assert state.status == "failed"
    assert state.files["b.py"].output_lines == 3
    assert state.files["a.py"].exitstatus == 1 and state.files["e.py"].exitstatus == 5
    assert state.files["a.py"].collected == 3


def test_a_slot_starts_its_next_child_while_the_last_files_data_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent reading a file's coverage (the first read parses every source: seconds)
    never keeps the slot's next child waiting; the file still ends after its data is read,
    at the time its child ended."""
    from dataclasses import replace

    from devformance_nb.run import reader

    first, second = "tests/test_a.py", "tests/test_b.py"
    scripts = passing(first, second)
    written = ev.CoverageWritten(data_file=str(tmp_path / "a.coverage"))
    scripts[first] = replace(scripts[first], events=[*scripts[first].events, written])
    launcher, executor, recorder = launch(tmp_path, scripts, workers=1)
    seen: list[list[str]] = []

    def slow_read(event: ev.CoverageWritten, root: Path, contexts: bool) -> ev.CoverageRead:
        # waits (with a deadline) for the next child: reading in the slot would wait forever
        wait_for(lambda: second in executor.started, seconds=10)
        seen.append(list(executor.started))
        return ev.CoverageRead(file=event.file, data_file=event.data_file)

    monkeypatch.setattr(reader.runcoverage, "read_file", slow_read)
    state = launcher.run()
    assert seen == [[first, second]]
    assert statuses(state) == {first: "passed", second: "passed"}
    kinds = recorder.kinds(first)
    assert kinds.index("coverage_read") < kinds.index("file_finished")
    a, b = state.files[first], state.files[second]
    assert a.finished is not None and b.started is not None and a.finished <= b.started
