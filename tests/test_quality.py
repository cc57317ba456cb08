"""The code base stays lint-clean, formatted and mypy-clean (the project's own rules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean() -> None:
    proc = _run("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean() -> None:
    proc = _run("ruff", "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


CALLERS = """
from devformance_nb import run_tests
from devformance_nb.api import start_run
from devformance_nb.api.facade import prepare

run_tests("tests", workers=2, coverage=False, pytest_args=["-x"], db="x.duckdb")
start_run(workers="2")
prepare(wrkers=2)
run_tests(pytest_args="-x")
"""


def test_mypy_checks_the_settings_callers_pass(tmp_path: Path) -> None:
    (tmp_path / "callers.py").write_text(CALLERS, encoding="utf-8")
    proc = _run("mypy", "--config-file", str(REPO / "pyproject.toml"), str(tmp_path / "callers.py"))
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["7", "8", "9"], proc.stdout
    assert 'Argument "workers" to "start_run" has incompatible type "str"' in errors[0]
    assert 'Unexpected keyword argument "wrkers" for "prepare"' in errors[1]
    assert 'Argument "pytest_args" to "run_tests" has incompatible type "str"' in errors[2]
