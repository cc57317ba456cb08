"""A real run's CPU and memory per test file: sampled live, the child's own count stored.

One file holds 300 MB while it works, another burns CPU; the live samples, the run's state,
the view's badges and the store must name them, with figures within 20% of what the OS
reported to each child (``getrusage``, written by the test itself).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb import analysis
from devformance_nb.api import facade as api
from devformance_nb.core import events as ev
from devformance_nb.run.state import RunState
from devformance_nb.ui import text

MB = 1_000_000

REPORT = """
import json, os, resource, time


def report(name):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.path.join(os.environ["REPORTS"], name), "w") as fh:
        json.dump({"cpu": usage.ru_utime + usage.ru_stime, "max_rss": usage.ru_maxrss * 1024}, fh)


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
"""

HOLDS_MEMORY = (
    REPORT
    + """

def test_holds_300_mb():
    data = bytearray(300 * 1000 * 1000)
    for i in range(0, len(data), 4096):
        data[i] = 1  # touched: resident
    busy(1.5)  # holding it while it works: the reader samples it meanwhile
    report("memory.json")
"""
)

BURNS_CPU = (
    REPORT
    + """

KEPT = []


def test_burns_cpu():
    busy(2.0)
    report("cpu.json")


def test_keeps_60_mb():
    data = bytearray(60 * 1000 * 1000)
    for i in range(0, len(data), 4096):
        data[i] = 1
    KEPT.append(data)  # still held after the test: the process grew by it
"""
)


class Samples:
    """Keeps every sample the run sends."""

    def __init__(self) -> None:
        self.seen: list[ev.Resources] = []

    def on_event(self, event: ev.Event, state: RunState) -> None:
        if isinstance(event, ev.Resources):
            self.seen.append(event)

    def tick(self, state: RunState) -> None:
        pass

    def close(self, state: RunState) -> None:
        pass


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the children's tests write what the OS told them (their REPORTS variable)."""
    folder = tmp_path / "reports"
    folder.mkdir()
    monkeypatch.setenv("REPORTS", str(folder))
    return folder


def test_the_memory_heavy_and_the_cpu_bound_file_are_named(
    make_project: MakeProject, reports: Path
) -> None:
    root = make_project({"tests/test_memory.py": HOLDS_MEMORY, "tests/test_cpu.py": BURNS_CPU})
    samples = Samples()
    run = api.run_tests(root=root, workers=2, coverage=False, observers=[samples])
    assert {fs.key: fs.status for fs in run.files} == {
        "tests/test_memory.py": "passed",
        "tests/test_cpu.py": "passed",
    }
    memory = json.loads((reports / "memory.json").read_text())
    cpu = json.loads((reports / "cpu.json").read_text())
    # live: the samples saw the 300 MB held and the CPU burnt
    held = [s.rss for s in samples.seen if s.file == "tests/test_memory.py"]
    burnt = [s.cpu_percent for s in samples.seen if s.file == "tests/test_cpu.py"]
    assert held and max(held) >= 0.8 * 300 * MB, held
    assert burnt and max(burnt) >= 20.0, burnt
    # the run's state and the store: the child's own figures, within 20% of what it reported
    files = {fs.key: fs for fs in run.files}
    heavy, busy = files["tests/test_memory.py"], files["tests/test_cpu.py"]
    assert (
        heavy.peak_rss is not None
        and abs(heavy.peak_rss - memory["max_rss"]) <= 0.2 * (memory["max_rss"])
    )
    assert busy.cpu_user is not None and busy.cpu_system is not None
    assert abs(busy.cpu_user + busy.cpu_system - cpu["cpu"]) <= 0.2 * cpu["cpu"]
    assert "peak 3" in text.title(heavy), text.title(heavy)  # "peak 3xx MB"
    rows = api.open_store(run.db).query(
        "SELECT file, peak_rss, cpu_user + cpu_system AS cpu, peak_threads, peak_processes "
        "FROM test_files WHERE run_id = ? ORDER BY peak_rss DESC",
        [run.id],
    )
    assert rows[0]["file"] == "tests/test_memory.py", "the heaviest file first"
    assert rows[0]["peak_rss"] == heavy.peak_rss
    by_file = {r["file"]: r for r in rows}
    assert abs(by_file["tests/test_cpu.py"]["cpu"] - cpu["cpu"]) <= 0.2 * cpu["cpu"]
    assert all(r["peak_threads"] >= 1 and r["peak_processes"] >= 1 for r in rows)


def test_each_test_costs_what_it_used(make_project: MakeProject, reports: Path) -> None:
    root = make_project({"tests/test_cpu.py": BURNS_CPU})
    run = api.run_tests(root=root, workers=1, coverage=False)
    (fs,) = run.files
    burner = fs.tests["tests/test_cpu.py::test_burns_cpu"]
    keeper = fs.tests["tests/test_cpu.py::test_keeps_60_mb"]
    assert burner.cpu is not None and 2.0 <= burner.cpu <= 2.0 * 1.2
    assert keeper.memory_growth is not None and keeper.memory_growth >= 0.8 * 60 * MB
    assert burner.memory_growth is not None and abs(burner.memory_growth) < 20 * MB
    rows = api.open_store(run.db).query(
        "SELECT nodeid, cpu, memory_growth FROM tests WHERE run_id = ? ORDER BY nodeid",
        [run.id],
    )
    assert [(r["cpu"], r["memory_growth"]) for r in rows] == [
        (burner.cpu, burner.memory_growth),
        (keeper.cpu, keeper.memory_growth),
    ]
    heavy = analysis.heaviest_tests(run.db, "latest")
    assert heavy.iloc[0]["nodeid"] == "tests/test_cpu.py::test_keeps_60_mb"
    assert heavy.iloc[0]["median_growth_mb"] >= 48
