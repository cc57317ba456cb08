"""The demo history builder: its edits, and the git history and runs it made (tests/history.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devformance_nb.cli.demo_history import BOOKSHOP, Edit, History, copy_demo
from devformance_nb.cli.demo_history import STEPS as DEMO_STEPS

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts


def _git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_every_edit_applies_to_the_shipped_demo(tmp_path: Path) -> None:
    project = copy_demo(tmp_path)
    for step in DEMO_STEPS:
        for edit in step.edits:
            edit.apply(project)  # a replace whose text is gone raises
    assert (project / "tests" / "api" / "test_stock.py").is_file()
    assert "def stock_reorder_list" in (project / "bookshop" / "reports.py").read_text()
    assert _git(project, "log", "--format=%s") == DEMO_STEPS[0].message
    # the copy leaves the shipped demo alone
    assert "stock_reorder_list" not in (BOOKSHOP / "bookshop" / "reports.py").read_text()


def test_edit_modes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("one\ntwo\n")
    Edit("a.py", "TWO\n", old="two\n").apply(tmp_path)
    Edit("a.py", "three\n", append=True).apply(tmp_path)
    Edit("sub/b.py", "new\n").apply(tmp_path)
    assert (tmp_path / "a.py").read_text() == "one\nTWO\nthree\n"
    assert (tmp_path / "sub" / "b.py").read_text() == "new\n"
    with pytest.raises(ValueError, match="exactly once"):
        Edit("a.py", "x", old="missing").apply(tmp_path)


def test_the_history_is_one_commit_per_changing_step(history: History, facts: Facts) -> None:
    assert [r.step for r in history.runs] == list(facts.steps) == [s.name for s in DEMO_STEPS]
    project = facts.project
    messages = _git(project, "log", "--format=%s", "main").splitlines()
    assert messages == [s.message for s in reversed(DEMO_STEPS) if s.edits or s is DEMO_STEPS[0]]
    commits = [r.git_commit for r in history.runs]
    assert commits[:3] == _git(project, "log", "--format=%H", "main").splitlines()[::-1]
    assert commits[3] == commits[2]
    assert [r.git_branch for r in history.runs] == ["main", "main", "main", "feature"]
    # the flag file makes the last run fail, and lies outside git
    assert (project / facts.flag).exists()
    assert _git(project, "status", "--porcelain", "--untracked-files=no") == ""
    assert [r.status for r in history.runs] == ["passed", "passed", "passed", "failed"]
