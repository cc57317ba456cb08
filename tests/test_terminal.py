"""The terminal view's line for a finished file."""

from __future__ import annotations

import pytest

from devformance_nb.cli.terminal import file_line
from devformance_nb.run.state import FileState

pytestmark = pytest.mark.quick

CRASH = """killed by signal 11 (SIGSEGV) while t.py::test_dies was running
Fatal Python error: Segmentation fault

Current thread 0x1 (most recent call first):
  File "/p/t.py", line 12 in test_dies
  File "/lib/_pytest/python.py", line 159 in pytest_pyfunc_call"""


def test_a_crash_says_what_happened_and_where() -> None:
    fs = FileState(key="t.py", status="crashed", crash=CRASH, started=0.0, finished=1.0)
    lines = file_line(fs).splitlines()
    assert lines[0].startswith("CRASHED  t.py")
    assert lines[1].strip() == "killed by signal 11 (SIGSEGV) while t.py::test_dies was running"
    assert lines[2].strip() == 'File "/p/t.py", line 12 in test_dies'
    assert len(lines) == 3


def test_an_error_shows_its_last_line_and_a_pass_nothing() -> None:
    error = "Traceback (most recent call last):\n  ...\nImportError: no module named app"
    fs = FileState(key="t.py", status="error", errors=[error])
    assert file_line(fs).splitlines()[1].strip() == "ImportError: no module named app"
    assert file_line(FileState(key="t.py", status="passed", crash="x")).count("\n") == 0
