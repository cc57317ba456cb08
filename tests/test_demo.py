"""The bundled bookshop demo through the real CLI, checked against plain pytest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import BOOKSHOP

from devformance_nb.api import facade as api


def plain_pytest_outcomes() -> Counter[tuple[str, str]]:
    """(file key, outcome) counts from one plain pytest run of the same suite (-rA lines)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-rA", "-p", "no:cacheprovider"],
        cwd=BOOKSHOP,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts: Counter[tuple[str, str]] = Counter()
    for line in proc.stdout.splitlines():
        match = re.match(r"(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+?)::", line)
        if match:
            counts[(f"{match.group(2)}", match.group(1).lower())] += 1
    assert counts, "plain pytest listed no results"
    return counts


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "devformance_nb.cli",
            "demo",
            "--workers",
            "2",
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, db


def test_demo_passes_and_matches_plain_pytest(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, db = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    store = api.open_store(db)
    (run,) = store.runs()
    assert run["status"] == "passed"
    rows = store.query(
        "SELECT file, status, passed, failed, errors, skipped FROM test_files WHERE run_id = ?",
        [run["run_id"]],
    )
    ours: Counter[tuple[str, str]] = Counter()
    for row in rows:
        assert row["status"] == "passed", row
        key = row["file"].removeprefix("tests/")
        for outcome in ("passed", "failed", "skipped"):
            if row[outcome]:
                ours[(f"tests/{key}", outcome)] += row[outcome]
    assert ours == plain_pytest_outcomes()
    assert len(rows) >= 10
    # same basename in two folders: two files, two rows
    names = [Path(r["file"]).name for r in rows]
    assert len(names) != len(set(names))


def test_demo_prints_progress_and_a_line_per_file(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, _ = demo_run
    finished = [line for line in proc.stdout.splitlines() if line.startswith("PASSED ")]
    assert len(finished) == len(list((BOOKSHOP / "tests").rglob("test_*.py")))
    assert "devformance: passed" in proc.stdout


def test_demo_findings_are_exactly_the_planted_ones(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Every planted N+1 and slow query is found (call site, count, table), and nothing else."""
    _, db = demo_run
    planted = json.loads((BOOKSHOP / "planted.json").read_text(encoding="utf-8"))
    store = api.open_store(db)
    (run,) = store.runs()
    found = store.query(
        "SELECT nodeid, phase, caller, count, table_name FROM n_plus_one WHERE run_id = ?",
        [run["run_id"]],
    )
    assert sorted(
        (r["nodeid"], r["phase"], r["caller"], r["count"], r["table_name"]) for r in found
    ) == sorted(
        (
            p["nodeid"],
            p["phase"],
            f"{p['module']}:{p['line']} {p['function']}",
            p["count"],
            p["table"],
        )
        for p in planted["n_plus_one"]
    )
    (totals,) = store.query(
        "SELECT slow_query_ms, slow_queries, n_plus_one FROM runs WHERE run_id = ?",
        [run["run_id"]],
    )
    threshold = planted["settings"]["slow_query_ms"]
    assert totals["slow_query_ms"] == threshold
    slow = store.query(
        "SELECT q.nodeid, q.phase, q.caller, q.duration, f.tables FROM queries q "
        "JOIN fingerprints f USING (fingerprint_hash) "
        "WHERE q.run_id = ? AND q.duration * 1000 >= ? AND q.caller <> ''",
        [run["run_id"], threshold],
    )
    assert sorted((r["nodeid"], r["phase"], r["caller"], r["tables"][0]) for r in slow) == sorted(
        (p["nodeid"], p["phase"], f"{p['module']}:{p['line']} {p['function']}", p["table"])
        for p in planted["slow_queries"]
    )
    assert totals["slow_queries"] == len(planted["slow_queries"])
    assert totals["n_plus_one"] == len(planted["n_plus_one"])


def traced_statements(files: list[str]) -> dict[str, dict[str, int]]:
    """SQLite's own statement counts per test file, each file run alone by plain pytest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVFORMANCE_")}
    script = Path(__file__).resolve().parent / "sqltrace.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(BOOKSHOP), *files],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts: dict[str, dict[str, int]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return counts


def test_demo_stores_every_statement_sqlite_ran(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """The store holds exactly the statements SQLite's own trace counts, file by file.

    The ground truth is a plain pytest run of each test file alone (as devformance runs each
    file in a child of its own: session fixtures such as the seeded template databases run once
    per file), with ``sqltrace`` counting what SQLite's trace callback reports, reconciled to
    one statement per execute/executemany/executescript call: the COMMIT and ROLLBACK the driver
    runs for ``commit()``/``rollback()`` and its implicit legacy-mode BEGIN are not statements
    the code sent, and a batch call is one statement however many times SQLite steps it.
    """
    _, db = demo_run
    store = api.open_store(db)
    (run,) = store.runs()
    files = [f.relative_to(BOOKSHOP).as_posix() for f in (BOOKSHOP / "tests").rglob("test_*.py")]
    traced = traced_statements(sorted(files))
    truth = {file: counts["counted"] for file, counts in traced.items()}
    assert sum(c["driver_commit_rollback"] for c in traced.values()) > 0  # it mattered
    assert sum(c["traced"] for c in traced.values()) > sum(truth.values())
    stored = store.query(
        "SELECT file, count(*) AS n FROM queries WHERE run_id = ? GROUP BY file", [run["run_id"]]
    )
    assert {r["file"]: r["n"] for r in stored} == truth
    per_file = store.query("SELECT file, queries FROM test_files WHERE run_id = ?", [run["run_id"]])
    assert {r["file"]: r["queries"] for r in per_file} == truth
    (totals,) = store.query("SELECT queries FROM runs WHERE run_id = ?", [run["run_id"]])
    assert totals["queries"] == sum(truth.values())
