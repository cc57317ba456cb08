"""Coverage of a run as it goes: each file's own data file, then the union (runtime layer).

Reading coverage data goes through coverage.py's API (covdata) and takes tens of
milliseconds per file, so it is never done while folding events into the run state:
a file's reader thread reads the child's data file and puts a ``CoverageRead`` event on
the one queue (``devformance ingest`` does the same while replaying), and the launcher reads
the run total once every file ended, as a ``RunCoverage`` event: the union of every child's
data file, which is what ``coverage combine`` and ``coverage report`` give. Crashed children
have no data file: the total says how many files contributed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devformance_nb.core import events as ev
from devformance_nb.core.rundir import RunDir

if TYPE_CHECKING:
    from devformance_nb.run.covdata import CoverageResult


@dataclass
class FileCoverage:
    """What one child reported about its coverage, and what its data file holds."""

    data_file: str = ""
    message: str = ""
    notes: list[str] = field(default_factory=list)
    result: CoverageResult | None = None


#: file statuses whose child never saved coverage data, and how to say so
_NO_DATA = frozenset({"crashed", "timeout", "interrupted", "stopped"})


@dataclass(frozen=True)
class FileOutcome:
    """What the run total needs to know of one file: how it ended and its data file."""

    key: str
    status: str
    started: bool
    data_file: str = ""
    message: str = ""


def read_file(written: ev.CoverageWritten, root: Path, contexts: bool) -> ev.CoverageRead:
    """Read the data file a child reported (call from its reader thread, never the loop)."""
    from devformance_nb.run import covdata

    result = covdata.read_test_file(
        written.data_file, root, config_file=covdata.config_file_for(root), contexts=contexts
    )
    return ev.CoverageRead(
        run_id=written.run_id, file=written.file, data_file=written.data_file, result=result
    )


def read_run(root: Path, run_dir: RunDir, files: list[FileOutcome]) -> CoverageResult | None:
    """The run total: the union of every started file's data file (None: nothing ran).

    A file whose child ended without data is still expected: the total says why it is missing.
    """
    from devformance_nb.run import covdata

    expected: list[str] = []
    reasons: dict[str, str] = {}
    for outcome in files:
        if not outcome.started and outcome.status in ("pending", "not_run", "carried"):
            # never ran: not expected to contribute (a carried file's lines are copied
            # from its own run into the store's union, store.carry)
            continue
        path = outcome.data_file or str(run_dir.coverage_path(outcome.key))
        expected.append(path)
        reasons[path] = outcome.message or _reason(outcome.status)
    if not expected:
        return None
    return covdata.read_union(
        expected, root, config_file=covdata.config_file_for(root), reasons=reasons
    )


def _reason(status: str) -> str:
    if status == "running":  # the launcher died mid-file (a replayed run)
        status = "interrupted"
    if status in _NO_DATA:
        return f"the child ended without saving coverage ({status})"
    return ""
