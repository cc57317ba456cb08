"""Discovery: the test files pytest itself would collect for a project."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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
    with Discovery(root, paths, pytest_args, python) as pending:
        return pending.files()


class ListingChild(Protocol):
    """A listing child forked by a warm process (``run.forkserver``'s children are)."""

    def output_fd(self) -> int: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill_group(self) -> None: ...
    def close(self) -> None: ...


#: forks ``python -m pytest ...`` (command, environment, folder) from a warm process, or
#: answers None when none is up
Fork = Callable[[list[str], dict[str, str], Path], "ListingChild | None"]


class Discovery:
    """A discovery under way: its listing child starts at once, ``files()`` waits for it.

    The caller does other work (opening the store) while pytest lists the files; leaving
    the ``with`` block (or ``close()``) ends a child whose answer was never asked for. Missing
    paths raise here, before anything starts. ``fork``: where a warm fork server is already
    up (a notebook's next run), the listing is its child, which finds pytest and the
    plugins imported (a new interpreter took 0.8 s on a 40-file suite); else a new one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        paths: Sequence[str | os.PathLike[str]] = (),
        pytest_args: Sequence[str] = (),
        python: str | None = None,
        fork: Fork | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise PathNotFoundError(f"project root {self.root} is not a folder")
        self.paths = list(paths)
        targets = check_paths(self.root, paths)
        # pytest collects a file named on its command line whatever python_files says
        self._listed = [os.fspath(p) for p in targets if p.is_file()]
        folders = [p for p in targets if not p.is_file()]
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | ListingChild | None = None
        #: whether a warm process forked the listing (``fork``), not a new interpreter
        self.forked = False
        self._code: int | None = None
        if folders or not targets:
            self._start(folders, pytest_args, python or sys.executable, fork)

    def _start(
        self,
        folders: Sequence[Path],
        pytest_args: Sequence[str],
        python: str,
        fork: Fork | None,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="devformance-discover-")
        tmp = Path(self._tmp.name)
        self._out = tmp / "files.txt"
        self._log = tmp / "output.txt"
        env = {
            **os.environ,
            "DEVFORMANCE_COLLECT_OUT": os.fspath(self._out),
            "PYTHONUNBUFFERED": "1",
        }
        command = listing_command(python, folders, pytest_args)
        child = None
        if fork is not None:
            with contextlib.suppress(OSError):  # a server that does not answer: a new process
                child = fork(command, env, self.root)
        if child is not None:
            self._proc, self.forked = child, True
            self._drain = threading.Thread(target=_copy_output, args=(child, self._log))
            self._drain.start()
            return
        with open(self._log, "wb") as log:  # a file, not a pipe: the child never blocks on it
            self._proc = subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def files(self) -> list[TestFile]:
        """Wait for the listing; the test files, or NoTestsFoundError / DiscoveryError."""
        listed = list(self._listed)
        if self._proc is not None:
            code = self._code = self._proc.wait()
            if self.forked:
                self._drain.join()  # its output is all in the log
            if code not in (0, _NO_TESTS_COLLECTED):
                raise DiscoveryError(self._failure(code))
            if self._out.exists():
                listed += self._out.read_text(encoding="utf-8").splitlines()
        found = _unique(TestFile(file_key(self.root, Path(p)), Path(p).resolve()) for p in listed)
        if not found:
            where = ", ".join(os.fspath(p) for p in self.paths) or f"{self.root} (its testpaths)"
            raise NoTestsFoundError(
                f"no test files found in {where}: nothing matched pytest's python_files "
                "patterns (default test_*.py, *_test.py); check the path, or "
                "testpaths/python_files in your pytest configuration"
            )
        return found

    def _failure(self, code: int) -> str:
        text = self._log.read_bytes().decode("utf-8", "replace")
        tail = text.strip().splitlines()[-15:]
        return (
            f"pytest could not list the test files (exit {code}) in {self.root}:\n"
            + "\n".join(tail)
            + "\nFix the error above (often a conftest.py or pytest configuration problem)."
        )

    def close(self) -> None:
        """End the listing child if it still runs, and remove its files."""
        # a forked child's exit code is handed out once: a child waited for has ended
        if self._proc is not None and self._code is None and self._proc.poll() is None:
            if isinstance(self._proc, subprocess.Popen):
                self._proc.kill()
            else:
                self._proc.kill_group()
            self._code = self._proc.wait()
        if self.forked:
            self._drain.join()
            self._proc.close()  # type: ignore[union-attr]
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Discovery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy_output(child: ListingChild, log: Path) -> None:
    """Copy a forked child's output pipe into ``log`` until it ends (a full pipe would stop
    the child)."""
    with open(log, "wb") as out:
        while chunk := os.read(child.output_fd(), 65_536):
            out.write(chunk)


def _unique(files: Iterable[TestFile]) -> list[TestFile]:
    seen: dict[str, TestFile] = {}
    for tf in files:
        seen.setdefault(tf.key, tf)
    return list(seen.values())
