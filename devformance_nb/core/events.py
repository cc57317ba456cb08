"""The event protocol: typed events and their JSON-lines encoding.

Children write one JSON object per line to their own events file; the parent
adds its own events (output lines, file start and end, run start and end).
Every event carries ``v`` (the format version), ``kind``, ``run_id``, ``file``
and ``seq``. This module is stdlib only: the pytest plugin imports it inside
every child.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

EVENT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event; ``file`` is the test file's key ('' for run-level events)."""

    kind: ClassVar[str] = ""
    run_id: str = ""
    file: str = ""
    seq: int = 0
    t: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict, with ``v`` and ``kind``."""
        data = asdict(self)
        data["v"] = EVENT_VERSION
        data["kind"] = self.kind
        return data


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    root: str
    files: list[str]
    workers: int
    executor: str
    config: dict[str, Any] = field(default_factory=dict)
    #: where and on what it ran: git commit/branch/dirty, host, python, pid, run_dir, ...
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FileStarted(Event):
    kind: ClassVar[str] = "file_started"
    path: str
    pid: int
    command: list[str]
    #: the worker slot (0 to workers - 1) that runs the file; None in event files written
    #: before slots were recorded, and for a start rebuilt from a file's own events
    worker: int | None = None


@dataclass(frozen=True, kw_only=True)
class FilePlaced(Event):
    """Where a file's child runs when that is another machine's business: a Dask worker.

    Written into the file's events by the launcher side of the Dask executor once the task
    started on a worker (again if a retry moved it); ``pid`` is the child's on that worker.
    """

    kind: ClassVar[str] = "file_placed"
    address: str
    host: str = ""
    pid: int = 0


@dataclass(frozen=True, kw_only=True)
class Collected(Event):
    kind: ClassVar[str] = "collected"
    count: int
    nodeids: list[str]


@dataclass(frozen=True, kw_only=True)
class CollectError(Event):
    """A collection failure inside the child (syntax error, import error, ...)."""

    kind: ClassVar[str] = "collect_error"
    nodeid: str
    message: str


@dataclass(frozen=True, kw_only=True)
class TestPhase(Event):
    """One phase (setup, call, teardown) of one test, as pytest reported it."""

    __test__ = False  # keep pytest from collecting this class
    kind: ClassVar[str] = "test"
    nodeid: str
    phase: str
    outcome: str
    duration: float
    #: pytest's own report category (passed, failed, error, skipped, xfailed, xpassed, or '')
    category: str = ""
    message: str = ""
    #: on the teardown report: the CPU seconds the whole test took (set-up to teardown) and
    #: how much its process's resident memory grew meanwhile, in bytes (None: not measured)
    cpu: float | None = None
    memory_growth: int | None = None
    #: on the teardown report: the test's query budget from its closest
    #: ``@pytest.mark.devformance(max_queries=N)`` marker (None: no marker gave one)
    max_queries: int | None = None


@dataclass(frozen=True, kw_only=True)
class Query(Event):
    """One SQL statement, captured inside the child.

    ``caller`` is the project frame to change (``path:line function``), ``sent_by`` the
    innermost project frame (a database helper, when the project has one), ``stack_hash`` the
    whole project stack (its frames come in a ``stack`` event); all '' when no project code
    issued the statement.
    """

    kind: ClassVar[str] = "query"
    nodeid: str
    phase: str
    qseq: int
    start: float
    duration: float
    sql: str
    vendor: str
    alias: str = ""
    rows: int | None = None
    caller: str = ""
    sent_by: str = ""
    stack_hash: str = ""
    orm: str = ""
    many: bool = False
    params: str | None = None
    #: times the test body was entered again in this phase before this statement (a
    #: hypothesis example, a rerun): statements of different runs are never one loop
    repeat: int = 0
    #: the ORM relation or deferred field this statement loaded lazily (``Author.books``),
    #: '' for any other statement
    relation: str = ""
    #: rows of the result the instance it loaded for came from (0: not a lazy load)
    peers: int = 0
    #: the exact fix the ORM allows (``selectinload(Author.books)``, ``.select_related("author")``)
    fix: str = ""
    #: for a lazy load: where the query that loaded the instance was built (``path:line
    #: function``), the line to change, when the ORM adapter knows it ('' otherwise)
    query_at: str = ""
    #: a page of a paginated read (``LIMIT``/``OFFSET``): ``KEY:PAGE``, hashes of what selects
    #: the listing and of the page itself ('' for any other statement)
    page: str = ""


@dataclass(frozen=True, kw_only=True)
class Stack(Event):
    """The project frames of a stack hash, outermost first, as ``[path, line, function]``;
    written by a child once, before the first statement that names the hash."""

    kind: ClassVar[str] = "stack"
    stack_hash: str
    frames: list[list[Any]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class EagerUnused(Event):
    """An eager load a test asked for and never read: ``relation`` (``Author.books``) was loaded
    by ``option`` (``selectinload(Author.books)``, ``.select_related("author")``) in ``count``
    query executions sent from one stack in one phase, and no row's relation was read before
    the test ended. ``caller``, ``sent_by`` and ``stack_hash`` are those of the query, as for
    a statement; written by the child when the test ends."""

    kind: ClassVar[str] = "eager_unused"
    nodeid: str
    phase: str
    relation: str
    option: str
    orm: str
    count: int = 1
    caller: str = ""
    sent_by: str = ""
    stack_hash: str = ""


@dataclass(frozen=True, kw_only=True)
class CoverageWritten(Event):
    """The child's coverage data: ``data_file`` ('' when none was saved, ``message`` says why)."""

    kind: ClassVar[str] = "coverage"
    data_file: str
    message: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class CoverageRead(Event):
    """The parent read a child's coverage data file (in that file's reader thread).

    ``result`` is a ``run.covdata.CoverageResult`` (None: nothing could be read). Made and
    used in the parent only, never written to an events file: the data file stays the record.
    """

    kind: ClassVar[str] = "coverage_read"
    data_file: str
    result: Any = None


@dataclass(frozen=True, kw_only=True)
class RunCoverage(Event):
    """The run's total coverage, the union of every file's data, read once all files ended.

    ``result`` is a ``run.covdata.CoverageResult``; parent only, like ``CoverageRead``.
    """

    kind: ClassVar[str] = "run_coverage"
    result: Any = None


@dataclass(frozen=True, kw_only=True)
class FileQueries(Event):
    """What a file's statements add to the run, read from its events file when its child ended.

    The statements' own events are not decoded one by one on the live path: DuckDB groups them
    (counts, slow ones, N+1 findings) and the store loads them from ``path``. ``facts`` is a
    ``run.queryfacts.QueryFacts`` of that one file; parent only, like ``CoverageRead``.
    """

    kind: ClassVar[str] = "file_queries"
    facts: Any = None
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class FileDone(Event):
    """Written by the child's plugin when its pytest session ends."""

    kind: ClassVar[str] = "file_done"
    exitstatus: int
    counts: dict[str, int]
    duration: float
    #: the child's own CPU seconds and peak resident memory (bytes), its children included,
    #: as the OS counts them (``getrusage``); None from a child that could not tell
    cpu_user: float | None = None
    cpu_system: float | None = None
    max_rss: int | None = None


@dataclass(frozen=True, kw_only=True)
class Resources(Event):
    """A sample of a running child's process tree, taken by its reader a few times a second."""

    kind: ClassVar[str] = "resources"
    #: CPU since the previous sample, in percent of one core (200 = two cores busy)
    cpu_percent: float
    rss: int
    threads: int
    processes: int
    #: CPU seconds the tree has used so far (processes that ended and were waited for included)
    cpu_user: float
    cpu_system: float


@dataclass(frozen=True, kw_only=True)
class Output(Event):
    kind: ClassVar[str] = "output"
    line: int
    text: str
    stream: str = "out"


@dataclass(frozen=True, kw_only=True)
class FileCrashed(Event):
    """The child ended abnormally: killed by a signal, timed out, stopped, or no ``file_done``."""

    kind: ClassVar[str] = "file_crashed"
    reason: str
    returncode: int | None
    signal: int | None = None
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class FileFinished(Event):
    """Always the last event of a file: its final status, once all output was read."""

    kind: ClassVar[str] = "file_finished"
    status: str
    returncode: int | None
    duration: float


@dataclass(frozen=True, kw_only=True)
class FileCarried(Event):
    """A file a ``--changed`` run does not run: its last result is carried into the run.

    Written by the launcher right after ``run_started``, one per skipped file, so the live
    views show it and the run's totals count it; its rows are copied in the store
    (``store.carry``), not written from the state. ``carried_from`` is the run that really
    ran it, ``status`` and the counts (pytest categories) are that run's, ``reason`` why
    it does not run again.
    """

    kind: ClassVar[str] = "file_carried"
    carried_from: str
    status: str
    reason: str = ""
    tests: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    duration: float | None = None


@dataclass(frozen=True, kw_only=True)
class RunDone(Event):
    kind: ClassVar[str] = "run_done"
    status: str
    duration: float


#: the kinds an events file holds (CoverageRead, RunCoverage and FileQueries live only in the
#: parent)
EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        FileStarted,
        FilePlaced,
        Collected,
        CollectError,
        TestPhase,
        Query,
        Stack,
        EagerUnused,
        CoverageWritten,
        FileDone,
        Resources,
        Output,
        FileCrashed,
        FileFinished,
        FileCarried,
        RunDone,
    )
}

_FIELDS: dict[str, frozenset[str]] = {
    kind: frozenset(f.name for f in fields(cls)) for kind, cls in EVENT_TYPES.items()
}


class EventDecodeError(ValueError):
    """A line of an events file that is not a valid event."""


#: one encoder for every event: ``json.dumps`` with options builds a new one on each call
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(event: Event) -> str:
    """One event as a JSON line (without the newline)."""
    return _ENCODER.encode(event.to_dict())


def from_dict(data: dict[str, Any]) -> Event:
    """Build a typed event from its dict; unknown keys are ignored for forward compatibility."""
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventDecodeError(f"unknown event kind {kind!r}")
    version = data.get("v", EVENT_VERSION)
    if not isinstance(version, int) or version > EVENT_VERSION:
        raise EventDecodeError(
            f"event format v{version} is newer than this devformance_nb (v{EVENT_VERSION}); "
            "upgrade devformance_nb to read it"
        )
    fields_ = dict(data)
    fields_.pop("v", None)
    fields_.pop("kind", None)
    try:  # the fast path: an event of this very version
        return cls(**fields_)
    except TypeError:
        pass
    known = _FIELDS[kind]  # type: ignore[index]
    try:  # a newer minor writer may add fields: keep what we know
        return cls(**{k: v for k, v in fields_.items() if k in known})
    except TypeError as exc:
        raise EventDecodeError(f"bad {kind} event: {exc}") from None


def decode(line: str | bytes) -> Event:
    """Parse one JSON line into a typed event; raises EventDecodeError on bad input."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventDecodeError("an event must be a JSON object")
    return from_dict(data)
