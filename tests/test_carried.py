"""Carried files in the run state, the views and ingest: a ``--changed`` run's skipped files
arrive as ``file_carried`` events (core/events.py), folded by run/state.py, shown by the
terminal and notebook views, journaled for ``devformance ingest`` (run/replay.py,
store/recarry.py). Real runs on a generated project with real pytest children."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api.facade import Run, ingest, run_tests
from devformance_nb.cli.terminal import TerminalView
from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import read_events
from devformance_nb.core.rundir import RunDir
from devformance_nb.run.state import RunState
from devformance_nb.store.database import Store

PROJECT = {
    "pyproject.toml": """\
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        [tool.coverage.run]
        source = ["app"]
        """,
    "app/__init__.py": "",
    "app/orders.py": "def total(n):\n    return n * 2\n\n\ndef discount(n):\n    return n - 1\n",
    "tests/test_total.py": """\
        from app.orders import total

        def test_total():
            assert total(2) == 4
        """,
    "tests/test_discount.py": """\
        from app.orders import discount

        def test_discount():
            assert discount(2) == 1

        def test_discount_zero():
            assert discount(1) == 0
        """,
    "tests/test_plain.py": "def test_plain():\n    assert True\n",
}
CARRIED = ["tests/test_discount.py", "tests/test_plain.py"]
FILE_COLUMNS = "file, status, carried_from, tests, passed, selected_because"


class Seen:
    """An observer keeping the kinds of the events it was told, in order."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def on_event(self, event: ev.Event, state: RunState) -> None:
        self.kinds.append(event.kind)

    def tick(self, state: RunState) -> None:
        pass

    def close(self, state: RunState) -> None:
        pass


@pytest.fixture
def changed_run(make_project: MakeProject) -> tuple[Path, Run, Run, str, list[str]]:
    """A full run, then a change of ``total`` and a --changed run (terminal output kept)."""
    root = make_project(PROJECT)
    first = run_tests(root=root, executor="spawn")
    assert first.status == "passed"
    orders = root / "app" / "orders.py"
    orders.write_text(orders.read_text().replace("n * 2", "n * 2 + 0"))
    out, seen = io.StringIO(), Seen()
    view = TerminalView(out=out, live=False)
    try:
        run = run_tests(root=root, executor="spawn", changed=True, observers=[view, seen])
    finally:
        view.stop()
    return root, first, run, out.getvalue(), seen.kinds


def files_of(store: Store, run_id: str) -> list[dict[str, object]]:
    return store.query(
        f"SELECT {FILE_COLUMNS} FROM test_files WHERE run_id = ? ORDER BY file", [run_id]
    )


def run_row(store: Store, run_id: str) -> dict[str, object]:
    return store.query(
        "SELECT status, files, tests, passed, selection FROM runs WHERE run_id = ?", [run_id]
    )[0]


def test_carried_files_are_in_the_state_the_views_and_the_store_once(
    changed_run: tuple[Path, Run, Run, str, list[str]],
) -> None:
    root, first, run, terminal, kinds = changed_run
    assert run.status == "passed"
    files = run.state.files
    assert files["tests/test_total.py"].status == "passed"
    assert files["tests/test_total.py"].carried_from is None
    for key in CARRIED:
        fs = files[key]
        assert (fs.status, fs.carried_from, fs.carried_status) == ("carried", first.id, "passed")
        assert fs.reason and fs.duration is not None and fs.started is None
    assert files["tests/test_discount.py"].counts == {"passed": 2}
    assert run.state.totals()["tests"] == 4  # the summary counts them
    # told right after the run's start, before any file started
    assert kinds[:3] == ["run_started", "file_carried", "file_carried"]
    # the terminal: one line per carried file, and the count in the last line
    for key in CARRIED:
        assert any(
            line.startswith("CARRIED") and key in line and f"from run {first.id}" in line
            for line in terminal.splitlines()
        ), terminal
    assert "2 files carried, not re-run" in terminal.splitlines()[-1]
    # the store: each file once, the carried ones copied from the run that ran them
    store = Store(root / ".devformance" / "devformance.duckdb")
    rows = files_of(store, run.id)
    assert [r["file"] for r in rows] == sorted([*CARRIED, "tests/test_total.py"])
    assert [r["carried_from"] for r in rows] == [first.id, first.id, None]
    assert run_row(store, run.id)["tests"] == 4
    # the journal keeps them for ingest
    journal = RunDir.at(run.state.meta["run_dir"]).journal
    kept = [e for e in read_events(journal) if isinstance(e, ev.FileCarried)]
    assert sorted(e.file for e in kept) == CARRIED
    assert {e.carried_from for e in kept} == {first.id}


def test_ingest_again_keeps_carried_files_and_selection_records(
    changed_run: tuple[Path, Run, Run, str, list[str]],
) -> None:
    root, _, run, _, _ = changed_run
    store = Store(root / ".devformance" / "devformance.duckdb")
    reads = "SELECT test_file, path, kind FROM selection_reads WHERE run_id = ? ORDER BY ALL"
    before = (files_of(store, run.id), run_row(store, run.id), store.query(reads, [run.id]))
    assert before[1]["selection"]
    state = ingest(run.state.meta["run_dir"], store.path)
    assert state.status_counts()["carried"] == 2
    after = (files_of(store, run.id), run_row(store, run.id), store.query(reads, [run.id]))
    assert after == before


def cli_ingest(root: Path, run_dir: str, db: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "devformance_nb.cli", "ingest", run_dir, "--db", os.fspath(db)],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "TERM": "dumb"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ingest_into_a_store_without_the_source_run_says_so(
    changed_run: tuple[Path, Run, Run, str, list[str]], tmp_path: Path
) -> None:
    root, first, run, _, _ = changed_run
    fresh = tmp_path / "fresh.duckdb"
    said = cli_ingest(root, run.state.meta["run_dir"], fresh)
    assert "2 files carried from earlier runs" in said
    assert f"2 carried files not stored: their results come from run {first.id}" in said
    store = Store(fresh)
    assert [r["file"] for r in files_of(store, run.id)] == ["tests/test_total.py"]
    assert run_row(store, run.id)["tests"] == 1  # counts what is stored, not the state
    # the source run first, then the --changed one again: complete, nothing said missing
    cli_ingest(root, first.state.meta["run_dir"], fresh)
    said = cli_ingest(root, run.state.meta["run_dir"], fresh)
    assert "not stored" not in said
    rows = files_of(store, run.id)
    assert [r["carried_from"] for r in rows] == [first.id, first.id, None]
    row = run_row(store, run.id)
    assert (row["tests"], row["passed"], row["files"]) == (4, 4, 3)
    assert row["selection"] == f"changed since run {first.id}"


@pytest.mark.quick
def test_the_live_view_shows_a_carried_file_marked(tmp_path: Path) -> None:
    from devformance_nb.run.dispatch import Dispatcher
    from devformance_nb.ui.liveview import LiveRunView
    from devformance_nb.ui.pane import Budget

    view = LiveRunView(root=tmp_path)
    view.budget = Budget(1e9, 1e12)
    view.expect(["tests/test_a.py"])
    dispatcher = Dispatcher(RunState(run_id="run-2"), [view])
    dispatcher.deliver(
        ev.RunStarted(root="/p", files=["tests/test_a.py"], workers=1, executor="spawn", t=1.0)
    )
    # a file the view was not told of (a run started elsewhere): it joins the view
    dispatcher.deliver(
        ev.FileCarried(
            file="tests/test_b.py",
            carried_from="run-1",
            status="passed",
            reason="nothing it depends on changed",
            tests=2,
            counts={"passed": 2},
            duration=0.5,
        )
    )
    dispatcher.deliver(ev.RunDone(status="passed", duration=1.0, t=2.0))
    dispatcher.close()
    assert dispatcher.errors == []
    pane = view.pane_for("tests/test_b.py")
    assert pane is not None
    title = view.accordion.titles[view.accordion.children.index(pane.box)]
    assert title.startswith("↺ carried  ·  tests/test_b.py  ·  from run run-1 (passed), not re-run")
    assert "carried, not re-run" in view.summary.value
    assert "↺ carried" in view.table.table.value
    # the run's status is its files' old statuses, not 'carried'
    assert dispatcher.state.final_status(stopped=False) == "passed"
