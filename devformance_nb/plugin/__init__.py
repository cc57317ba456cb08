"""The pytest plugin loaded into each child with ``-p devformance_nb.plugin``.

It does nothing unless the launcher set ``DEVFORMANCE_EVENTS`` in the child's
environment, so adding it to a normal ``pytest`` run changes nothing. It is
never registered as an entry point.

PYTEST_DONT_REWRITE: the fork server imports this module before pytest's
assertion rewriter exists; the marker keeps pytest from warning about that in
every child's output (the module has no test assertions to rewrite).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Generator
from types import CodeType, FrameType
from typing import Any

import pytest

from devformance_nb.core.contract import (
    ENV_EVENTS,
    ENV_FILE,
    ENV_OPTIONS,
    ENV_PARENT,
    ENV_RUN_ID,
    ENV_WORKER_INPUT,
    ChildOptions,
)
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.core.events import (
    Collected,
    CollectError,
    CoverageWritten,
    FileDone,
    TestPhase,
)
from devformance_nb.core.rundir import reads_beside
from devformance_nb.plugin.context import TestContext
from devformance_nb.plugin.marker import MARKER_HELP, MarkerError, marker_errors, max_queries_of
from devformance_nb.plugin.reads import ReadsRecorder
from devformance_nb.plugin.usage import TestCost, own_usage

PLUGIN_NAME = "devformance-recorder"
MESSAGE_LIMIT = 2000


def short_message(report: Any) -> str:
    """The crash line of a failed report (e.g. ``AssertionError: ...``), else a capped tail."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        text = str(crash.message)
    elif isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, line, reason)
        text = str(longrepr[2])
    else:
        text = str(longrepr).strip()
        text = "\n".join(text.splitlines()[-8:])
    return text[:MESSAGE_LIMIT]


def _hook_frame() -> FrameType | None:
    """The first frame below the caller that is not this module's (the hook's caller)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == _THIS_FILE:
        frame = frame.f_back
    return frame


def _body_code(item: pytest.Item) -> CodeType | None:
    """The code of the function that runs ``item``'s own body: hypothesis's inner test (run
    once per example) rather than its wrapper, the innermost of ``functools.wraps`` wrappers."""
    func: Any = getattr(item, "obj", None)
    handle = getattr(func, "hypothesis", None)
    func = getattr(handle, "inner_test", None) or func
    # a __wrapped__ cycle or an object that refuses attribute access keeps what we have
    with contextlib.suppress(Exception):
        func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    return code if isinstance(code, CodeType) else None


class DevformancePlugin:
    """Turns pytest's hooks into events in this child's own events file."""

    def __init__(self, writer: EventWriter, options: ChildOptions, config: pytest.Config):
        self.writer = writer
        self.options = options
        #: the session's pytest config (asked how to categorize each report)
        self.config = config
        self.context = TestContext()
        self.started = time.perf_counter()
        self.counts: dict[str, int] = {}
        #: the running test's CPU and memory since its set-up began
        self.cost = TestCost()
        self.capture: Any = None
        #: a covchild.CoverageStart once start_coverage ran (None: coverage not asked for)
        self.coverage_start: Any = None
        #: each running test's budget from its marker, read at set-up, sent at teardown
        self.max_queries: dict[str, int | None] = {}
        #: the project files this child reads (for change-based selection)
        self.reads: ReadsRecorder | None = None

    def start_coverage(self, config: pytest.Config) -> None:
        """Start coverage.py if the launcher asked for it (before the project imports)."""
        if not self.options.coverage or self.coverage_start is not None:
            return
        from devformance_nb.plugin.coverage import start_for_pytest

        self.coverage_start = start_for_pytest(config, self.options)
        if self.coverage_start.message:  # e.g. a broken configuration: the tests run anyway
            sys.stderr.write(f"devformance: {self.coverage_start.message}\n")

    def finish_coverage(self) -> None:
        """Stop coverage, save this child's data file and say where it is (once)."""
        started, self.coverage_start = self.coverage_start, None
        if started is None:
            return
        child = started.coverage
        data_file = child.stop_and_save() if child is not None else ""
        message = started.message or (child.message if child is not None else "")
        notes = [*started.notes, *(child.notes if child is not None else [])]
        self.writer.write(CoverageWritten(data_file=data_file, message=message, notes=notes))
        self.writer.flush()

    def finish_reads(self) -> None:
        """Record the imported project modules and close the reads file (once)."""
        reads, self.reads = self.reads, None
        if reads is not None:
            reads.finish()

    def start_capture(self) -> None:
        """Hook the SQL libraries (only those importable), if capture is on."""
        if self.options.capture_sql:
            from devformance_nb.plugin.capture import start_capture

            self.capture = start_capture(self.writer, self.context, self.options)

    def stop_capture(self) -> None:
        """Undo the SQL hooks."""
        if self.capture is not None:
            self.capture.stop()
            self.capture = None

    def _count(self, category: str) -> None:
        if category:
            self.counts[category] = self.counts.get(category, 0) + 1

    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._count("error")
            self.writer.write(
                CollectError(nodeid=report.nodeid, message=short_message(report) or "error")
            )
            self.writer.flush()

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        """Fail the collection of a module or class holding a bad ``devformance`` marker.

        As ``--strict-markers`` does with an unknown marker: the file's run stops before any
        test, and the report names each bad test and how to write its marker.
        """
        report = yield
        errors = marker_errors(list(report.result)) if report.passed else []
        if not errors:
            return report
        return pytest.CollectReport(
            report.nodeid, "failed", "\n".join(errors), [], sections=report.sections
        )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        nodeids = [item.nodeid for item in session.items]
        self.writer.write(Collected(count=len(nodeids), nodeids=nodeids))
        self.writer.flush()

    def _phase(self, item: pytest.Item, phase: str) -> Generator[None, None, None]:
        if phase == "setup":
            self.cost.start()
        self.context.nodeid = item.nodeid
        self.context.phase = phase
        self.context.floor = _hook_frame()
        self.context.thread = threading.get_ident()
        self.context.body_code = _body_code(item)
        self.context.case = getattr(item, "_testcase", None)  # unittest: its subTests
        coverage = self.coverage_start.coverage if self.coverage_start is not None else None
        if coverage is not None:
            coverage.switch(item.nodeid)  # a no-op unless per-test contexts are on
        try:
            yield
        finally:
            self.context.phase = "between"
            self.context.floor = None
            self.context.body_code = None
            self.context.case = None
            if self.capture is not None:
                self.capture.phase_ended()
                if phase == "teardown":
                    self.capture.test_ended()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            self.max_queries[item.nodeid], wrong = max_queries_of(item), ""
        except MarkerError as exc:  # a marker added after collection (modifyitems)
            self.max_queries[item.nodeid], wrong = None, str(exc)
        yield from self._phase(item, "setup")  # pytest_runtest_setup returns nothing
        if wrong:  # only now: the teardown of every plugin's set-up needs that set-up done
            pytest.fail(wrong, pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from self._phase(item, "call"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        return (yield from self._phase(item, "teardown"))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        config = self.config
        category, _, _ = config.hook.pytest_report_teststatus(report=report, config=config)
        self._count(category)
        message = short_message(report) if report.failed or report.skipped else ""
        self.writer.write(
            TestPhase(
                nodeid=report.nodeid,
                phase=report.when,
                outcome=report.outcome,
                duration=report.duration,
                category=category,
                message=message,
                **(self._teardown_fields(report.nodeid) if report.when == "teardown" else {}),
            )
        )
        self.writer.flush()

    def _teardown_fields(self, nodeid: str) -> dict[str, Any]:
        """What a test's teardown report adds: its cost and its marker's budget."""
        return {**self.cost.stop(), "max_queries": self.max_queries.pop(nodeid, None)}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finish_coverage()
        self.finish_reads()
        self.writer.write(
            FileDone(
                exitstatus=int(exitstatus),
                counts=dict(self.counts),
                duration=time.perf_counter() - self.started,
                **own_usage(),
            )
        )
        self.writer.flush()


_THIS_FILE = _hook_frame.__code__.co_filename


def _watch_parent(parent: int) -> None:
    """End this child's whole process group once the launcher is gone (no orphans)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def events_writer(path: str, run_id: str, file: str) -> EventWriter:
    """The writer of a child's events file, as the plugin opens it.

    Mapped: each statement's line is as durable as a write to the OS (a child killed right
    after keeps it) without a system call per statement, which the SQL capture cannot afford.
    """
    return EventWriter(path, run_id, file, mapped=True)


def _setup(config: pytest.Config) -> DevformancePlugin | None:
    """Create and register the recorder once, if the launcher asked for it.

    Coverage starts before SQL capture and before any conftest file imports the
    project, so lines run at import time count.
    """
    existing = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(existing, DevformancePlugin):
        return existing
    path = os.environ.get(ENV_EVENTS)
    if not path:
        return None
    options = ChildOptions.from_env(os.environ.get(ENV_OPTIONS))
    parent = os.environ.get(ENV_PARENT)
    if parent and parent.isdigit() and os.getpgrp() == os.getpid():  # only as a group leader
        threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True).start()
    writer = events_writer(path, os.environ.get(ENV_RUN_ID, ""), os.environ.get(ENV_FILE, ""))
    plugin = DevformancePlugin(writer, options, config)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    if options.root:
        plugin.reads = ReadsRecorder(reads_beside(path), options.root)
        plugin.reads.install()
    plugin.start_coverage(config)
    plugin.start_capture()
    return plugin


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    """Start recording before the project's conftest files (and modules) import.

    A wrapper's first half runs before every plain implementation, pytest-cov's
    included, which is what lets coverage switch a ``--cov`` in addopts off.
    """
    _setup(early_config)
    _take_worker_input(early_config)
    return (yield)


def _take_worker_input(config: pytest.Config) -> None:
    """Be the xdist worker of this child's slot: ``config.workerinput`` as xdist sets it.

    Set before any conftest loads, so their ``pytest_configure`` sees it as in a real
    worker. Not when this child runs xdist itself (``-n`` in its arguments): it is then
    xdist's controller, which must not look like a worker.
    """
    text = os.environ.get(ENV_WORKER_INPUT)
    if not text or hasattr(config, "workerinput"):
        return
    if getattr(config.known_args_namespace, "numprocesses", None):
        return
    try:
        workerinput = json.loads(text)
    except ValueError:
        return
    if isinstance(workerinput, dict):
        config.workerinput = workerinput  # type: ignore[attr-defined]
        config.workeroutput = {}  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    """Register the recorder when the launcher asked for it (and only then).

    The ``devformance`` marker is registered either way, so a ``--strict-markers`` run
    accepts tests that carry it.
    """
    config.addinivalue_line("markers", MARKER_HELP)
    _setup(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop capture, flush and close the events file."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(plugin, DevformancePlugin):
        plugin.finish_coverage()  # a session that never finished still saves its data
        plugin.finish_reads()
        plugin.stop_capture()
        plugin.writer.close()
