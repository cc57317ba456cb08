"""Discovery lists exactly what pytest would collect (real pytest children)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api import facade as api
from devformance_nb.core.errors import DiscoveryError, NoTestsFoundError, PathNotFoundError
from devformance_nb.core.rundir import slug
from devformance_nb.logic.discovery import Discovery, TestFile, discover

REPO = Path(__file__).resolve().parent.parent

PASS = "def test_ok():\n    pass\n"


def keys(files: list[TestFile]) -> list[str]:
    return sorted(f.key for f in files)


def test_pytest_settings_decide(make_project: MakeProject) -> None:
    root = make_project(
        {
            "pyproject.toml": """
                [tool.pytest.ini_options]
                testpaths = ["tests", "more"]
                python_files = ["test_*.py", "check_*.py"]
                norecursedirs = ["skipme"]
            """,
            "tests/test_a.py": PASS,
            "tests/check_b.py": PASS,
            "tests/helper.py": PASS,
            "tests/skipme/test_hidden.py": PASS,
            "tests/ignored/test_ignored.py": PASS,
            "tests/conftest.py": "collect_ignore = ['test_listed_in_conftest.py']\n",
            "tests/test_listed_in_conftest.py": PASS,
            "more/test_c.py": PASS,
            "outside/test_not_in_testpaths.py": PASS,
        }
    )
    found = discover(root, pytest_args=["--ignore=tests/ignored"])
    assert keys(found) == ["more/test_c.py", "tests/check_b.py", "tests/test_a.py"]


def test_explicit_paths_override_testpaths(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS, "other/test_b.py": PASS})
    assert keys(discover(root, ["other"])) == ["other/test_b.py"]
    assert keys(discover(root, ["tests/test_a.py"])) == ["tests/test_a.py"]


def test_same_basename_in_two_folders_are_two_files(make_project: MakeProject) -> None:
    root = make_project(
        {
            "tests/a/__init__.py": "",
            "tests/a/test_same.py": PASS,
            "tests/b/__init__.py": "",
            "tests/b/test_same.py": PASS,
        }
    )
    found = discover(root)
    assert keys(found) == ["tests/a/test_same.py", "tests/b/test_same.py"]
    assert len({slug(f.key) for f in found}) == 2
    assert all(f.path.is_absolute() and f.path.exists() for f in found)


def test_a_file_with_a_syntax_error_is_still_listed(make_project: MakeProject) -> None:
    root = make_project({"tests/test_bad.py": "def test_x(:\n", "tests/test_ok.py": PASS})
    assert keys(discover(root)) == ["tests/test_bad.py", "tests/test_ok.py"]


def test_missing_path(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS})
    with pytest.raises(PathNotFoundError, match="'nope' does not exist"):
        discover(root, ["nope"])


def test_a_listing_runs_while_the_caller_works_and_close_ends_it(
    make_project: MakeProject,
) -> None:
    # a conftest that hangs until it is killed: the listing is still running when we look
    root = make_project(
        {"tests/conftest.py": "import time\ntime.sleep(600)\n", "tests/test_a.py": PASS}
    )
    listing = Discovery(root)
    assert listing._proc is not None and listing._proc.poll() is None  # started, not waited for
    folder = Path(listing._tmp.name) if listing._tmp is not None else None
    listing.close()
    assert listing._proc.poll() is not None  # ended
    assert folder is not None and not folder.exists()  # and its files removed


def test_a_listing_answers_when_asked(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS, "tests/test_b.py": PASS})
    with Discovery(root, ["tests"]) as listing:
        assert keys(listing.files()) == ["tests/test_a.py", "tests/test_b.py"]


def test_a_missing_path_fails_before_any_listing_starts(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS})
    with pytest.raises(PathNotFoundError, match="'nope' does not exist"):
        Discovery(root, ["tests", "nope"])


def test_no_tests(make_project: MakeProject) -> None:
    root = make_project({"src/app.py": "x = 1\n"})
    with pytest.raises(NoTestsFoundError, match="no test files found"):
        discover(root, ["src"])


def test_broken_conftest_is_a_discovery_error(make_project: MakeProject) -> None:
    root = make_project({"tests/conftest.py": "import not_a_module_xyz\n", "tests/test_a.py": PASS})
    with pytest.raises(DiscoveryError, match="not_a_module_xyz"):
        discover(root)


PACKAGED = {
    "tests/__init__.py": "",
    "tests/test_a.py": PASS,
    "tests/sub/__init__.py": "",
    "tests/sub/test_b.py": PASS,
}


@pytest.mark.parametrize("version", ["7.4.4", "newest"])
def test_packages_are_not_test_files_on_old_and_new_pytest(
    make_project: MakeProject, tmp_path: Path, version: str
) -> None:
    """pytest 7's Package is a Module: its __init__.py must not be listed as a file."""
    root = make_project(PACKAGED)
    python = sys.executable
    if version != "newest":
        target = tmp_path / f"pytest-{version}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--target",
                str(target),
                f"pytest=={version}",
                "pluggy<2",
            ],
            check=True,
            capture_output=True,
        )
        python = str(tmp_path / "python")
        # an interpreter whose pytest is the old one, this repository's plugin beside it
        Path(python).write_text(
            f'#!/bin/sh\nPYTHONPATH="{target}:{REPO}" exec {sys.executable} "$@"\n'
        )
        Path(python).chmod(0o755)
        shown = subprocess.run(
            [python, "-c", "import pytest; print(pytest.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert shown.stdout.strip() == version
    files = discover(root, python=python)
    assert sorted(f.key for f in files) == ["tests/sub/test_b.py", "tests/test_a.py"]
    # and a whole run on that pytest counts what plain pytest counts
    plain = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0 and "2 passed" in plain.stdout, plain.stdout
    run = api.run_tests(root=root, workers=2, python=python, coverage=False)
    assert run.status == "passed" and run.totals()["passed"] == 2, run.summary()
