"""The DuckDB store: opening (with lock waits), migrations, runs, and generic reads.

What a run found (slow queries, N+1, coverage) is read by the analysis layer.

DuckDB allows one read-write process per file, and a process cannot hold the
same file open read-only and read-write at once. So connections are short:
opened for one batch of writes or one query, then closed. A second writer
waits and retries, then fails with a message that says how to recover.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from devformance_nb.core.errors import (
    RunNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
)
from devformance_nb.store.schema import MIGRATIONS, MIGRATIONS_TABLE, SCHEMA_VERSION

_LOCK_PID = re.compile(r"PID (\d+)")
_RETRY_SECONDS = 0.2
#: how long a migration that conflicts with one of this process is tried again
_MIGRATE_SECONDS = 30.0


def utc(epoch: float | None) -> datetime | None:
    """An epoch time as a naive UTC datetime (how the store keeps timestamps)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)


def is_lock_error(exc: BaseException) -> bool:
    """DuckDB could not lock the file: another process has it open."""
    return isinstance(exc, duckdb.IOException) and "Could not set lock on file" in str(exc)


def is_config_conflict(exc: BaseException) -> bool:
    """This process has the file open already with another configuration (read-only or not)."""
    return isinstance(exc, duckdb.ConnectionException) and "different configuration" in str(exc)


def _locked_by(exc: BaseException) -> str:
    holder = _LOCK_PID.search(str(exc))
    return f"process {holder.group(1)}" if holder else "another process"


def _not_a_store(path: Path, exc: BaseException) -> StoreCorruptError:
    return StoreCorruptError(
        f"cannot open the store {path}: {exc}. It is damaged or not a DuckDB database (this is "
        f"not a lock): move it aside (mv {path} {path}.broken), then load the runs again "
        "from their run directories: `devformance ingest .devformance/runs/RUN_ID` for each "
        "one; or point --db elsewhere"
    )


def connect(
    path: Path,
    read_only: bool = False,
    lock_timeout: float = 10.0,
    on_wait: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open ``path``, waiting up to ``lock_timeout`` seconds for another process's lock.

    In one process DuckDB refuses a read-only and a read-write connection to one file at
    once; a reader then shares the read-write configuration (a run of this process is
    writing), and a writer waits for this process's readers to close. ``on_wait`` is told
    once, with the reason, when the connection has to wait. Any other failure (a damaged
    file) fails at once: waiting would not help.
    """
    deadline = time.monotonic() + lock_timeout
    told = False
    while True:
        try:
            return duckdb.connect(os.fspath(path), read_only=read_only)
        except duckdb.Error as exc:
            if is_config_conflict(exc) and read_only:
                try:  # a writer of this process has it open: read through the same instance
                    return duckdb.connect(os.fspath(path), read_only=False)
                except duckdb.Error as again:
                    exc = again  # it closed meanwhile, or another process took the lock
            if is_lock_error(exc):
                reason = f"the store {path} is locked by {_locked_by(exc)}"
            elif is_config_conflict(exc):
                reason = f"the store {path} is open read-only in this process"
            else:
                raise _not_a_store(path, exc) from None
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"{reason} (waited {lock_timeout:g} s). Close that process or connection "
                    "(a notebook holding a connection, another run), or pass another --db; "
                    "a run's events stay in its run directory, load them later with "
                    "`devformance ingest RUN_DIR`"
                ) from None
            if on_wait is not None and not told:
                told = True
                on_wait(f"{reason}; waiting up to {lock_timeout:g} s")
            time.sleep(_RETRY_SECONDS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied to this database (0 for a new one)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def check_version(version: int, path: Path) -> None:
    """Refuse a database written by a newer devformance_nb."""
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"the store {path} has schema version {version}, newer than this devformance_nb "
            f"understands ({SCHEMA_VERSION}). Upgrade: pip install -U devformance_nb "
            "(or use another --db); a run that could not be stored keeps its run directory: "
            "`devformance ingest .devformance/runs/RUN_ID` loads it once the store can be used"
        )


def migrate(con: duckdb.DuckDBPyConnection, path: Path) -> list[int]:
    """Apply pending migrations, each in its own transaction; returns the versions applied.

    Two connections of one process share one database: when both find the file new (a run's
    writer and a notebook's reader), one migration conflicts with the other (a transaction
    conflict, or, when the other committed between our reading the version and our
    migration, a table that "already exists"). The loser rolls back and looks again; by then
    the other has applied it. A catalog error with no newer version behind it is raised.
    """
    applied: list[int] = []
    deadline = time.monotonic() + _MIGRATE_SECONDS
    while True:
        before = schema_version(con)
        try:
            _migrate_pending(con, path, applied)
            return applied
        except duckdb.TransactionException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_SECONDS)
        except duckdb.CatalogException:
            if schema_version(con) == before or time.monotonic() >= deadline:
                raise  # nobody else migrated: the file itself is wrong


def _migrate_pending(con: duckdb.DuckDBPyConnection, path: Path, applied: list[int]) -> None:
    current = schema_version(con)
    check_version(current, path)
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(MIGRATIONS_TABLE)
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.name, utc(time.time())],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(migration.version)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(status: str, host: str | None, pid: int | None) -> bool:
    """A run still marked running whose launcher process on this host is gone."""
    if status != "running" or host != socket.gethostname():
        return False
    return pid is None or not _pid_alive(int(pid))


def mark_interrupted(con: duckdb.DuckDBPyConnection) -> None:
    """Mark runs left ``running`` by a launcher that no longer exists as interrupted."""
    rows = con.execute("SELECT run_id, host, pid FROM runs WHERE status = 'running'").fetchall()
    for run_id, host, pid in rows:
        if is_abandoned("running", host, pid):
            con.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", [run_id])
            con.execute(
                "UPDATE test_files SET status = 'interrupted' "
                "WHERE run_id = ? AND status = 'running'",
                [run_id],
            )


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: Any) -> Iterator[None]:
    """``frame`` (a DataFrame) readable by ``con``'s SQL as ``name`` while the block runs:
    one set-based statement instead of a row at a time."""
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)


class Store:
    """A store file: short-lived connections for writing and for reading."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        lock_timeout: float = 10.0,
        on_wait: Callable[[str], None] | None = None,
    ):
        self.path = Path(path).resolve()
        self.lock_timeout = lock_timeout
        #: told why, when a connection has to wait for a lock
        self.on_wait = on_wait

    def __repr__(self) -> str:
        return f"Store({os.fspath(self.path)!r})"

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection with the schema up to date; closed on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.path, False, self.lock_timeout, self.on_wait)
        try:
            migrate(con, self.path)
            yield con
        finally:
            con.close()

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection (migrating first if the file is older); closed on exit."""
        if not self.path.exists():
            raise StoreError(
                f"no store at {self.path} yet; run `devformance run` (or `devformance demo`) "
                "first, or pass --db with the right file"
            )
        con = connect(self.path, True, self.lock_timeout, self.on_wait)
        version = schema_version(con)
        if version < SCHEMA_VERSION:
            con.close()
            with self.writing():
                pass
            con = connect(self.path, True, self.lock_timeout, self.on_wait)
        else:
            check_version(version, self.path)
        try:
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts."""
        with self.reading() as con:
            cursor = con.execute(sql, params or [])
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def df(self, sql: str, params: list[Any] | None = None) -> Any:
        """A read-only query as a pandas DataFrame."""
        with self.reading() as con:
            return con.execute(sql, params or []).df()

    def schema_version(self) -> int:
        """The schema version of the file (0 if it does not exist yet)."""
        if not self.path.exists():
            return 0
        with self.reading() as con:
            return schema_version(con)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs, newest first (a run whose launcher died shows interrupted)."""
        rows = self.query(
            "SELECT run_id, started, status, duration, files, tests, passed, failed, errors, "
            "skipped, workers, executor, git_branch, git_commit, host, pid FROM runs "
            "ORDER BY started DESC, run_id DESC LIMIT ?",
            [limit],
        )
        for row in rows:
            if is_abandoned(row["status"], row.pop("host"), row.pop("pid")):
                row["status"] = "interrupted"
        return rows

    def run_counts(self, run_id: str) -> dict[str, int]:
        """How many files, tests and queries of run ``run_id`` the store holds."""
        (row,) = self.query(
            "SELECT (SELECT count(*) FROM test_files WHERE run_id = ?) AS files, "
            "(SELECT count(*) FROM tests WHERE run_id = ?) AS tests, "
            "(SELECT count(*) FROM queries WHERE run_id = ?) AS queries",
            [run_id] * 3,
        )
        return {name: int(value) for name, value in row.items()}

    def latest_run_id(self) -> str | None:
        """The newest run's id, or None for an empty store."""
        rows = self.query("SELECT run_id FROM runs ORDER BY started DESC, run_id DESC LIMIT 1")
        return rows[0]["run_id"] if rows else None

    def resolve_run(self, selector: str | None = None) -> str:
        """The run id for ``selector``: None or 'latest', a run id, or a unique id prefix."""
        if selector in (None, "latest"):
            latest = self.latest_run_id()
            if latest is None:
                raise RunNotFoundError(
                    f"no runs in {self.path} yet; start one with devformance run"
                )
            return latest
        rows = self.query(
            "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [selector]
        )
        if len(rows) != 1:
            found = "no run" if not rows else f"{len(rows)} runs"
            raise RunNotFoundError(
                f"{found} matching {selector!r} in {self.path}; list them with devformance runs"
            )
        return str(rows[0]["run_id"])

    def file_durations(self, keys: list[str], runs: int = 5) -> dict[str, float]:
        """Median duration of each file over its last ``runs`` completed runs (for scheduling)."""
        if not keys:
            return {}
        rows = self.query(
            "SELECT file, median(duration) AS seconds FROM ("
            "  SELECT file, duration, row_number() OVER (PARTITION BY file ORDER BY started DESC)"
            "  AS n FROM test_files WHERE file IN (SELECT unnest(?)) AND duration IS NOT NULL"
            "  AND status IN ('passed', 'failed', 'empty')"
            ") WHERE n <= ? GROUP BY file",
            [keys, runs],
        )
        return {row["file"]: float(row["seconds"]) for row in rows}
