"""The Python API over real runs: run_tests, open_store, ingest, and store failures."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import MakeProject
from test_faults import pid_alive
from test_store import hold_lock

from devformance_nb.api import facade as api
from devformance_nb.core.errors import StoreError, StoreLockedError
from devformance_nb.store.database import Store

SUITE = {
    "tests/test_math.py": """
        import pytest
        def test_add():
            assert 1 + 1 == 2
        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_param(n):
            assert n < 3
        @pytest.mark.skip
        def test_skipped():
            pass
    """,
    "tests/sub/test_strings.py": """
        def test_upper():
            print("shouting")
            assert "a".upper() == "A"
    """,
}


def counts_in_store(run: api.Run) -> dict[str, dict[str, int]]:
    rows = api.open_store(run.db).query(
        "SELECT file, passed, failed, skipped, errors, tests FROM test_files WHERE run_id = ?",
        [run.id],
    )
    return {r.pop("file"): r for r in rows}


def test_run_tests_then_open_store_gives_the_same_counts(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(SUITE)
    run = api.run_tests(root=root, workers=2, executor=executor)
    assert run.status == "failed" and run.exit_code == 1
    assert run.totals() == {"tests": 6, "passed": 4, "failed": 1, "skipped": 1}
    assert counts_in_store(run) == {
        "tests/test_math.py": {"passed": 3, "failed": 1, "skipped": 1, "errors": 0, "tests": 5},
        "tests/sub/test_strings.py": {
            "passed": 1,
            "failed": 0,
            "skipped": 0,
            "errors": 0,
            "tests": 1,
        },
    }
    store = api.open_store(run.db)
    (row,) = store.runs()
    assert row["run_id"] == run.id and row["status"] == "failed"
    assert (row["tests"], row["passed"], row["failed"], row["skipped"]) == (6, 4, 1, 1)
    tests = store.query(
        "SELECT nodeid, outcome, message FROM tests WHERE run_id = ? ORDER BY nodeid", [run.id]
    )
    failed = [t for t in tests if t["outcome"] == "failed"]
    assert [t["nodeid"] for t in failed] == ["tests/test_math.py::test_param[3]"]
    assert "assert 3 < 3" in failed[0]["message"]
    lines = [
        r["text"]
        for r in store.query(
            "SELECT text FROM output_lines WHERE run_id = ? AND file = 'tests/test_math.py' "
            "ORDER BY line",
            [run.id],
        )
    ]
    assert "test session starts" in lines[0] and "\x1b[" not in "".join(lines)
    assert any("1 failed, 3 passed, 1 skipped" in line for line in lines)
    assert "run " + run.id in run.summary() and "<table>" in run._repr_html_()


def test_run_metadata_is_recorded(make_project: MakeProject, executor: str) -> None:
    root = make_project({"tests/test_a.py": "def test_a():\n    pass\n"})
    subprocess.run(["git", "init", "-q", "-b", "trunk"], cwd=root, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=n",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        cwd=root,
        check=True,
    )
    run = api.run_tests(root=root, workers=1, executor=executor)
    (row,) = api.open_store(run.db).query("SELECT * FROM runs")
    assert row["git_branch"] == "trunk" and len(row["git_commit"]) == 40
    assert row["git_dirty"] is False  # untracked files do not count
    assert row["python"] == sys.version.split()[0]
    assert row["workers"] == 1 and row["executor"] == executor and row["pid"] == os.getpid()
    assert row["finished"] >= row["started"] and row["exit_code"] == 0


def test_ingest_rebuilds_the_same_run(
    make_project: MakeProject, tmp_path: Path, executor: str
) -> None:
    root = make_project(SUITE)
    run = api.run_tests(root=root, workers=2, executor=executor)
    other = tmp_path / "other.duckdb"
    state = api.ingest(run.run_dir, other)
    assert state.run_id == run.id and state.status == run.status
    original, copy = api.open_store(run.db), api.open_store(other)
    for table in ("test_files", "tests", "output_lines"):
        sql = (
            f"SELECT * EXCLUDE (started, finished, duration) FROM {table} ORDER BY ALL"
            if (table == "test_files")
            else f"SELECT * FROM {table} ORDER BY ALL"
        )
        assert original.query(sql) == copy.query(sql), table
    api.ingest(run.run_dir, other)  # twice: replaces, never duplicates
    assert len(copy.query("SELECT * FROM tests")) == 6


def test_each_file_runs_on_one_worker_slot_and_the_store_keeps_it(
    make_project: MakeProject, tmp_path: Path, executor: str
) -> None:
    root = make_project({f"tests/test_{i}.py": "def test_a():\n    pass\n" for i in range(6)})
    run = api.run_tests(root=root, workers=2, executor=executor)
    assert run.status == "passed"
    slots: dict[int, list[tuple[float, float]]] = {}
    for fs in run.files:
        assert fs.worker in (0, 1), f"{fs.key} ran on slot {fs.worker}"
        assert fs.started is not None and fs.finished is not None
        slots.setdefault(fs.worker, []).append((fs.started, fs.finished))
    assert sorted(slots) == [0, 1], "both workers took files"
    for spans in slots.values():  # one file at a time on a slot: each starts after the last ends
        spans.sort()
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    sql = "SELECT file, worker FROM test_files WHERE run_id = ? ORDER BY file"
    expected = sorted((fs.key, fs.worker) for fs in run.files)
    assert [(r["file"], r["worker"]) for r in api.open_store(run.db).query(sql, [run.id])] == (
        expected
    )
    other = tmp_path / "other.duckdb"  # the run directory's journal keeps the slots too
    api.ingest(run.run_dir, other)
    assert [(r["file"], r["worker"]) for r in api.open_store(other).query(sql, [run.id])] == (
        expected
    )


def test_a_locked_store_keeps_the_run_for_ingest(make_project: MakeProject, executor: str) -> None:
    root = make_project(SUITE)
    db = root / ".devformance" / "devformance.duckdb"
    db.parent.mkdir(parents=True)
    holder = hold_lock(db, 60)
    try:
        run = api.run_tests(root=root, workers=2, lock_timeout=1.0, executor=executor)
    finally:
        holder.kill()
        holder.wait()
    assert isinstance(run.store_error, StoreLockedError)
    assert "devformance ingest" in str(run.store_error)
    assert run.status == "failed" and run.totals()["tests"] == 6  # the tests still ran
    api.ingest(run.run_dir)
    assert counts_in_store(run)["tests/test_math.py"]["passed"] == 3


def started_pid(journal: Path, key: str) -> int | None:
    """The pid of ``key``'s child, once the launcher's journal says it started."""
    for line in journal.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "file_started" and event["file"] == key:
            return int(event["pid"])
    return None


def has_passed(run_dir: Path, nodeid: str) -> bool:
    """Whether a child's events file of ``run_dir`` has the end of test ``nodeid``."""
    for path in run_dir.glob("*.events.jsonl"):
        for line in path.read_text().splitlines():
            event = json.loads(line) if line.endswith("}") else {}
            if event.get("nodeid") == nodeid and event.get("phase") == "teardown":
                return True
    return False


def stored_files(store: Store) -> list[dict[str, Any]]:
    """The ``test_files`` rows (file, status) in ``store``; none while it is locked or absent."""
    if not store.path.exists():
        return []
    try:
        return store.query("SELECT file, status FROM test_files ORDER BY file")
    except StoreError:  # the run's writer holds it right now: the next poll reads it
        return []
    except duckdb.Error:  # created but not migrated yet
        return []


def test_a_killed_launcher_keeps_finished_files_and_reads_interrupted(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(
        {
            "tests/test_1.py": "def test_a():\n    pass\n",
            "tests/test_2.py": (
                "import time\ndef test_a():\n    pass\ndef test_b():\n    time.sleep(600)\n"
            ),
        }
    )
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devformance_nb.cli",
            "run",
            "--workers",
            "1",
            "--executor",
            executor,
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    journal: Path | None = None
    deadline = time.monotonic() + 60
    while journal is None and time.monotonic() < deadline:
        for path in (root / ".devformance" / "runs").glob("*/run.events.jsonl"):
            if started_pid(path, "tests/test_2.py") is not None:
                journal = path
        time.sleep(0.1)
    assert journal is not None
    # the writer flushes finished files in the background: kill only once test_1's row is in
    # the store, whatever the machine's speed (each poll is a short read-only connection)
    store = api.open_store(root=root)
    done = {"file": "tests/test_1.py", "status": "passed"}
    deadline = time.monotonic() + 60
    while done not in stored_files(store) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert done in stored_files(store)
    # and once test_2's first test has passed, while its second one sleeps
    while not has_passed(journal.parent, "tests/test_2.py::test_a") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert has_passed(journal.parent, "tests/test_2.py::test_a")
    # the row test_2 got when it started goes out with the writer's next batch too
    running = {"file": "tests/test_2.py", "status": "running"}
    while running not in stored_files(store) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running in stored_files(store)
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    orphan = started_pid(journal, "tests/test_2.py")
    assert orphan is not None
    deadline = time.monotonic() + 60  # the child notices its launcher is gone and ends itself
    while pid_alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(orphan)
    (row,) = store.runs()
    assert row["status"] == "interrupted"
    # test_2's row was stored when it started: it shows running until an ingest says more
    assert stored_files(store) == [done, running]
    state = api.ingest(journal.parent)
    assert state.status == "interrupted"
    assert {fs.key: fs.status for fs in state.files.values()} == {
        "tests/test_1.py": "passed",
        "tests/test_2.py": "interrupted",
    }
    # the file that was running is stored too, with the test it passed and its output
    files = store.query("SELECT file, status, passed, output_lines FROM test_files ORDER BY file")
    assert [(f["file"], f["status"], f["passed"]) for f in files] == [
        ("tests/test_1.py", "passed", 1),
        ("tests/test_2.py", "interrupted", 1),
    ]
    assert files[1]["output_lines"] == state.files["tests/test_2.py"].output_lines
    tests = store.query("SELECT nodeid, outcome FROM tests WHERE file = 'tests/test_2.py'")
    assert {"nodeid": "tests/test_2.py::test_a", "outcome": "passed"} in tests


def test_a_killed_launcher_leaves_the_running_files_output_and_row(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(
        {
            "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-s"\n',  # print at once
            "tests/test_talks.py": (
                "import sqlite3, time\n"
                "def test_talks():\n"
                "    con = sqlite3.connect(':memory:')\n"
                "    for _ in range(3):\n"
                "        con.execute('SELECT 1')\n"
                "    print('first line')\n"
                "    print('second line', flush=True)\n"
                "    time.sleep(600)\n"
            ),
        }
    )
    store = Store(root / ".devformance" / "devformance.duckdb")
    cli = subprocess.Popen(
        [sys.executable, "-m", "devformance_nb.cli", "run", "--executor", executor],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        log: Path | None = None
        deadline = time.monotonic() + 60
        while log is None and time.monotonic() < deadline:  # the launcher writes as it reads
            for path in (root / ".devformance" / "runs").glob("*/*.log"):
                if b"second line" in path.read_bytes():
                    log = path
            time.sleep(0.1)
        assert log is not None, "the child's output never reached its log while running"
        journal = log.parent / "run.events.jsonl"
        orphan = started_pid(journal, "tests/test_talks.py")
        # the writer stores the file's row when it starts (within its next flush)
        running = [{"file": "tests/test_talks.py", "status": "running"}]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and stored_files(store) != running:
            time.sleep(0.1)
        assert stored_files(store) == running
    finally:
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait()
    assert orphan is not None
    deadline = time.monotonic() + 10  # the child notices its launcher is gone and ends itself
    while pid_alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(orphan)
    # no statement without its file's row: the file shows as running until a run or an
    # ingest says otherwise
    assert store.query(
        "SELECT count(*) AS n FROM queries q ANTI JOIN test_files f USING (run_id, file)"
    ) == [{"n": 0}]
    assert stored_files(store) == [{"file": "tests/test_talks.py", "status": "running"}]
    text = log.read_text()  # pytest -s puts its progress before the first line
    assert "first line\nsecond line\n" in text


def test_second_run_starts_the_longest_file_first(make_project: MakeProject) -> None:
    root = make_project(
        {
            "tests/test_a_quick.py": "def test_a():\n    pass\n",
            "tests/test_b_quick.py": "def test_b():\n    pass\n",
            "tests/test_z_slow.py": "import time\ndef test_z():\n    time.sleep(4)\n",
        }
    )
    first = api.run_tests(root=root, workers=1)
    assert list(first.state.files) == [
        "tests/test_a_quick.py",
        "tests/test_b_quick.py",
        "tests/test_z_slow.py",
    ]
    durations = api.open_store(first.db).file_durations(list(first.state.files))
    # the premise, relative rather than against a fixed number of seconds: every file pays the
    # same pytest start-up, which a loaded machine stretches; only test_z also sleeps
    assert durations["tests/test_z_slow.py"] > 4
    assert durations["tests/test_z_slow.py"] > max(
        durations["tests/test_a_quick.py"], durations["tests/test_b_quick.py"]
    )
    second = api.run_tests(root=root, workers=1)
    assert next(iter(second.state.files)) == "tests/test_z_slow.py"


SLOW_SUITE = {
    "tests/test_quick.py": "def test_quick():\n    pass\n",
    # waits forever: only the interrupt can end this run
    "tests/test_slow.py": "import threading\n\ndef test_slow():\n    threading.Event().wait()\n",
}


def interrupt_once_running(run: api.Run, to_main: bool) -> dict[str, Any]:
    """Ctrl-C (as Jupyter's interrupt button sends it) once test_slow is under way, from a
    thread: to the process (the kernel then hands it to the main thread), or to this thread
    itself (``to_main`` false: as the kernel may when the main thread is busy). If the run has
    not ended 120 s later, the thread stops it itself and says so."""
    seen: dict[str, Any] = {"sent": False, "stopped_by_watchdog": False}

    def interrupt() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            slow = run.state.files.get("tests/test_slow.py")
            if slow is not None and slow.status == "running" and slow.collected:
                break
            time.sleep(0.05)
        # said before it is sent: the main thread may handle it, return from wait() and
        # check ``seen`` before this thread runs again
        seen["sent"] = True
        if to_main:
            os.kill(os.getpid(), signal.SIGINT)
        else:
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        deadline = time.monotonic() + 120
        while not run.done and time.monotonic() < deadline:
            time.sleep(0.05)
        if not run.done:
            seen["stopped_by_watchdog"] = True
            run.stop()

    threading.Thread(target=interrupt, daemon=True).start()
    return seen


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal or a kernel: a process started in the
    background by a shell without job control inherits SIGINT ignored (a CI script's ``&``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
@pytest.mark.parametrize("to_main", [True, False], ids=["to-process", "to-another-thread"])
def test_interrupting_wait_stops_the_run(make_project: MakeProject, to_main: bool) -> None:
    root = make_project(SLOW_SUITE)
    run = api.start_run(root=root, workers=2, coverage=False)
    seen = interrupt_once_running(run, to_main)
    run.wait()  # returns at the interrupt: the slow file never ends by itself
    assert seen == {"sent": True, "stopped_by_watchdog": False}
    assert run.done
    assert run.status == "stopped"
    assert run.state.files["tests/test_slow.py"].status == "stopped"
