"""The project archive for Dask workers: what goes, what is left out and said, what always goes."""

from __future__ import annotations

import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from devformance_nb.run.daskship import build_archive

pytestmark = pytest.mark.quick


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def names(data: bytes) -> set[str]:
    with zipfile.ZipFile(BytesIO(data)) as zf:
        return set(zf.namelist())


def test_the_project_goes_without_version_control_state_caches_and_virtualenvs(
    tmp_path: Path,
) -> None:
    root = tree(
        tmp_path / "p",
        {
            "app/__init__.py": "",
            "app/__pycache__/x.pyc": "",
            "tests/test_a.py": "",
            "tests/__pycache__/y.pyc": "",
            "pyproject.toml": "",
            ".git/HEAD": "",
            ".devformance/devformance.duckdb": "",
            ".mypy_cache/z": "",
            "venv/pyvenv.cfg": "",
            "venv/lib/site.py": "",
        },
    )
    archive = build_archive(root)
    assert names(archive.data) == {"app/__init__.py", "tests/test_a.py", "pyproject.toml"}
    assert archive.files == 3
    assert sorted(archive.left_out) == sorted(
        ["__pycache__ (2 folders)", ".git", ".devformance", ".mypy_cache", "virtualenvs (venv)"]
    )
    assert len(archive.digest) == 16 and archive.digest == build_archive(root).digest


def test_a_folder_holding_a_test_file_of_the_run_always_goes(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", {"env/pyvenv.cfg": "", "env/tests/test_b.py": ""})
    archive = build_archive(root, keep=[root / "env" / "tests" / "test_b.py"])
    assert names(archive.data) == {"env/pyvenv.cfg", "env/tests/test_b.py"}
    assert archive.left_out == []


def test_a_symlinked_folder_is_left_out_and_said(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", {"a/x.py": ""})
    (root / "link").symlink_to(root / "a", target_is_directory=True)
    archive = build_archive(root)
    assert names(archive.data) == {"a/x.py"}
    assert archive.left_out == ["symlinked folders (link)"]
