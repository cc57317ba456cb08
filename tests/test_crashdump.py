"""What a dead child left behind: its fatal-error dump and the test it was running."""

from __future__ import annotations

import signal

import pytest

from devformance_nb.core import events as ev
from devformance_nb.run.crashdump import MAX_DUMP_LINES, CrashDump

pytestmark = pytest.mark.quick

DUMP = [
    "Fatal Python error: Segmentation fault",
    "",
    "Current thread 0x00007f0000000000 (most recent call first):",
    '  File "/p/tests/test_x.py", line 4 in test_dies',
    '  File "/p/lib/_pytest/python.py", line 159 in pytest_pyfunc_call',
    "",
    "Extension modules: _cffi_backend, " + "x, " * 500 + "(total: 9)",
]


def phase(nodeid: str, name: str) -> ev.TestPhase:
    return ev.TestPhase(nodeid=nodeid, phase=name, outcome="passed", duration=0.0)


def test_the_dump_and_the_running_test_make_the_message() -> None:
    crash = CrashDump()
    crash.line("collected 2 items")
    for name in ("setup", "call", "teardown"):
        crash.event(phase("t.py::test_first", name))
    crash.event(phase("t.py::test_dies", "setup"))
    for text in DUMP:
        crash.line(text)
    message = crash.describe(signal.SIGSEGV, "killed by signal 11")
    first, *rest = message.splitlines()
    assert first == "killed by signal 11 (SIGSEGV) while t.py::test_dies was running"
    assert rest[0] == "Fatal Python error: Segmentation fault"
    assert 'File "/p/tests/test_x.py", line 4 in test_dies' in message
    assert "Extension modules" not in message


def test_between_tests_and_without_a_dump_the_message_is_plain() -> None:
    crash = CrashDump()
    crash.event(phase("t.py::test_a", "setup"))
    crash.event(phase("t.py::test_a", "teardown"))
    assert crash.describe(None, "exited with code 3") == "exited with code 3"
    assert crash.describe(999, "killed by signal 999") == "killed by signal 999"


def test_a_long_dump_is_capped() -> None:
    crash = CrashDump()
    crash.line("Fatal Python error: Aborted")
    for n in range(500):
        crash.line(f'  File "f.py", line {n} in g')
    assert len(crash.dump.splitlines()) == MAX_DUMP_LINES


def test_a_cause_follows_the_signal_and_its_evidence_the_running_test() -> None:
    crash = CrashDump()
    crash.event(phase("t.py::test_grows", "setup"))
    evidence = "the kernel's out-of-memory killer: cgroup oom_kill went 0 -> 1"
    assert crash.describe(signal.SIGKILL, "killed by signal 9", "out of memory", evidence) == (
        "killed by signal 9 (SIGKILL), out of memory while t.py::test_grows was running "
        f"({evidence})"
    )
    crash.event(phase("t.py::test_grows", "teardown"))
    assert crash.describe(signal.SIGKILL, "killed by signal 9", "out of memory", evidence) == (
        f"killed by signal 9 (SIGKILL), out of memory ({evidence})"
    )
