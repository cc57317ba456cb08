"""The run directory: the one owner of every path inside it.

Each run writes ``<root>/.devformance/runs/<run id>/``: the launcher's journal, and per test
file its events (JSON lines from the child), its full output log and its coverage data
file. A file's name there is its *slug*: the key made file-system safe, with a hash of the
key so that ``a/test_x.py`` and ``b/test_x.py`` never collide. Nothing else builds these
paths: the executors, the readers, replay, ingest and the views all ask a ``RunDir``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from devformance_nb.core.config import STATE_DIR

#: the folder under the state directory that holds one directory per run
RUNS = "runs"
#: the launcher's own events (run and file starts and ends), in every run directory
JOURNAL = "run.events.jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(key: str) -> str:
    """A unique, file-system-safe name for test file ``key`` (its path from the root)."""
    stem = _UNSAFE.sub("_", key.replace("/", "__")).removesuffix(".py")
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return f"{stem[-80:]}-{digest}"


def reads_beside(events_path: str) -> str:
    """The reads file of the child whose events file is ``events_path`` (the child knows
    only that path)."""
    return events_path.removesuffix(".events.jsonl") + ".reads.txt"


@dataclass(frozen=True)
class RunDir:
    """One run's directory and the paths of everything in it."""

    path: Path

    @classmethod
    def for_run(cls, root: Path, run_id: str) -> RunDir:
        """Where run ``run_id`` of the project at ``root`` keeps its files."""
        return cls(root / STATE_DIR / RUNS / run_id)

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> RunDir:
        """The run directory at ``path`` (e.g. given to ``devformance ingest``)."""
        return cls(Path(path))

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def journal(self) -> Path:
        """The launcher's events: run start, each file's start, crash and finish, run end."""
        return self.path / JOURNAL

    def events_path(self, key: str) -> Path:
        """Where the child of test file ``key`` writes its events."""
        return self.path / f"{slug(key)}.events.jsonl"

    def log_path(self, key: str) -> Path:
        """The full output (stdout and stderr) of test file ``key``'s child."""
        return self.path / f"{slug(key)}.log"

    def coverage_path(self, key: str) -> Path:
        """Test file ``key``'s own coverage data file (written only when coverage is on)."""
        return self.path / f"{slug(key)}.coverage"

    def reads_path(self, key: str) -> Path:
        """The project files test file ``key``'s child read: data files it opened, modules
        it imported (``plugin/reads``; for change-based selection)."""
        return Path(reads_beside(os.fspath(self.events_path(key))))

    def create(self) -> None:
        """Make the directory (and its parents) if it is not there yet."""
        self.path.mkdir(parents=True, exist_ok=True)
