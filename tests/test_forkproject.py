"""The project's side of a fork server: staleness and remembered failing imports."""

from __future__ import annotations

import json
from pathlib import Path

from devformance_nb.core.config import STATE_DIR
from devformance_nb.run.forkproject import (
    FAILURES_FILE,
    known_failures,
    project_signature,
    remember_failures,
)


def test_signature_sees_conftest_and_config_changes(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("")
    before = project_signature(tmp_path, [])
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    assert project_signature(tmp_path, []) != before


def test_signature_skips_virtualenvs_and_hidden_folders(tmp_path: Path) -> None:
    before = project_signature(tmp_path, ["app.mod"])
    for folder in (".git", "venv", "node_modules", "__pycache__"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "conftest.py").write_text("")
    assert project_signature(tmp_path, ["app.mod"]) == before
    assert ("app.mod", 0.0) in before  # a preload list change is a change too


def test_failures_are_remembered_per_interpreter(tmp_path: Path) -> None:
    assert known_failures(tmp_path, "/usr/bin/python3") == []
    remember_failures(tmp_path, "/usr/bin/python3", ["b.mod", "a.mod"])
    assert known_failures(tmp_path, "/usr/bin/python3") == ["a.mod", "b.mod"]
    assert known_failures(tmp_path, "/other/python") == []
    stored = json.loads((tmp_path / STATE_DIR / FAILURES_FILE).read_text())
    assert stored == {"python": "/usr/bin/python3", "skip": ["a.mod", "b.mod"]}


def test_an_unreadable_failures_file_means_none_known(tmp_path: Path) -> None:
    (tmp_path / STATE_DIR).mkdir()
    (tmp_path / STATE_DIR / FAILURES_FILE).write_text("{not json")
    assert known_failures(tmp_path, "python") == []
