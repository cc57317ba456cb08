"""The DuckDB store: migrations, version refusal, locks, abandoned runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from devformance_nb.core.errors import (
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
)
from devformance_nb.store import database
from devformance_nb.store.database import Store, connect
from devformance_nb.store.schema import MIGRATIONS, SCHEMA_VERSION


@pytest.mark.quick
def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    assert store.schema_version() == 0
    with store.writing():
        pass
    with store.writing():
        pass
    rows = store.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows == [{"version": m.version, "name": m.name} for m in MIGRATIONS]
    assert store.schema_version() == SCHEMA_VERSION
    tables = {
        r["table_name"] for r in store.query("SELECT table_name FROM information_schema.tables")
    }
    assert {"runs", "test_files", "tests", "output_lines", "schema_migrations"} <= tables


@pytest.mark.quick
def test_a_store_of_version_8_gains_max_queries_and_keeps_its_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.duckdb"
    with monkeypatch.context() as patch:  # a store written before query budgets
        patch.setattr(database, "MIGRATIONS", MIGRATIONS[:8])
        with Store(path).writing() as con:
            con.execute(
                "INSERT INTO tests (run_id, file, nodeid, outcome) VALUES ('r', 'f', 'n', 'passed')"
            )
            assert database.schema_version(con) == 8
    rows = Store(path).query("SELECT nodeid, max_queries FROM tests")
    assert rows == [{"nodeid": "n", "max_queries": None}], "an old test has no budget"
    assert Store(path).schema_version() == SCHEMA_VERSION


@pytest.mark.quick
def test_a_store_of_version_9_gains_worker_slots_and_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.duckdb"
    with monkeypatch.context() as patch:  # a store written before worker slots were recorded
        patch.setattr(database, "MIGRATIONS", MIGRATIONS[:9])
        with Store(path).writing() as con:
            con.execute(
                "INSERT INTO test_files (run_id, file, status) VALUES ('r', 'f.py', 'passed')"
            )
            assert database.schema_version(con) == 9
    rows = Store(path).query("SELECT file, worker FROM test_files")
    assert rows == [{"file": "f.py", "worker": None}], "an old file has no slot"
    assert Store(path).schema_version() == SCHEMA_VERSION == 12


@pytest.mark.quick
def test_a_store_of_version_11_gains_worker_addresses_and_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.duckdb"
    with monkeypatch.context() as patch:  # a store written before Dask workers were recorded
        patch.setattr(database, "MIGRATIONS", MIGRATIONS[:11])
        with Store(path).writing() as con:
            con.execute(
                "INSERT INTO test_files (run_id, file, status) VALUES ('r', 'f.py', 'passed')"
            )
            assert database.schema_version(con) == 11
    rows = Store(path).query("SELECT file, worker_address FROM test_files")
    assert rows == [{"file": "f.py", "worker_address": None}], "a local child has no address"
    assert Store(path).schema_version() == SCHEMA_VERSION


@pytest.mark.quick
def test_a_migration_another_connection_committed_first_is_taken_as_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path).writing():
        pass  # the other connection (a run's writer) migrated the file
    real = database.schema_version
    stale = [0, 0]  # what this connection read just before that commit

    def version(con: duckdb.DuckDBPyConnection) -> int:
        return stale.pop() if stale else real(con)

    monkeypatch.setattr(database, "schema_version", version)
    con = duckdb.connect(str(path))
    try:
        assert database.migrate(con, path) == []  # "runs already exists": looked again
    finally:
        con.close()


@pytest.mark.quick
def test_a_table_in_the_way_of_a_migration_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE runs (x INTEGER)")  # not ours, and no migration recorded
        with pytest.raises(duckdb.CatalogException, match="already exists"):
            database.migrate(con, path)
    finally:
        con.close()


@pytest.mark.quick
def test_a_newer_database_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    with store.writing() as con:
        con.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', now())")
    with pytest.raises(StoreVersionError, match="pip install -U devformance_nb"):
        store.query("SELECT 1")
    with pytest.raises(StoreVersionError), store.writing():
        pass


@pytest.mark.quick
def test_reading_a_missing_store_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="devformance run"):
        Store(tmp_path / "none.duckdb").runs()


@pytest.mark.quick
def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.duckdb"
    path.write_bytes(b"this is not duckdb" * 100)
    with pytest.raises(StoreError, match="not a DuckDB database"):
        Store(path).query("SELECT 1")


@pytest.mark.quick
def test_a_damaged_store_is_not_called_locked(tmp_path: Path) -> None:
    path = tmp_path / "damaged.duckdb"
    path.write_bytes(b"a block of garbage, not a lock " * 100)  # "block" contains "lock"
    waits: list[str] = []
    with pytest.raises(StoreCorruptError, match="not a lock") as raised:
        Store(path, lock_timeout=60.0, on_wait=waits.append).query("SELECT 1")
    assert "move it aside" in str(raised.value) and ".devformance/runs" in str(raised.value)
    assert waits == []  # failed at once: waiting cannot mend a file


@pytest.mark.quick
def test_one_process_reads_while_it_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    with store.writing() as con:
        con.execute("CREATE TABLE mine AS SELECT 42 AS answer")
        # a read-only connection would clash with this one: the reader shares its instance
        assert store.query("SELECT answer FROM mine") == [{"answer": 42}]
    assert store.query("SELECT answer FROM mine") == [{"answer": 42}]


@pytest.mark.quick
def test_a_writer_waits_for_a_reader_of_its_own_process(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path).writing():
        pass
    waits: list[str] = []
    with Store(path).reading(), pytest.raises(StoreLockedError, match="read-only in this"):
        connect(path, lock_timeout=0.5, on_wait=waits.append)
    assert waits == [f"the store {path} is open read-only in this process; waiting up to 0.5 s"]
    connect(path).close()  # the reader closed: the writer gets in


HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_store_waits_then_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    holder = hold_lock(path, 30)
    try:
        started = time.monotonic()
        waits: list[str] = []
        with pytest.raises(StoreLockedError, match=f"locked by process {holder.pid}"):
            connect(path, lock_timeout=1.0, on_wait=waits.append)
        assert waits == [f"the store {path} is locked by process {holder.pid}; waiting up to 1 s"]
        assert time.monotonic() - started >= 1.0
    finally:
        holder.kill()
        holder.wait()


def test_a_briefly_locked_store_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    holder = hold_lock(path, 1.0)
    try:
        con = connect(path, lock_timeout=20.0)
        con.close()
    finally:
        holder.wait()


def test_an_abandoned_running_run_reads_as_interrupted(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    with store.writing() as con:
        con.execute(
            "INSERT INTO runs (run_id, status, host, pid, started) VALUES "
            "('dead', 'running', ?, ?, now()), ('alive', 'running', ?, ?, now())",
            [
                socket.gethostname(),
                int(dead.stdout),
                socket.gethostname(),
                __import__("os").getpid(),
            ],
        )
    assert {r["run_id"]: r["status"] for r in store.runs()} == {
        "dead": "interrupted",
        "alive": "running",
    }


@pytest.mark.quick
def test_connect_helper_opens_read_only(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    duckdb.connect(str(path)).close()
    con = connect(path, read_only=True)
    with pytest.raises(duckdb.Error):
        con.execute("CREATE TABLE t (a INT)")
    con.close()


@pytest.mark.quick
def test_a_frame_is_readable_by_name_only_inside_the_block() -> None:
    import pandas as pd

    con = duckdb.connect()
    frame = pd.DataFrame({"n": [1, 2, 3]})
    with database.registered(con, "_devformance_numbers", frame):
        assert con.execute("SELECT sum(n) FROM _devformance_numbers").fetchall() == [(6,)]
    with pytest.raises(RuntimeError), database.registered(con, "_devformance_numbers", frame):
        raise RuntimeError("a failed insert")
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM _devformance_numbers")
