"""The run directory owns every path in it: journal, and per file events, log, coverage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devformance_nb.core.config import STATE_DIR
from devformance_nb.core.rundir import JOURNAL, RunDir, slug

pytestmark = pytest.mark.quick
PACKAGE = Path(__file__).resolve().parent.parent / "devformance_nb"


def test_slug_is_safe_and_unique() -> None:
    assert slug("a__b/c.py") != slug("a/b__c.py")
    assert "/" not in slug("a/b.py") and " " not in slug("we ird/t t.py")


def test_same_basename_in_two_folders_gets_two_names() -> None:
    run_dir = RunDir(Path("/r"))
    assert run_dir.log_path("a/test_x.py") != run_dir.log_path("b/test_x.py")


def test_paths_of_a_run() -> None:
    run_dir = RunDir.for_run(Path("/p"), "20260101-000000-abcdef")
    assert run_dir.path == Path("/p") / STATE_DIR / "runs" / "20260101-000000-abcdef"
    assert run_dir.journal == run_dir.path / JOURNAL
    name = slug("tests/test_a.py")
    assert run_dir.events_path("tests/test_a.py") == run_dir.path / f"{name}.events.jsonl"
    assert run_dir.log_path("tests/test_a.py") == run_dir.path / f"{name}.log"
    assert run_dir.coverage_path("tests/test_a.py") == run_dir.path / f"{name}.coverage"


def test_create_and_fspath(tmp_path: Path) -> None:
    run_dir = RunDir.at(tmp_path / "x" / "y")
    run_dir.create()
    run_dir.create()  # twice is fine
    assert run_dir.path.is_dir() and Path(run_dir) == tmp_path / "x" / "y"


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "rundir.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_other_module_names_run_directory_files(path: Path) -> None:
    suffixes = (".events.jsonl", ".log", ".coverage", JOURNAL)
    named = [
        s
        for s in _string_constants(path)
        if s.endswith(suffixes) and not s.startswith("devformance_nb.")  # a module's name
    ]
    assert named == [], f"{path.name} builds run-directory paths itself; ask a RunDir"
