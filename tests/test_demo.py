"""The bundled bookshop demo through the real CLI, checked against plain pytest."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import BOOKSHOP

from devformance_nb import api


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
        [sys.executable, "-m", "devformance_nb.cli", "demo", "--workers", "2", "--db", str(db)],
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
