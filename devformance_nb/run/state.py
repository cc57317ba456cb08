"""Run state: what the single launcher loop knows about a run, built only from events.

Only the loop thread calls ``RunState.apply`` (through the dispatcher); observers read the
state it passes them. ``apply`` is a pure fold: no I/O, no clock, no threads (coverage data is
read elsewhere and arrives as events). Replaying a run directory through ``apply`` gives the
same state, which is how ``devformance ingest`` works.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from devformance_nb.core import events as ev
from devformance_nb.logic.detection import NPlusOneDetector, NPlusOneFinding
from devformance_nb.logic.eager import UnusedEagerLoad, unused_eager_load
from devformance_nb.logic.slow import SlowQuery, find_slow
from devformance_nb.run.runcoverage import FileCoverage, FileOutcome
from devformance_nb.run.samples import SampleHistory

#: statuses a file can end with, in the order the UI sorts problems first
FILE_FINAL = (
    "error", "crashed", "timeout", "failed", "stopped", "interrupted", "empty", "passed", "carried"
)  # fmt: skip
FILE_PROBLEMS = frozenset({"error", "crashed", "timeout", "failed"})
#: pytest exit status -> file status, when the child ended normally
_EXIT_STATUS = {0: "passed", 1: "failed", 2: "error", 3: "error", 4: "error", 5: "empty"}
#: run status -> process exit code, following pytest's numbering
_RUN_EXIT = {"passed": 0, "failed": 1, "stopped": 2, "interrupted": 2, "empty": 5}


def exit_code(run_status: str) -> int:
    """The exit code for a run that ended with ``run_status`` (pytest's numbering)."""
    return _RUN_EXIT.get(run_status, 3)


def file_status(
    exitstatus: int | None, returncode: int | None, *, stopped: bool, timed_out: bool
) -> str:
    """Final status of a file from how its child ended.

    ``exitstatus`` is pytest's own (from ``file_done``), None when the child
    never got that far; ``returncode`` is the process's (negative: a signal).
    """
    if timed_out:
        return "timeout"
    if stopped:
        return "stopped"
    if exitstatus is None or returncode is None or returncode < 0:
        return "crashed"
    return _EXIT_STATUS.get(exitstatus, "error")


def outcome_of(categories: dict[str, str]) -> str:
    """One test's outcome from pytest's per-phase categories (setup, call, teardown)."""
    setup = categories.get("setup", "")
    call = categories.get("call", "")
    outcome = call or setup or "error"
    if setup == "error" or (categories.get("teardown") == "error" and outcome == "passed"):
        return "error"
    return outcome


@dataclass
class TestRecord:
    """One test's phases as they arrive."""

    __test__ = False
    nodeid: str
    file: str
    categories: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    message: str = ""
    queries: int = 0
    query_time: float = 0.0
    #: CPU seconds and resident-memory growth (bytes), measured in the child
    cpu: float | None = None
    memory_growth: int | None = None
    #: the budget of the test's own ``devformance`` marker (None: none)
    max_queries: int | None = None

    @property
    def outcome(self) -> str:
        return outcome_of(self.categories)

    @property
    def duration(self) -> float:
        return sum(self.durations.values())


@dataclass
class FileState:
    """Everything known about one test file of the run."""

    key: str
    path: str = ""
    status: str = "pending"
    pid: int | None = None
    #: the worker slot that ran it (None: not started, or a run recorded before slots were)
    worker: int | None = None
    #: the Dask worker that ran it ('' for a child of this machine)
    worker_address: str = ""
    started: float | None = None
    finished: float | None = None
    returncode: int | None = None
    exitstatus: int | None = None
    collected: int | None = None
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    tests: dict[str, TestRecord] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    crash: str = ""
    output_lines: int = 0
    #: the last line of its output with any text on it (the terminal view shows it)
    last_output: str = ""
    queries: int = 0
    query_time: float = 0.0
    slow: list[SlowQuery] = field(default_factory=list)
    n_plus_one: list[NPlusOneFinding] = field(default_factory=list)
    #: eager loads its tests asked for and never read
    unused_eager: list[UnusedEagerLoad] = field(default_factory=list)
    #: percent of the project's code this file alone covers (None: not measured)
    coverage: float | None = None
    coverage_info: FileCoverage | None = None
    #: the child's process tree now (while it runs, from its reader's samples)
    cpu_percent: float | None = None
    rss: int | None = None
    #: the most it used: resident bytes, threads and processes at once
    peak_rss: int | None = None
    peak_threads: int | None = None
    peak_processes: int | None = None
    #: CPU seconds the child used (its own count at the end; the samples' if it died)
    cpu_user: float | None = None
    cpu_system: float | None = None
    #: whether they are the child's own count (samples no longer change them)
    cpu_counted: bool = False
    #: the samples over the file's life, in a few dozen points (the live view's sparkline)
    samples: SampleHistory = field(default_factory=SampleHistory)
    #: status 'carried' (a --changed run did not run it): the run whose result it shows,
    #: that result's status and duration
    carried_from: str | None = None
    carried_status: str = ""
    carried_duration: float | None = None
    #: in a --changed run, why the file ran again, or why it did not (carried)
    reason: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None:  # a carried file: how long it took in the run that ran it
            return self.carried_duration
        return (self.finished or time.time()) - self.started

    @property
    def progress(self) -> float:
        """Fraction of collected tests finished (1.0 once the file ended)."""
        if self.status not in ("pending", "running"):
            return 1.0
        if not self.collected:
            return 0.0
        return min(1.0, self.done / self.collected)

    @property
    def is_finished(self) -> bool:
        return self.status not in ("pending", "running")


@dataclass
class RunState:
    """A whole run: its files by key, its status and its timings."""

    run_id: str
    root: str = ""
    workers: int = 0
    executor: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileState] = field(default_factory=dict)
    status: str = "pending"
    started: float | None = None
    finished: float | None = None
    slow_query_ms: float = 100.0
    detector: NPlusOneDetector = field(default_factory=NPlusOneDetector)
    #: the union of every file's coverage, read when the run ends (a covdata.CoverageResult)
    coverage_result: Any = None

    @property
    def coverage(self) -> float | None:
        """The run's total coverage percent, once the run ended (None: not measured)."""
        total = getattr(self.coverage_result, "total", None)
        return total.percent if total is not None else None

    def apply(self, event: ev.Event) -> FileState | None:
        """Fold one event into the state; returns the file it touched, if any."""
        handler = _HANDLERS.get(event.kind)
        if handler is None:
            return None
        touched: FileState | None = handler(self, event)
        return touched

    def coverage_outcomes(self) -> list[FileOutcome]:
        """How each file ended and where its coverage data is, for the run total."""
        return [
            FileOutcome(
                key=fs.key,
                status=fs.status,
                started=fs.started is not None,
                data_file=fs.coverage_info.data_file if fs.coverage_info else "",
                message=fs.coverage_info.message if fs.coverage_info else "",
            )
            for fs in self.files.values()
        ]

    def file(self, key: str) -> FileState:
        """The state of file ``key``, created on first mention."""
        state = self.files.get(key)
        if state is None:
            state = self.files[key] = FileState(key=key)
        return state

    def totals(self) -> dict[str, int]:
        """Summed pytest categories over all files, plus ``tests`` (tests finished)."""
        out: dict[str, int] = {"tests": 0}
        for fs in self.files.values():
            out["tests"] += fs.done
            for category, n in fs.counts.items():
                out[category] = out.get(category, 0) + n
        return out

    def status_counts(self) -> dict[str, int]:
        """How many files are in each status."""
        out: dict[str, int] = {}
        for fs in self.files.values():
            out[fs.status] = out.get(fs.status, 0) + 1
        return out

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def final_status(self, stopped: bool) -> str:
        """The run's status once every file ended."""
        if stopped:
            return "stopped"
        statuses = {fs.carried_status or fs.status for fs in self.files.values()}
        if statuses & FILE_PROBLEMS:
            return "failed"
        if statuses <= {"empty"}:
            return "empty"
        return "passed"


def _run_started(state: RunState, e: ev.Event) -> None:
    assert isinstance(e, ev.RunStarted)
    state.root, state.workers, state.executor = e.root, e.workers, e.executor
    state.config, state.meta = dict(e.config), dict(e.meta)
    state.slow_query_ms = float(e.config.get("slow_query_ms", 100.0))
    state.detector = NPlusOneDetector(
        min_count=int(e.config.get("n_plus_one_min", 2)),
        allow=list(e.config.get("allow_n_plus_one", [])),
    )
    state.started, state.status = e.t, "running"
    because = state.meta.get("selected_because") or {}
    for key in e.files:
        state.file(key).reason = str(because.get(key, ""))


def _file_started(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.FileStarted)
    fs = state.file(e.file)
    fs.path, fs.pid, fs.started, fs.status, fs.worker = e.path, e.pid, e.t, "running", e.worker
    return fs


def _file_placed(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.FilePlaced)
    fs = state.file(e.file)
    fs.worker_address, fs.pid = e.address, e.pid
    return fs


def _collected(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.Collected)
    fs = state.file(e.file)
    fs.collected = e.count
    return fs


def _collect_error(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.CollectError)
    fs = state.file(e.file)
    fs.errors.append(e.message)
    fs.counts["error"] = fs.counts.get("error", 0) + 1
    return fs


def _test_phase(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.TestPhase)
    fs = state.file(e.file)
    record = fs.tests.get(e.nodeid)
    if record is None:
        record = fs.tests[e.nodeid] = TestRecord(nodeid=e.nodeid, file=e.file)
    record.categories[e.phase] = e.category
    record.durations[e.phase] = e.duration
    if e.message and not record.message:
        record.message = e.message
    if e.category:
        fs.counts[e.category] = fs.counts.get(e.category, 0) + 1
    if e.phase == "teardown":
        record.cpu, record.memory_growth = e.cpu, e.memory_growth
        record.max_queries = e.max_queries
        fs.done += 1
        fs.n_plus_one += state.detector.finish_test(e.file, e.nodeid)
    return fs


def _query(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.Query)
    fs = state.file(e.file)
    fs.queries += 1
    fs.query_time += e.duration
    record = fs.tests.get(e.nodeid)
    if record is None and e.nodeid:
        record = fs.tests[e.nodeid] = TestRecord(nodeid=e.nodeid, file=e.file)
    if record is not None:
        record.queries += 1
        record.query_time += e.duration
    if e.duration * 1000.0 >= state.slow_query_ms:
        fs.slow += find_slow([e], state.slow_query_ms)
    fs.n_plus_one += state.detector.add(e)
    return fs


def _file_queries(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.FileQueries)
    fs = state.file(e.file)
    e.facts.apply(fs)  # counts, per-test counts, slow statements, N+1 findings
    return fs


def _eager_unused(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.EagerUnused)
    fs = state.file(e.file)
    fs.unused_eager.append(unused_eager_load(e))
    return fs


def _file_done(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.FileDone)
    fs = state.file(e.file)
    fs.exitstatus = e.exitstatus
    if e.cpu_user is not None:
        fs.cpu_user, fs.cpu_system, fs.cpu_counted = e.cpu_user, e.cpu_system, True
    if e.max_rss is not None:  # the OS's own peak: samples can miss a short spike
        fs.peak_rss = max(fs.peak_rss or 0, e.max_rss)
    return fs


def _resources(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.Resources)
    fs = state.file(e.file)
    fs.cpu_percent, fs.rss = e.cpu_percent, e.rss
    fs.peak_rss = max(fs.peak_rss or 0, e.rss)
    fs.peak_threads = max(fs.peak_threads or 0, e.threads)
    fs.peak_processes = max(fs.peak_processes or 0, e.processes)
    fs.samples.add(e.t, e.cpu_percent, e.rss)
    if not fs.cpu_counted:  # the child's own count, at its end, is exact: keep it
        fs.cpu_user, fs.cpu_system = e.cpu_user, e.cpu_system
    return fs


def _output(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.Output)
    fs = state.file(e.file)
    fs.output_lines = max(fs.output_lines, e.line)
    if e.text.strip():
        fs.last_output = e.text
    return fs


def _file_crashed(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.FileCrashed)
    fs = state.file(e.file)
    fs.crash = e.message or e.reason
    return fs


def _coverage(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.CoverageWritten)
    fs = state.file(e.file)
    fs.coverage_info = FileCoverage(e.data_file, e.message, list(e.notes))
    return fs


def _coverage_read(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.CoverageRead)
    fs = state.file(e.file)
    info = fs.coverage_info
    if info is None or info.data_file != e.data_file or e.result is None:
        return fs  # a read of data the child never reported: nothing to attach it to
    info.result = e.result
    total = e.result.total
    fs.coverage = total.percent if total is not None else None
    return fs


def _run_coverage(state: RunState, e: ev.Event) -> None:
    assert isinstance(e, ev.RunCoverage)
    state.coverage_result = e.result


def _file_finished(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.FileFinished)
    fs = state.file(e.file)
    fs.n_plus_one += state.detector.finish_file(e.file)
    fs.status, fs.returncode, fs.finished = e.status, e.returncode, e.t
    fs.cpu_percent = fs.rss = None  # nothing runs any more
    if fs.started is None:
        fs.started = e.t - e.duration
    return fs


def _file_carried(state: RunState, e: ev.Event) -> FileState:
    assert isinstance(e, ev.FileCarried)
    fs = state.file(e.file)
    fs.status, fs.carried_from, fs.carried_status = "carried", e.carried_from, e.status
    fs.carried_duration, fs.reason = e.duration, e.reason
    fs.collected = fs.done = e.tests
    fs.counts = dict(e.counts)
    return fs


def _run_done(state: RunState, e: ev.Event) -> None:
    assert isinstance(e, ev.RunDone)
    state.status, state.finished = e.status, e.t
    for fs in state.files.values():
        if fs.status == "pending":
            fs.status = "not_run"
        elif fs.status == "running":  # the parent died mid-file (replayed runs)
            fs.status = "interrupted"


_HANDLERS: dict[str, Any] = {
    "run_started": _run_started,
    "file_started": _file_started,
    "file_placed": _file_placed,
    "collected": _collected,
    "collect_error": _collect_error,
    "test": _test_phase,
    "query": _query,
    "file_queries": _file_queries,
    "eager_unused": _eager_unused,
    "file_done": _file_done,
    "resources": _resources,
    "coverage": _coverage,
    "coverage_read": _coverage_read,
    "run_coverage": _run_coverage,
    "output": _output,
    "file_crashed": _file_crashed,
    "file_finished": _file_finished,
    "file_carried": _file_carried,
    "run_done": _run_done,
}


class Observer(Protocol):
    """Anything the launcher loop tells about a run (store writer, views, your own).

    All three are called from the one loop thread, never concurrently.
    """

    def on_event(self, event: ev.Event, state: RunState) -> None:
        """One event, already folded into ``state``."""

    def tick(self, state: RunState) -> None:
        """Called about 4 times a second while the run goes (time to redraw)."""

    def close(self, state: RunState) -> None:
        """The run ended (``state.status`` is final); release resources."""
