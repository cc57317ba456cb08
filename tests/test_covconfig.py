"""Which coverage configuration a child applies and what it measures (plugin.covconfig)."""

from __future__ import annotations

from pathlib import Path

import pytest
from covdriver import write_project

from devformance_nb.plugin.covconfig import (
    CoverageConfigProblem,
    default_source,
    find_config_file,
    resolve_source,
)


@pytest.mark.quick
@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, None),
        ({"setup.cfg": "[metadata]\nname = x\n"}, None),
        ({"setup.cfg": "[coverage:run]\nbranch = true\n"}, "setup.cfg"),
        ({"tox.ini": "[coverage:report]\nshow_missing = true\n"}, "tox.ini"),
        ({"pyproject.toml": "[tool.coverage.run]\nbranch = true\n"}, "pyproject.toml"),
        ({"pyproject.toml": "[tool.ruff]\n"}, None),
        ({".coveragerc": "", "pyproject.toml": "[tool.coverage.run]\n"}, ".coveragerc"),
        ({".coveragerc.toml": "[run]\n", "setup.cfg": "[coverage:run]\n"}, ".coveragerc.toml"),
        ({"setup.cfg": "[coverage:run]\n", "tox.ini": "[coverage:run]\n"}, "setup.cfg"),
    ],
)
def test_config_file_is_the_one_coverage_would_read(
    tmp_path: Path, files: dict[str, str], expected: str | None
) -> None:
    write_project(tmp_path, files)
    found = find_config_file([tmp_path])
    assert found == (str(tmp_path / expected) if expected else None)


@pytest.mark.quick
def test_config_file_search_order_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rootdir, project = tmp_path / "rootdir", tmp_path / "project"
    write_project(rootdir, {"setup.cfg": "[metadata]\n"})
    write_project(project, {".coveragerc": "[run]\n"})
    assert find_config_file([rootdir, project]) == str(project / ".coveragerc")
    monkeypatch.setenv("COVERAGE_RCFILE", str(tmp_path / "custom.ini"))
    assert find_config_file([rootdir, project]) == str(tmp_path / "custom.ini")


@pytest.mark.quick
def test_an_unreadable_shared_file_is_a_config_problem(tmp_path: Path) -> None:
    write_project(tmp_path, {"pyproject.toml": "[tool.coverage.run\n"})
    with pytest.raises(CoverageConfigProblem, match=r"pyproject\.toml"):
        find_config_file([tmp_path])


@pytest.mark.quick
def test_default_source_is_the_projects_packages(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "app/__init__.py": "",
            "src/lib/__init__.py": "",
            "tests/__init__.py": "",
            "test_helpers/__init__.py": "",
            "docs/__init__.py": "",
            "not-a-name/__init__.py": "",
            "scripts/run.py": "",  # a folder without __init__.py is no package
            ".venv/__init__.py": "",
        },
    )
    assert default_source(tmp_path) == [str(tmp_path / "app"), str(tmp_path / "src" / "lib")]


@pytest.mark.quick
def test_a_flat_project_measures_its_root(tmp_path: Path) -> None:
    write_project(tmp_path, {"app.py": "", "test_app.py": ""})
    assert default_source(tmp_path) == [str(tmp_path.resolve())]


@pytest.mark.quick
def test_source_folders_are_made_absolute_and_package_names_kept(tmp_path: Path) -> None:
    write_project(tmp_path, {"src/lib/__init__.py": ""})
    assert resolve_source(["src/lib", "lib", "json"], tmp_path) == [
        str(tmp_path / "src" / "lib"),
        "lib",
        "json",
    ]
