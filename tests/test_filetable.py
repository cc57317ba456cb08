"""The table of every file: order, filter, pages and its HTML."""

from __future__ import annotations

import re

import pytest

from devformance_nb.run.state import FileState
from devformance_nb.ui.filetable import PAGE_ROWS, ordered, page_of, page_text, table_html

pytestmark = pytest.mark.quick


def files() -> list[FileState]:
    passed = FileState(key="tests/test_a.py", status="passed", started=0.0, finished=3.0)
    failed = FileState(key="tests/test_b.py", status="failed", counts={"failed": 2})
    running = FileState(key="tests/test_c.py", status="running", collected=4, done=1)
    pending = FileState(key="tests/web/test_d.py")
    return [passed, failed, running, pending]


def keys(rows: list[FileState]) -> list[str]:
    return [fs.key for fs in rows]


def test_problems_first_then_running_then_waiting_then_done() -> None:
    assert keys(ordered(files(), "problems first")) == [
        "tests/test_b.py", "tests/test_c.py", "tests/web/test_d.py", "tests/test_a.py",
    ]  # fmt: skip
    assert keys(ordered(files(), "run order")) == keys(files())
    assert keys(ordered(files(), "slowest"))[0] == "tests/test_a.py"
    assert keys(ordered(files(), "problems first", "web")) == ["tests/web/test_d.py"]


def test_pages_are_clamped_and_described() -> None:
    rows = [FileState(key=f"t{i}.py") for i in range(2 * PAGE_ROWS + 3)]
    page, number = page_of(rows, 7)
    assert number == 2 and keys(page) == [f"t{i}.py" for i in range(2 * PAGE_ROWS, len(rows))]
    assert page_of(rows, -1)[1] == 0
    assert page_of([], 3) == ([], 0)
    assert page_text(1, len(rows), len(rows)) == f"files 51–100 of {len(rows)}"
    assert page_text(0, 3, 2_000) == "files 1–3 of 3 matching (2,000 in the run)"
    assert page_text(0, 0, 2_000) == "no file matches the filter (2,000 in the run)"


def test_a_row_carries_status_tests_failures_and_escapes_keys() -> None:
    body = table_html([*files(), FileState(key="tests/<odd>.py")])
    rows = re.findall(r"<tr>.*?</tr>", body)
    assert len(rows) == 6  # the header and five files
    failed = next(r for r in rows if "test_b.py" in r)
    assert "failed" in failed and ">2<" in failed
    assert ">1/4<" in next(r for r in rows if "test_c.py" in r)
    assert "&lt;odd&gt;" in body and "<odd>" not in body
