"""The library_django demo through the real CLI, on PostgreSQL and on SQLite.

Checked against ``planted.json`` (every planted N+1 and slow query found at its call site with
a Django hint, nothing else reported) and, on PostgreSQL, against an independent probe: a
pytest plugin in each child that counts statements with Django's public
``connection.execute_wrapper`` on every connection.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import LIBRARY_DJANGO

from devformance_nb.analysis.runfindings import n_plus_one, slow_queries
from devformance_nb.api import facade as api

PLANTED = json.loads((LIBRARY_DJANGO / "planted.json").read_text(encoding="utf-8"))
TEST_FILES = sorted(
    p.relative_to(LIBRARY_DJANGO).as_posix() for p in (LIBRARY_DJANGO / "tests").glob("test_*.py")
)

PROBE = '''
"""Counts the statements of every Django connection with connection.execute_wrapper."""
import json
import os
from contextlib import ExitStack

COUNT = [0]
WRAPPERS = ExitStack()


def probe(execute, sql, params, many, context):
    COUNT[0] += 1
    return execute(sql, params, many, context)


def wrap(sender=None, connection=None, **kwargs):
    if probe not in connection.execute_wrappers:
        WRAPPERS.enter_context(connection.execute_wrapper(probe))


def pytest_configure(config):
    from django.db.backends.signals import connection_created

    connection_created.connect(wrap, weak=False)


def pytest_unconfigure(config):
    name = os.environ.get("DEVFORMANCE_FILE", "")
    if name:
        path = os.path.join(os.environ["PROBE_DIR"], name.replace("/", "_") + ".json")
        with open(path, "w") as out:
            json.dump({"file": name, "statements": COUNT[0]}, out)
'''


class LibraryRun:
    """One ``devformance run`` of the demo and its stored run."""

    def __init__(self, proc: subprocess.CompletedProcess[str], db: Path, probe_dir: Path):
        self.proc = proc
        self.store = api.open_store(db)
        (run,) = self.store.runs()
        self.run = run
        self.run_id = str(run["run_id"])
        self.probe_dir = probe_dir

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.store.query(sql, [self.run_id])

    def probe_counts(self) -> dict[str, int]:
        found = {}
        for path in self.probe_dir.glob("*.json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            found[data["file"]] = int(data["statements"])
        return found


def run_library(tmp: Path, dsn: str | None) -> LibraryRun:
    probe_dir = tmp / "probe"
    probe_dir.mkdir()
    (tmp / "dvf_probe.py").write_text(PROBE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DEVFORMANCE_PG_DSN"}
    env["PROBE_DIR"] = str(probe_dir)
    pytest_args: list[str] = []
    if dsn is not None:
        env["DEVFORMANCE_PG_DSN"] = dsn
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp), env.get("PYTHONPATH")]))
        pytest_args = ["--", "-p", "dvf_probe"]
    db = tmp / "library.duckdb"
    command = [sys.executable, "-m", "devformance_nb.cli", "run", "--workers", "2"]
    proc = subprocess.run(
        [*command, "--db", str(db), *pytest_args],
        cwd=LIBRARY_DJANGO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return LibraryRun(proc, db, probe_dir)


@pytest.fixture(scope="module")
def on_postgres(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> LibraryRun:
    return run_library(tmp_path_factory.mktemp("library-pg"), pg_dsn)


@pytest.fixture(scope="module")
def on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> LibraryRun:
    return run_library(tmp_path_factory.mktemp("library-sqlite"), None)


def check_findings(run: LibraryRun) -> None:
    """Exactly the planted N+1s and slow query: call sites, counts, tables, Django hints."""
    assert run.run["status"] == "passed"
    files = run.rows("SELECT file, status FROM test_files WHERE run_id = ? ORDER BY file")
    assert [(f["file"], f["status"]) for f in files] == [(f, "passed") for f in TEST_FILES]
    found = n_plus_one(run.store, run.run_id)
    assert sorted(
        (f["nodeid"], f["phase"], f["caller"], f["table_name"], f["count"], f["relation"])
        for f in found
    ) == sorted(
        (
            p["nodeid"],
            p["phase"],
            f"{p['module']}:{p['line']} {p['function']}",
            p["table"],
            p["count"],
            p["relation"],  # named by Django's own descriptors, not guessed from the SQL
        )
        for p in PLANTED["n_plus_one"]
    )
    hints = {f["caller"]: f["hint"] for f in found}
    for planted in PLANTED["n_plus_one"]:
        hint = hints[f"{planted['module']}:{planted['line']} {planted['function']}"]
        field = planted["relation"].split(".")[1]
        assert hint.split(": add ")[1].startswith(f'.{planted["fix"]}("{field}")'), hint
    orms = run.rows("SELECT DISTINCT orm FROM n_plus_one WHERE run_id = ?")
    assert orms == [{"orm": "django"}]
    slow = slow_queries(run.store, run.run_id)
    assert [(s["nodeid"], s["caller"]) for s in slow] == [
        (p["nodeid"], f"{p['module']}:{p['line']} {p['function']}") for p in PLANTED["slow_queries"]
    ]
    assert slow[0]["ms"] >= PLANTED["settings"]["slow_query_ms"]
    assert "slow queries (>= 100 ms): 1," in run.proc.stdout
    assert f"N+1 findings: {len(PLANTED['n_plus_one'])}" in run.proc.stdout


def test_postgres_run_finds_exactly_the_planted_problems(on_postgres: LibraryRun) -> None:
    check_findings(on_postgres)
    kinds = on_postgres.rows("SELECT DISTINCT vendor, alias FROM queries WHERE run_id = ?")
    assert sorted((k["vendor"], k["alias"]) for k in kinds) == [
        ("postgresql", "__no_db__"),  # the connection pytest-django creates the database on
        ("postgresql", "default"),
    ]


def test_sqlite_run_finds_exactly_the_planted_problems(on_sqlite: LibraryRun) -> None:
    check_findings(on_sqlite)
    vendors = on_sqlite.rows("SELECT DISTINCT vendor FROM queries WHERE run_id = ?")
    assert vendors == [{"vendor": "sqlite"}]


def test_postgres_statements_match_an_independent_execute_wrapper_probe(
    on_postgres: LibraryRun,
) -> None:
    """Per file, the stored Django statements are exactly those the probe counted.

    The only other statements are Django's connection check at the end of each test
    (``TestCase._fixture_teardown`` calls ``is_usable()``: ``SELECT 1`` straight on the
    psycopg connection, below Django's execute wrappers).
    """
    probe = on_postgres.probe_counts()
    assert sorted(probe) == TEST_FILES
    stored = on_postgres.rows(
        "SELECT file, count(*) FILTER (WHERE orm = 'django') AS django, "
        "count(*) FILTER (WHERE orm <> 'django') AS below, count(*) AS total "
        "FROM queries WHERE run_id = ? GROUP BY file ORDER BY file"
    )
    tests = Counter(r["file"] for r in on_postgres.rows("SELECT file FROM tests WHERE run_id = ?"))
    for row in stored:
        assert row["django"] == probe[row["file"]], row
        assert row["total"] == probe[row["file"]] + tests[row["file"]], row
    below = on_postgres.rows(
        "SELECT DISTINCT sql, phase, caller FROM queries WHERE run_id = ? AND orm <> 'django'"
    )
    assert below == [{"sql": "SELECT 1", "phase": "teardown", "caller": ""}]
    # Django's server-side cursor (iterator()) is not a psycopg factory cursor: Django records it
    streamed = on_postgres.rows(
        "SELECT orm, alias, caller FROM queries WHERE run_id = ? "
        "AND sql LIKE 'SELECT%library_member%' AND nodeid LIKE '%test_member_emails'"
    )
    assert streamed == [
        {"orm": "django", "alias": "default", "caller": "library/reports.py:47 member_emails"}
    ]


def test_files_running_at_once_never_share_a_test_database(on_postgres: LibraryRun) -> None:
    created = on_postgres.rows(
        "SELECT file, sql, alias, orm, caller, started FROM queries "
        "WHERE run_id = ? AND sql LIKE 'CREATE DATABASE%' ORDER BY file"
    )
    assert [c["file"] for c in created] == TEST_FILES
    # named by the worker slot, as pytest-django names them under pytest-xdist
    matches = [
        re.fullmatch(r'CREATE DATABASE "test_library_(gw[01])" *', c["sql"]) for c in created
    ]
    assert all(matches), [c["sql"] for c in created]
    database = {c["file"]: m.group(1) for c, m in zip(created, matches, strict=True) if m}
    assert {(c["alias"], c["orm"], c["caller"]) for c in created} == {("__no_db__", "django", "")}
    # the files did run at once (two workers, overlapping lifetimes), never on one database
    spans = on_postgres.rows("SELECT file, started, finished FROM test_files WHERE run_id = ?")
    overlaps = [
        (a["file"], b["file"])
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a["started"] < b["finished"] and b["started"] < a["finished"]
    ]
    assert overlaps
    assert all(database[a] != database[b] for a, b in overlaps), (overlaps, database)
