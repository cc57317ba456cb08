"""Discovery: the test files pytest itself would collect for a project."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devformance_nb.core.errors import DiscoveryError, NoTestsFoundError, PathNotFoundError

#: pytest exit code for "no tests collected": what a successful listing returns
_NO_TESTS_COLLECTED = 5


@dataclass(frozen=True, order=True)
class TestFile:
    """One test file: ``key`` is its path relative to the project root (posix slashes)."""

    __test__ = False
    key: str
    path: Path


def file_key(root: Path, path: Path) -> str:
    """The key of ``path``: relative to ``root`` when inside it, else absolute."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def check_paths(root: Path, paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Resolve ``paths`` against ``root``; raise PathNotFoundError for the first missing one."""
    resolved = []
    for raw in paths:
        path = (root / raw).resolve()
        if not path.exists():
            raise PathNotFoundError(
                f"path {os.fspath(raw)!r} does not exist (looked at {path}); "
                "give a test file or folder, e.g. 'tests/'"
            )
        resolved.append(path)
    return resolved


def listing_command(python: str, paths: Sequence[Path], pytest_args: Sequence[str]) -> list[str]:
    """The pytest command that lists test modules through the collector plugin."""
    return [
        python,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "devformance_nb.plugin.collector",
        "-p",
        "no:cacheprovider",
        *pytest_args,
        *[os.fspath(p) for p in paths],
    ]


def discover(
    root: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]] = (),
    pytest_args: Sequence[str] = (),
    python: str | None = None,
) -> list[TestFile]:
    """Test files pytest would collect under ``paths`` (or the project's testpaths).

    Runs pytest in a child with the collector plugin, from ``root``, so the
    project's own pytest configuration decides. Raises PathNotFoundError,
    NoTestsFoundError or DiscoveryError with a message that says what to fix.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise PathNotFoundError(f"project root {root_path} is not a folder")
    targets = check_paths(root_path, paths)
    # pytest collects a file named on its command line whatever python_files says
    explicit = [p for p in targets if p.is_file()]
    folders = [p for p in targets if not p.is_file()]
    listed: list[str] = [os.fspath(p) for p in explicit]
    if folders or not targets:
        listed += _list_with_pytest(root_path, folders, pytest_args, python or sys.executable)
    files = _unique(TestFile(file_key(root_path, Path(p)), Path(p).resolve()) for p in listed)
    if not files:
        where = ", ".join(os.fspath(p) for p in paths) or f"{root_path} (its testpaths)"
        raise NoTestsFoundError(
            f"no test files found in {where}: nothing matched pytest's python_files patterns "
            "(default test_*.py, *_test.py); check the path, or testpaths/python_files in "
            "your pytest configuration"
        )
    return files


def _list_with_pytest(
    root: Path, folders: Sequence[Path], pytest_args: Sequence[str], python: str
) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="devformance-discover-") as tmp:
        out = Path(tmp) / "files.txt"
        env = {**os.environ, "DEVFORMANCE_COLLECT_OUT": os.fspath(out), "PYTHONUNBUFFERED": "1"}
        command = listing_command(python, folders, pytest_args)
        proc = subprocess.run(
            command, cwd=root, env=env, capture_output=True, stdin=subprocess.DEVNULL
        )
        listed = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    if proc.returncode not in (0, _NO_TESTS_COLLECTED):
        tail = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()[-15:]
        raise DiscoveryError(
            f"pytest could not list the test files (exit {proc.returncode}) in {root}:\n"
            + "\n".join(tail)
            + "\nFix the error above (often a conftest.py or pytest configuration problem)."
        )
    return listed


def _unique(files: Iterable[TestFile]) -> list[TestFile]:
    seen: dict[str, TestFile] = {}
    for tf in files:
        seen.setdefault(tf.key, tf)
    return list(seen.values())
