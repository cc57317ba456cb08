"""The live view's words (ui/text.py): titles, badges and a pane's head line, from a
FileState (pure functions: synthetic states are enough)."""

from __future__ import annotations

import pytest

from devformance_nb.run.state import FileState
from devformance_nb.ui import text

pytestmark = pytest.mark.quick


def finished(**values: object) -> FileState:
    fs = FileState(key="tests/test_orders.py", status="passed", started=10.0, finished=12.5)
    for name, value in values.items():
        setattr(fs, name, value)
    return fs


def test_a_title_has_icon_status_path_and_badges() -> None:
    fs = finished(coverage=81.4, peak_rss=52_000_000)
    assert (
        text.title(fs) == "✔ passed  ·  tests/test_orders.py  ·  2.50 s  ·  cov 81%  ·  peak 52 MB"
    )


def test_a_running_file_shows_cpu_and_memory_and_a_finished_one_its_peak() -> None:
    running = FileState(key="t.py", status="running", started=0.0, cpu_percent=97.2, rss=3e8)
    assert "CPU 97%, 300 MB" in text.badges(running)
    assert "peak 300 MB" in text.badges(finished(peak_rss=300_000_000))


def test_a_dask_workers_file_names_its_worker_and_a_local_one_none() -> None:
    remote = text.head_html(finished(worker_address="tcp://10.0.0.7:40211"))
    assert "on Dask worker tcp://10.0.0.7:40211" in remote
    assert "Dask worker" not in text.head_html(finished())


def test_a_carried_file_says_where_its_result_comes_from() -> None:
    fs = finished(carried_from="20261207-1", carried_status="failed", reason="nothing changed")
    assert text.badges(fs)[0] == "from run 20261207-1 (failed), not re-run"
    assert "from run 20261207-1 (failed), not re-run: nothing changed" in text.head_html(fs)


def test_a_crash_shows_its_first_lines_escaped() -> None:
    crash = "Fatal Python error: Segmentation fault\n<frame> at app.py:3\n" + "x\n" * 100
    head = text.head_html(finished(status="crashed", crash=crash))
    assert "Fatal Python error: Segmentation fault" in head and "&lt;frame&gt;" in head
    assert head.count("\nx") < 100  # only the top of a long dump


def test_a_file_a_changed_run_selected_says_why_it_runs() -> None:
    fs = finished(reason="app/orders.py:1-2 changed, executed by this file in run R1")
    assert "runs because app/orders.py:1-2 changed, executed by this file in run R1" in (
        text.head_html(fs)
    )
    assert "runs because" not in text.head_html(finished())
