"""Real runs against a store that fails, is locked, newer, damaged, read from the same
process or has two writers, and a launcher killed mid-run.

Nothing a run records may be lost: a write that fails is reported (and the exit code says
so), the run directory still loads with ``ingest``, two runs sharing one store file are both
stored whole, and a run whose launcher was killed with its children ingests with every file
it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from conftest import MakeProject
from test_cli import cli
from test_faults import pid_alive
from test_store import hold_lock

from devformance_nb.api import facade as api
from devformance_nb.core.errors import StoreError, StoreLockedError
from devformance_nb.run.executor import descendants
from devformance_nb.store.database import Store
from devformance_nb.store.writer import Batch

PASSING = {
    "tests/test_one.py": "def test_a():\n    print('one')\n\ndef test_b():\n    pass\n",
    "tests/test_two.py": "def test_c():\n    pass\n",
}


def stored(db: Path, run_id: str) -> dict[str, object]:
    """Rows of one run in the store: its files, tests and output lines."""
    (row,) = Store(db).query(
        "SELECT (SELECT count(*) FROM test_files WHERE run_id = ?) AS files, "
        "(SELECT count(*) FROM tests WHERE run_id = ?) AS tests, "
        "(SELECT count(*) FROM output_lines WHERE run_id = ?) AS lines, "
        "(SELECT status FROM runs WHERE run_id = ?) AS status",
        [run_id] * 4,
    )
    return row


def test_a_failing_store_write_is_reported_and_kept_for_ingest(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(PASSING)

    def broken(self: Batch, con: duckdb.DuckDBPyConnection) -> None:
        raise duckdb.IOException("IO Error: injected write failure")

    monkeypatch.setattr(Batch, "write", broken)
    run = api.run_tests(root=root, workers=1)
    monkeypatch.undo()
    assert run.status == "passed"  # the tests passed; the store did not
    assert run.exit_code == StoreError.exit_code != 0
    assert isinstance(run.store_error, StoreError)
    assert "IOException: IO Error: injected write failure" in str(run.store_error)
    assert "devformance ingest" in str(run.store_error)
    assert run.db is not None
    assert Store(run.db).query("SELECT count(*) AS n FROM test_files") == [{"n": 0}]
    api.ingest(run.run_dir, run.db)
    lines = sum(fs.output_lines for fs in run.files)
    assert stored(run.db, run.id) == {"files": 2, "tests": 3, "lines": lines, "status": "passed"}


def test_a_reader_in_the_run_process_reads_while_the_run_writes(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {f"tests/test_{i}.py": "def test_ok():\n    print('ok')\n" for i in range(8)}
    )
    run = api.start_run(root=root, workers=2, lock_timeout=30.0)
    assert run.db is not None
    store = Store(run.db, lock_timeout=0.0)  # a notebook cell: no patience at all
    reads, busy = 0, 0
    deadline = time.monotonic() + 300
    while not run.done and time.monotonic() < deadline:
        if not run.db.exists():  # the run's first write creates it
            time.sleep(0.05)
            continue
        try:  # every read works or says the store is busy, never DuckDB's raw error
            store.query("SELECT count(*) AS n FROM test_files WHERE run_id = ?", [run.id])
            reads += 1
        except StoreLockedError as exc:
            assert "in this process" in str(exc)
            busy += 1
        time.sleep(0.01)  # leave the two cores to the run between reads
    run.wait()
    assert run.store_error is None and run.status == "passed"
    assert reads > 0
    lines = sum(fs.output_lines for fs in run.files)
    assert stored(run.db, run.id) == {"files": 8, "tests": 8, "lines": lines, "status": "passed"}


HOLD_UNTIL_DONE = """
import duckdb, json, pathlib, sys, time
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
journals = [pathlib.Path(p) for p in sys.argv[2:]]
def done(root):
    for journal in root.glob(".devformance/runs/*/run.events.jsonl"):
        if any(json.loads(line)["kind"] == "run_done" for line in journal.read_text().splitlines()):
            return True
    return False
deadline = time.monotonic() + 300
while not all(done(root) for root in journals) and time.monotonic() < deadline:
    time.sleep(0.1)
"""


def test_two_runs_share_one_store_and_the_one_that_waits_says_so(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    roots = []
    for name in ("alpha", "beta"):
        root = tmp_path / name
        (root / "tests").mkdir(parents=True)
        (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
        (root / "tests" / f"test_{name}.py").write_text("def test_ok():\n    pass\n")
        roots.append(root)
    with Store(db).writing():
        pass
    # a third process holds the store until both runs have ended, so both must wait for it
    # (and for each other): each says so, and both are stored whole once it lets go
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_DONE, str(db), *map(str, roots)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        clis = [
            subprocess.Popen(
                [sys.executable, "-m", "devformance_nb.cli", "run", "--db", str(db), "-n", "1"],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for root in roots
        ]
        results = [cli.communicate(timeout=300) for cli in clis]
    finally:
        holder.kill()
        holder.wait()
    for proc, (out, err) in zip(clis, results, strict=True):
        assert proc.returncode == 0, out + err
        assert f"the store {db} is locked by process {holder.pid}; waiting" in err
        assert "stored as run" in out
    runs = Store(db).query("SELECT run_id, root, status FROM runs ORDER BY root")
    assert [(r["root"], r["status"]) for r in runs] == [(str(r), "passed") for r in roots]
    for run in runs:
        counts = stored(db, run["run_id"])
        assert (counts["files"], counts["tests"], counts["status"]) == (1, 1, "passed")


def log_lines(run_dir: Path) -> int:
    """How many output lines the children's logs in ``run_dir`` hold."""
    return sum(len(log.read_text().splitlines()) for log in run_dir.glob("*.log"))


def only_run_dir(root: Path) -> Path:
    (run_dir,) = (root / ".devformance" / "runs").iterdir()
    return run_dir


def test_a_locked_store_fails_the_run_clearly_and_ingest_stores_it(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            **PASSING,
            "pyproject.toml": "[tool.pytest.ini_options]\n[tool.devformance]\nlock_timeout = 1\n",
        }
    )
    db = root / ".devformance" / "devformance.duckdb"
    db.parent.mkdir()
    holder = hold_lock(db, 300)
    try:
        result = cli("run", "-n", "1", cwd=root)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == StoreLockedError.exit_code == 3, result.stderr  # tests passed
    assert f"the store {db} is locked by process {holder.pid}" in result.stderr
    assert "devformance ingest" in result.stderr and "stored as run" not in result.stdout
    run_dir = only_run_dir(root)
    assert Store(db).query("SELECT count(*) AS n FROM runs") == [{"n": 0}]
    ingested = cli("ingest", str(run_dir), cwd=root)
    assert ingested.returncode == 0, ingested.stderr
    assert f"ingested run {run_dir.name} (passed): 2 files, 3 tests" in ingested.stdout
    assert stored(db, run_dir.name) == {
        "files": 2,
        "tests": 3,
        "lines": log_lines(run_dir),
        "status": "passed",
    }


def newer_schema(db: Path) -> None:
    with Store(db).writing() as con:
        con.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', now())")


def garbage(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"not a database at all " * 1000)


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (
            newer_schema,
            ["has schema version 999, newer than", "pip install -U", "devformance ingest"],
        ),
        (garbage, ["not a lock", "move it aside", "devformance ingest .devformance/runs/"]),
    ],
    ids=["newer-schema", "corrupted"],
)
def test_a_store_the_run_cannot_use_fails_it_and_the_run_dir_ingests_elsewhere(
    make_project: MakeProject, tmp_path: Path, spoil: Callable[[Path], None], says: list[str]
) -> None:
    root = make_project(PASSING)
    db = root / ".devformance" / "devformance.duckdb"
    spoil(db)
    before = db.read_bytes()
    result = cli("run", "-n", "1", cwd=root)
    assert result.returncode == StoreError.exit_code == 3, result.stdout + result.stderr
    for words in says:
        assert words in result.stderr
    assert "stored as run" not in result.stdout
    assert db.read_bytes() == before  # the store is left as it was, for its owner to mend
    run_dir = only_run_dir(root)
    refused = cli("ingest", str(run_dir), cwd=root)  # into the same store: refused the same way
    assert refused.returncode == 3 and says[0] in refused.stderr
    fresh = tmp_path / "fresh.duckdb"
    ingested = cli("ingest", str(run_dir), "--db", str(fresh), cwd=root)
    assert ingested.returncode == 0, ingested.stderr
    assert f"ingested run {run_dir.name} (passed): 2 files, 3 tests" in ingested.stdout
    assert stored(fresh, run_dir.name) == {
        "files": 2,
        "tests": 3,
        "lines": log_lines(run_dir),
        "status": "passed",
    }


KILLED = {
    "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-s"\n',  # output as it comes
    "tests/test_1_done.py": """
        import sqlite3
        def test_done():
            db = sqlite3.connect(":memory:")
            for n in range(3):
                db.execute("SELECT ?", (n,))
            print("done file")
    """,
    "tests/test_2_cut.py": """
        import sqlite3, time
        def test_first():
            sqlite3.connect(":memory:").execute("SELECT 'first'")
            print("first passed")
        def test_cut():
            sqlite3.connect(":memory:").execute("SELECT 'cut'")
            print("cut off here", flush=True)
            time.sleep(600)
    """,
    "tests/test_3_never.py": "def test_never():\n    pass\n",
}


def test_a_launcher_killed_with_its_children_is_ingested_whole(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(KILLED)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "devformance_nb.cli", "run", "-n", "1", "--executor", executor],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs = root / ".devformance" / "runs"

    def is_cut() -> bool:  # test_cut has run its statement and printed, and now sleeps
        logs = [p.read_bytes() for p in runs.glob("*/*.log")]
        events = [p.read_text() for p in runs.glob("*/*test_2_cut*.events.jsonl")]
        return any(b"cut off here" in log for log in logs) and any(
            "SELECT 'cut'" in text for text in events
        )

    deadline = time.monotonic() + 120
    while not is_cut() and time.monotonic() < deadline and launcher.poll() is None:
        time.sleep(0.1)
    cut = is_cut()
    # SIGKILL for all of them at once, as an OOM killer or a closed CI job does: no cleanup
    victims = [launcher.pid, *descendants(launcher.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):  # one that ended by itself meanwhile
            os.kill(pid, signal.SIGKILL)
    launcher.wait()
    assert cut, "test_cut never got to its sleep"
    assert len(victims) >= 2  # the launcher and at least the running file's child
    deadline = time.monotonic() + 60
    while any(map(pid_alive, victims)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(pid_alive, victims))
    run_dir = only_run_dir(root)
    journal = [json.loads(line) for line in (run_dir / "run.events.jsonl").read_text().splitlines()]
    assert "run_done" not in {event["kind"] for event in journal}
    result = cli("ingest", str(run_dir), cwd=root)
    assert result.returncode == 0, result.stderr
    assert f"ingested run {run_dir.name} (interrupted): 2 files" in result.stdout
    store = api.open_store(root=root)
    (run,) = store.query("SELECT status, files FROM runs")
    assert run == {"status": "interrupted", "files": 3}
    files = store.query("SELECT file, status, passed FROM test_files ORDER BY file")
    assert files == [  # test_3 never started: it has no row
        {"file": "tests/test_1_done.py", "status": "passed", "passed": 1},
        {"file": "tests/test_2_cut.py", "status": "interrupted", "passed": 1},
    ]
    tests = store.query("SELECT nodeid, outcome FROM tests ORDER BY nodeid")
    assert tests == [
        {"nodeid": "tests/test_1_done.py::test_done", "outcome": "passed"},
        {"nodeid": "tests/test_2_cut.py::test_cut", "outcome": "error"},  # no outcome: cut
        {"nodeid": "tests/test_2_cut.py::test_first", "outcome": "passed"},
    ]
    queries = store.query("SELECT nodeid, sql FROM queries ORDER BY file, qseq")
    assert [(q["nodeid"].split("::")[1], q["sql"]) for q in queries] == [
        *[("test_done", "SELECT ?")] * 3,
        ("test_first", "SELECT 'first'"),
        ("test_cut", "SELECT 'cut'"),
    ]
    assert store.query(
        "SELECT count(*) AS n FROM queries q ANTI JOIN test_files f USING (run_id, file)"
    ) == [{"n": 0}]
    lines = store.query("SELECT file, text FROM output_lines ORDER BY file, line")
    text = {key: "\n".join(r["text"] for r in lines if r["file"] == key) for key in KILLED}
    assert "done file" in text["tests/test_1_done.py"]
    assert "first passed" in text["tests/test_2_cut.py"]
    assert "cut off here" in text["tests/test_2_cut.py"]
