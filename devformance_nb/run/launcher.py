"""The launcher: worker threads run files; one loop owns the run state and calls observers.

Worker threads only enqueue events. The loop (``Launcher.run``) is the single
place where run state changes and observers are called, so observers never
need locks.
"""

from __future__ import annotations

import os
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.executor import Executor, Job
from devformance_nb.run.nodes import NodeController, NodeInputs, local_inputs
from devformance_nb.run.queryfacts import QueryFacts, read_facts
from devformance_nb.run.reader import FileReader
from devformance_nb.run.runcoverage import read_run
from devformance_nb.run.state import Observer, RunState

#: how often observers get ``tick`` (the UI redraws at most this often)
TICK_SECONDS = 0.25
#: parent events kept on disk; output lines live in each file's log instead
#: the parent's own events kept in the run's journal (the children's are in their own files):
#: what ``ingest`` needs to rebuild the run's rows from its directory
_DURABLE = frozenset(
    {
        "run_started",
        "file_carried",
        "file_started",
        "resources",
        "file_crashed",
        "file_finished",
        "run_done",
    }
)


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus random hex."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class LaunchPlan:
    """What to run and how."""

    run_id: str
    root: Path
    run_dir: RunDir
    files: Sequence[TestFile]
    workers: int
    timeout: float | None = None
    pytest_args: tuple[str, ...] = ()
    options: ChildOptions = field(default_factory=ChildOptions)
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    python: str = sys.executable
    #: each slot's pytest-xdist ``workerinput`` (``run.nodes``): "none" (xdist is not
    #: installed: the variables only), "local" (xdist's own, built here) or "controller"
    #: (a stand-in controller process runs the project's controller-side hooks)
    worker_inputs: str = "none"
    #: the files a --changed run does not run, told to the observers after ``run_started``
    carried: Sequence[ev.FileCarried] = ()


def run_coverage_event(state: RunState) -> ev.RunCoverage | None:
    """Read the run's total coverage once every file ended (None: coverage was not asked for).

    Reading is I/O: it happens here, between the last file's events and ``run_done``, and
    its result is folded into the state as an event like any other.
    """
    if not state.config.get("coverage") or not state.root:
        return None
    run_dir = RunDir.at(str(state.meta.get("run_dir") or ""))
    result = read_run(Path(state.root), run_dir, state.coverage_outcomes())
    return ev.RunCoverage(run_id=state.run_id, result=result)


class _WorkerDone:
    """Sentinel a worker thread enqueues when it has no more files to run."""


class Launcher:
    """Runs a plan with an executor and reports to observers; ``run`` blocks until done."""

    def __init__(self, plan: LaunchPlan, executor: Executor, observers: Sequence[Observer] = ()):
        self.plan = plan
        self.executor = executor
        self.dispatcher = Dispatcher(RunState(run_id=plan.run_id), observers)
        self._queue: queue.SimpleQueue[ev.Event | _WorkerDone] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._todo = list(plan.files)
        self._todo_lock = threading.Lock()
        self._seq = 0
        self._nodes = NodeInputs()
        self.done = threading.Event()

    @property
    def state(self) -> RunState:
        """The run's state (changed by the loop thread only)."""
        return self.dispatcher.state

    @property
    def observers(self) -> list[Observer]:
        """Who hears about the run, in order (the store writer first)."""
        return self.dispatcher.observers

    @property
    def observer_errors(self) -> list[str]:
        """Tracebacks of observer calls that raised (the run went on without them)."""
        return self.dispatcher.errors

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the run to stop: no new files start, running children are killed. Thread-safe."""
        self._stop.set()

    def run(self) -> RunState:
        """Run every file and return the final state (call from the loop's own thread)."""
        self.plan.run_dir.create()
        journal = EventWriter(self.plan.run_dir.journal, self.plan.run_id, "", batch=1)
        controller: NodeController | None = None
        try:
            controller = self._start_nodes()
            self._deliver(self._run_started(), journal)
            for carried in self.plan.carried:
                self._deliver(carried, journal)
            threads = [self._start_worker(i) for i in range(self.plan.workers)]
            self._loop(len(threads), journal)
            for thread in threads:
                thread.join()
            if controller is not None:
                controller.close()  # its nodes go down once every file has ended
                controller = None
            if (total := run_coverage_event(self.state)) is not None:
                self._deliver(total, journal)
            done = ev.RunDone(
                status=self.state.final_status(self.stopping),
                duration=time.time() - (self.state.started or time.time()),
            )
            self._deliver(done, journal)
        finally:
            if controller is not None:  # the run failed: the controller must not linger
                controller.close()
            journal.close()
            self.executor.close()
            self.dispatcher.close()
            self.done.set()
        return self.state

    def _run_started(self) -> ev.RunStarted:
        plan = self.plan
        return ev.RunStarted(
            root=os.fspath(plan.root),
            files=[f.key for f in plan.files],
            workers=plan.workers,
            executor=self.executor.name,
            config=plan.config,
            meta={**plan.meta, "run_dir": os.fspath(plan.run_dir), **self._nodes.meta()},
        )

    def _start_nodes(self) -> NodeController | None:
        """Each slot's ``workerinput``: built here, or by the stand-in xdist controller
        (started here and waited for; ended by ``run`` when the files are done)."""
        plan = self.plan
        if plan.worker_inputs == "local":
            self._nodes = local_inputs(plan.workers, plan.run_id, list(sys.argv))
        if plan.worker_inputs != "controller":
            return None
        folders = [f.path.parent for f in plan.files]
        controller = NodeController(
            plan.root, plan.python, plan.workers, plan.run_id, plan.pytest_args, folders
        )
        self._nodes = controller.inputs()
        return controller

    def _start_worker(self, index: int) -> threading.Thread:
        thread = threading.Thread(
            target=self._work, args=(index,), name=f"devformance-worker-{index}", daemon=True
        )
        thread.start()
        return thread

    def _next_file(self) -> TestFile | None:
        with self._todo_lock:
            if self._stop.is_set() or not self._todo:
                return None
            return self._todo.pop(0)

    def _work(self, slot: int) -> None:
        """Run the slot's files one after another; each file's reading (``FileReader.finish``)
        goes on beside the slot's next child, at most one file behind it."""
        finishing: threading.Thread | None = None
        try:
            while (test_file := self._next_file()) is not None:
                job = Job(
                    run_id=self.plan.run_id,
                    test_file=test_file,
                    root=self.plan.root,
                    run_dir=self.plan.run_dir,
                    pytest_args=self.plan.pytest_args,
                    options=self.plan.options,
                    python=self.plan.python,
                    worker=slot,
                    workers=self.plan.workers,
                    worker_input=self._nodes.for_slot(slot),
                )
                reader = FileReader(
                    job, self._queue.put, self._stop, self.plan.timeout, self._statements
                )
                status = reader.run_child(self.executor)
                if finishing is not None:
                    finishing.join()
                finishing = threading.Thread(
                    target=reader.finish,
                    args=(status,),
                    name=f"devformance-reading-{slot}",
                    daemon=True,
                )
                finishing.start()
        finally:
            if finishing is not None:
                finishing.join()
            self._queue.put(_WorkerDone())

    def _statements(self, path: Path) -> QueryFacts:
        """A finished file's statements, grouped by DuckDB with the run's detection settings
        (in the file's reader thread: decoding them one by one in this process would compete
        with the children for the cores)."""
        config = self.plan.config
        return read_facts(
            [path],
            float(config.get("slow_query_ms", 100.0)),
            int(config.get("n_plus_one_min", 2)),
            list(config.get("allow_n_plus_one", [])),
            threads=1,
        )

    def _loop(self, workers: int, journal: EventWriter) -> None:
        last_tick = time.monotonic()
        while workers:
            try:
                item = self._queue.get(timeout=TICK_SECONDS)
            except queue.Empty:
                item = None
            except KeyboardInterrupt:  # Ctrl-C in the CLI: stop cleanly, keep what finished
                self.stop()
                continue
            if isinstance(item, _WorkerDone):
                workers -= 1
            elif item is not None:
                self._stop_on_interrupt(self._deliver, item, journal)
            if time.monotonic() - last_tick >= TICK_SECONDS:
                last_tick = time.monotonic()
                self._stop_on_interrupt(self.dispatcher.tick)

    def _stop_on_interrupt(self, step: Callable[..., object], *args: object) -> None:
        # Ctrl-C lands wherever the loop is: while an observer draws or writes (a terminal
        # view) as well as while it waits, and it stops the run the same way in both
        try:
            step(*args)
        except KeyboardInterrupt:
            self.stop()

    def _deliver(self, event: ev.Event, journal: EventWriter) -> None:
        if event.kind in _DURABLE:
            self._seq += 1
            event = replace(event, run_id=self.plan.run_id, seq=self._seq, t=event.t or time.time())
            journal.append(event)
        self.dispatcher.deliver(event)
