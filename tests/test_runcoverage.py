"""Coverage through real runs: per file, per source file, run total, in the store and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import BOOKSHOP, MakeProject

from devformance_nb.analysis.runfindings import coverage_of
from devformance_nb.api import facade as api

CALC = """\
CONSTANT = 1


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def unused():
    return 0
"""
# 7 statements: CONSTANT and the three def lines run at import time
TEST_ADD = "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
TEST_SUB = "from pkg.calc import sub\n\n\ndef test_sub():\n    assert sub(3, 2) == 1\n"


def calc_project(make_project: MakeProject, **extra: str) -> Path:
    return make_project(
        {"pkg/__init__.py": "", "pkg/calc.py": CALC, "tests/test_add.py": TEST_ADD, **extra}
    )


def rows(run: api.Run, sql: str) -> list[dict[str, Any]]:
    return api.open_store(run.db).query(sql, [run.id])


def run_row(run: api.Run) -> dict[str, Any]:
    return rows(run, "SELECT * FROM runs WHERE run_id = ?")[0]


def test_import_time_lines_count_and_missing_lines_are_stored(
    make_project: MakeProject, executor: str
) -> None:
    root = calc_project(make_project)
    run = api.run_tests(root=root, workers=1, executor=executor)
    assert run.status == "passed"
    found = rows(run, "SELECT * FROM coverage_files WHERE run_id = ? ORDER BY source_file")
    # the default source is the project's package, never its tests
    assert [r["source_file"] for r in found] == ["pkg/__init__.py", "pkg/calc.py"]
    calc = found[1]
    assert (calc["statements"], calc["covered"]) == (7, 5)
    assert calc["missing"] == "9, 13" and list(calc["missing_lines"]) == [9, 13]
    assert run_row(run)["coverage_percent"] == pytest.approx(500 / 7)
    assert run.state.files["tests/test_add.py"].coverage == pytest.approx(500 / 7)


def test_coverage_rises_after_a_test_is_added(make_project: MakeProject, executor: str) -> None:
    root = calc_project(make_project)
    first = api.run_tests(root=root, workers=2, executor=executor)
    (root / "tests" / "test_sub.py").write_text(TEST_SUB, encoding="utf-8")
    second = api.run_tests(root=root, workers=2, executor=executor)
    totals = api.open_store(second.db).query(
        "SELECT run_id, coverage_percent FROM runs ORDER BY started"
    )
    assert [r["run_id"] for r in totals] == [first.id, second.id]
    assert totals[0]["coverage_percent"] == pytest.approx(500 / 7)
    assert totals[1]["coverage_percent"] == pytest.approx(600 / 7)
    by_file = rows(
        second,
        "SELECT test_file, covered, missing FROM coverage_by_test_file WHERE run_id = ? "
        "ORDER BY test_file",
    )
    # what each test file covers alone: its own function's body, never the other's
    assert by_file == [
        {"test_file": "tests/test_add.py", "covered": 5, "missing": "9, 13"},
        {"test_file": "tests/test_sub.py", "covered": 5, "missing": "5, 13"},
    ]


def test_a_crashed_child_has_no_coverage_and_the_total_says_so(
    make_project: MakeProject, executor: str
) -> None:
    crash = "import os\nfrom pkg.calc import sub\n\n\ndef test_crash():\n    os._exit(3)\n"
    root = calc_project(make_project, **{"tests/test_crash.py": crash})
    run = api.run_tests(root=root, workers=2, executor=executor)
    assert run.state.files["tests/test_crash.py"].status == "crashed"
    assert run.state.files["tests/test_crash.py"].coverage is None
    row = run_row(run)
    assert row["coverage_percent"] == pytest.approx(500 / 7)
    assert row["coverage_test_files"] == 1
    assert "1 of 2 test files contributed" in row["coverage_note"]


def test_a_broken_coverage_config_runs_the_tests_and_says_why(make_project: MakeProject) -> None:
    root = calc_project(make_project, **{".coveragerc": "[run]\nbranch = perhaps\n"})
    run = api.run_tests(root=root, workers=1)
    assert run.status == "passed" and run.exit_code == 0
    assert run.state.coverage is None
    row = run_row(run)
    assert row["coverage_percent"] is None
    assert ".coveragerc" in row["coverage_note"] and "broken" in row["coverage_note"]
    (file_row,) = rows(run, "SELECT coverage_note FROM test_files WHERE run_id = ?")
    assert "broken" in file_row["coverage_note"]


def test_no_coverage_measures_nothing(make_project: MakeProject) -> None:
    root = calc_project(make_project)
    run = api.run_tests(root=root, workers=1, coverage=False)
    assert run.status == "passed"
    assert not list(run.run_dir.glob("*.coverage"))
    assert run_row(run)["coverage_percent"] is None
    assert rows(run, "SELECT * FROM coverage_files WHERE run_id = ?") == []


def test_contexts_answer_which_tests_cover_a_line(make_project: MakeProject) -> None:
    root = calc_project(make_project, **{"tests/test_sub.py": TEST_SUB})
    run = api.run_tests(root=root, workers=2, coverage_contexts=True)
    found = rows(
        run,
        "SELECT DISTINCT context FROM coverage_contexts WHERE run_id = ? "
        "AND source_file = 'pkg/calc.py' AND line = 5",
    )
    assert [r["context"] for r in found] == ["tests/test_add.py::test_add"]


def test_cli_prints_the_total_and_missing_lines(make_project: MakeProject) -> None:
    root = calc_project(make_project)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devformance_nb.cli", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
        )

    run = cli("run", "--workers", "1")
    assert run.returncode == 0, run.stderr
    assert "coverage: 71.4% of 7 statements" in run.stdout
    listing = cli("coverage")
    assert "coverage 71.4% of 7 statements, from 1 of 1 test files" in listing.stdout
    assert "pkg/calc.py" in listing.stdout
    one = cli("coverage", "--file", "calc.py")
    assert "pkg/calc.py: 71.4% of 7 statements, missing lines: 9, 13" in one.stdout
    unknown = cli("coverage", "--file", "nope.py")
    assert unknown.returncode == 4 and "devformance coverage" in unknown.stderr


def coverage_py_report(project: Path) -> dict[str, Any]:
    """coverage.py's own numbers for the suite: ``coverage run -m pytest`` + ``coverage json``."""
    for args in (
        ["run", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        ["json", "-o", "cov.json"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "coverage", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report: dict[str, Any] = json.loads((project / "cov.json").read_text())
    return report


def test_bookshop_total_equals_coverage_py_and_executors_agree(tmp_path: Path) -> None:
    """The run total equals coverage.py's own; spawn and fork-server children measure alike."""
    project = tmp_path / "bookshop"
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns(".devformance", "__pycache__"))
    runs = {
        name: api.run_tests(root=project, workers=2, executor=name, db=tmp_path / "s.duckdb")
        for name in ("spawn", "forkserver")
    }
    expected = coverage_py_report(project)
    for run in runs.values():
        assert run.state.coverage == pytest.approx(expected["totals"]["percent_covered"], abs=0.1)
    # the planted uncovered module shows every statement missing
    admin = coverage_of(tmp_path / "s.duckdb", runs["spawn"].id, "bookshop/admin.py")
    assert admin is not None and admin["covered"] == 0
    wanted = expected["files"]["bookshop/admin.py"]["missing_lines"]
    assert list(admin["missing_lines"]) == wanted
    per_file = {
        name: {k: fs.coverage for k, fs in run.state.files.items()} for name, run in runs.items()
    }
    assert per_file["spawn"] == per_file["forkserver"]
    assert all(value is not None and value > 0 for value in per_file["spawn"].values())
    # the same statements too: a forked child captures SQL exactly as a fresh one
    queries = {
        name: {k: fs.queries for k, fs in run.state.files.items()} for name, run in runs.items()
    }
    assert queries["spawn"] == queries["forkserver"]
    assert sum(queries["spawn"].values()) > 1000
