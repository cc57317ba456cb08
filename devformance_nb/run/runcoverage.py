"""Coverage of a run as it goes: each file's own data file, then the union (runtime layer).

The loop folds a child's ``coverage`` event into its file's state by reading that
child's data file through coverage.py's API (covdata), so the live stream carries
each file's coverage when it finishes; the run total is read once, at the end,
from every child's data file together, which is what ``coverage combine`` and
``coverage report`` give. Crashed children have no data file: the total says how
many files contributed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devformance_nb.logic.discovery import TestFile
from devformance_nb.run.executor import Job

if TYPE_CHECKING:
    from devformance_nb.run.covdata import CoverageResult
    from devformance_nb.run.state import FileState, RunState


@dataclass
class FileCoverage:
    """What one child reported about its coverage, and what its data file holds."""

    data_file: str = ""
    message: str = ""
    notes: list[str] = field(default_factory=list)
    result: CoverageResult | None = None


#: results read ahead by reader threads, by data file (taken by the loop in read_file)
_READ_AHEAD: dict[str, CoverageResult] = {}
_READ_AHEAD_LOCK = threading.Lock()


def read_ahead(data_file: str, root: Path, contexts: bool) -> None:
    """Read a child's data file in the calling (reader) thread, for the loop to pick up.

    Reading takes tens of milliseconds per file through coverage's API; done
    here, in the file's own worker thread, it never holds up the loop (and with
    it the live view and the other files' events).
    """
    from devformance_nb.run import covdata

    result = covdata.read_test_file(
        data_file, root, config_file=covdata.config_file_for(root), contexts=contexts
    )
    with _READ_AHEAD_LOCK:
        _READ_AHEAD[data_file] = result


def measuring(state: RunState) -> bool:
    """Whether the run asked for coverage."""
    return bool(state.config.get("coverage"))


def read_file(state: RunState, fs: FileState) -> None:
    """Read ``fs``'s data file into ``fs.coverage_info`` and set ``fs.coverage`` (percent)."""
    from devformance_nb.run import covdata

    info = fs.coverage_info
    if info is None or not info.data_file:
        return
    with _READ_AHEAD_LOCK:
        info.result = _READ_AHEAD.pop(info.data_file, None)
    if info.result is None:  # a replayed run: nobody read ahead
        info.result = covdata.read_test_file(
            info.data_file,
            Path(state.root),
            config_file=_config_file(state),
            contexts=bool(state.config.get("coverage_contexts")),
        )
    total = info.result.total
    fs.coverage = total.percent if total is not None else None


def read_run(state: RunState) -> CoverageResult | None:
    """The run total: the union of every started file's data file (None if not measured)."""
    from devformance_nb.run import covdata

    if not measuring(state) or not state.root:
        return None
    expected: list[str] = []
    reasons: dict[str, str] = {}
    for fs in state.files.values():
        if fs.started is None and fs.status in ("pending", "not_run"):
            continue  # never ran: it was not expected to contribute
        info = fs.coverage_info or FileCoverage()
        path = info.data_file or expected_data_file(state, fs.key)
        expected.append(path)
        reasons[path] = info.message or _reason(fs)
    if not expected:
        return None
    return covdata.read_union(
        expected, Path(state.root), config_file=_config_file(state), reasons=reasons
    )


def expected_data_file(state: RunState, key: str) -> str:
    """Where the child of file ``key`` writes its data (the executor's naming)."""
    run_dir = Path(str(state.meta.get("run_dir") or ""))
    job = Job(state.run_id, TestFile(key, Path(key)), Path(state.root), run_dir)
    return str(job.coverage_path)


def _reason(fs: FileState) -> str:
    if fs.status in ("crashed", "timeout", "interrupted", "stopped"):
        return f"the child ended without saving coverage ({fs.status})"
    return ""


def _config_file(state: RunState) -> Any:
    from devformance_nb.run import covdata

    if state.coverage_config is None:  # found once per run: the children all used the same
        state.coverage_config = covdata.config_file_for(Path(state.root))
    return state.coverage_config
