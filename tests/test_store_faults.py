"""Real runs against a store that fails, is read from the same process, or has two writers.

Nothing a run records may be lost: a write that fails is reported (and the exit code says
so), the run directory still loads with ``ingest``, and two runs sharing one store file are
both stored whole.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import MakeProject

from devformance_nb.api import facade as api
from devformance_nb.core.errors import StoreError, StoreLockedError
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
    for cli, (out, err) in zip(clis, results, strict=True):
        assert cli.returncode == 0, out + err
        assert f"the store {db} is locked by process {holder.pid}; waiting" in err
        assert "stored as run" in out
    runs = Store(db).query("SELECT run_id, root, status FROM runs ORDER BY root")
    assert [(r["root"], r["status"]) for r in runs] == [(str(r), "passed") for r in roots]
    for run in runs:
        counts = stored(db, run["run_id"])
        assert (counts["files"], counts["tests"], counts["status"]) == (1, 1, "passed")
