from __future__ import annotations

import pytest

from devformance_nb.core import events as ev
from devformance_nb.run.state import RunState, exit_code, file_status, outcome_of

pytestmark = pytest.mark.quick


@pytest.mark.parametrize(
    ("exitstatus", "returncode", "stopped", "timed_out", "expected"),
    [
        (0, 0, False, False, "passed"),
        (1, 1, False, False, "failed"),
        (2, 2, False, False, "error"),  # collection errors interrupt pytest
        (5, 5, False, False, "empty"),
        (None, -9, False, False, "crashed"),
        (None, 3, False, False, "crashed"),  # os._exit before pytest finished
        (0, -11, False, False, "crashed"),  # wrote file_done, then died
        (None, -9, False, True, "timeout"),
        (None, -9, True, False, "stopped"),
    ],
)
def test_file_status(
    exitstatus: int | None, returncode: int, stopped: bool, timed_out: bool, expected: str
) -> None:
    assert file_status(exitstatus, returncode, stopped=stopped, timed_out=timed_out) == expected


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        ({"setup": "", "call": "passed", "teardown": ""}, "passed"),
        ({"setup": "", "call": "failed", "teardown": ""}, "failed"),
        ({"setup": "error", "teardown": ""}, "error"),
        ({"setup": "skipped", "teardown": ""}, "skipped"),
        ({"setup": "", "call": "passed", "teardown": "error"}, "error"),
        ({"setup": "", "call": "failed", "teardown": "error"}, "failed"),
        ({"setup": "", "call": "xfailed", "teardown": ""}, "xfailed"),
    ],
)
def test_outcome_of(categories: dict[str, str], expected: str) -> None:
    assert outcome_of(categories) == expected


def phase(nodeid: str, when: str, category: str) -> ev.TestPhase:
    return ev.TestPhase(
        file="a.py", nodeid=nodeid, phase=when, outcome="passed", duration=0.1, category=category
    )


def test_state_follows_a_file_from_start_to_finish() -> None:
    state = RunState(run_id="r")
    state.apply(ev.RunStarted(root="/p", files=["a.py", "b.py"], workers=2, executor="spawn", t=1))
    assert state.status == "running" and state.files["b.py"].status == "pending"
    state.apply(ev.FileStarted(file="a.py", path="/p/a.py", pid=1, command=[], t=2, worker=1))
    assert (state.files["a.py"].worker, state.files["b.py"].worker) == (1, None)
    state.apply(ev.Collected(file="a.py", count=2, nodeids=["a.py::x", "a.py::y"]))
    for when, cat in (("setup", ""), ("call", "passed"), ("teardown", "")):
        state.apply(phase("a.py::x", when, cat))
    fs = state.files["a.py"]
    assert (fs.status, fs.done, fs.progress) == ("running", 1, 0.5)
    for when, cat in (("setup", ""), ("call", "failed"), ("teardown", "")):
        state.apply(phase("a.py::y", when, cat))
    state.apply(ev.FileFinished(file="a.py", status="failed", returncode=1, duration=1.0, t=3))
    assert (fs.status, fs.progress, fs.counts) == ("failed", 1.0, {"passed": 1, "failed": 1})
    state.apply(ev.RunDone(status="stopped", duration=3, t=4))
    assert state.files["b.py"].status == "not_run"
    assert state.totals() == {"tests": 2, "passed": 1, "failed": 1}
    assert state.final_status(stopped=False) == "failed"


def test_exit_codes_follow_pytest() -> None:
    assert [exit_code(s) for s in ("passed", "failed", "stopped", "empty", "weird")] == [
        0,
        1,
        2,
        5,
        3,
    ]


def sample(rss: int, cpu: float, threads: int = 3, processes: int = 1) -> ev.Resources:
    return ev.Resources(
        file="t.py", cpu_percent=cpu, rss=rss, threads=threads, processes=processes,
        cpu_user=cpu / 100, cpu_system=0.0,
    )  # fmt: skip


def test_samples_give_the_current_figures_and_the_peaks() -> None:
    state = RunState(run_id="r")
    state.apply(ev.FileStarted(file="t.py", path="/p/t.py", pid=1, command=[]))
    state.apply(sample(300_000_000, 95.0, threads=4, processes=2))
    state.apply(sample(120_000_000, 40.0))
    fs = state.files["t.py"]
    assert (fs.rss, fs.cpu_percent) == (120_000_000, 40.0), "now"
    assert (fs.peak_rss, fs.peak_threads, fs.peak_processes) == (300_000_000, 4, 2)
    assert fs.cpu_user == 0.4, "the samples' count until the child's own"
    # the child's own figures at its end win for CPU, and for the peak when higher
    state.apply(ev.FileDone(file="t.py", exitstatus=0, counts={}, duration=1.0,
                            cpu_user=1.5, cpu_system=0.25, max_rss=310_000_000))  # fmt: skip
    state.apply(sample(100_000_000, 5.0))  # a late sample changes no total
    assert (fs.cpu_user, fs.cpu_system, fs.peak_rss) == (1.5, 0.25, 310_000_000)
    state.apply(ev.FileFinished(file="t.py", status="passed", returncode=0, duration=1.0))
    assert fs.rss is None and fs.cpu_percent is None, "nothing runs any more"
    # every sample is in the file's history (the live view's sparkline), late ones too
    assert [(p.cpu_percent, p.rss) for p in fs.samples.points()] == [
        (95.0, 300_000_000), (40.0, 120_000_000), (5.0, 100_000_000),
    ]  # fmt: skip


def test_the_last_output_line_with_text_on_it_is_kept() -> None:
    state = RunState(run_id="r")
    for number, text in enumerate(["collected 2 items", "t.py .", "   ", ""], start=1):
        state.apply(ev.Output(file="t.py", line=number, text=text))
    fs = state.files["t.py"]
    assert (fs.output_lines, fs.last_output) == (4, "t.py ."), "blank lines do not replace it"
