"""The contract between the launcher and each pytest child: what the parent tells a child.

The launcher sets these environment variables for every child; the plugin reads them. The
plugin does nothing in a pytest process that lacks ``ENV_EVENTS``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

#: path of the child's own events file (JSON lines)
ENV_EVENTS = "DEVFORMANCE_EVENTS"
#: the run's id, stamped on every event
ENV_RUN_ID = "DEVFORMANCE_RUN_ID"
#: the test file's key (its path relative to the project root)
ENV_FILE = "DEVFORMANCE_FILE"
#: the plugin's settings: a ChildOptions as JSON (SQL capture and coverage)
ENV_OPTIONS = "DEVFORMANCE_OPTIONS"
#: the launcher's pid: a child whose launcher is gone ends itself
ENV_PARENT = "DEVFORMANCE_PARENT_PID"
#: the fork server's warm-up settings (JSON: preload, root, coverage, and the imports a
#: restarted server leaves to the children)
ENV_FORKSERVER_WARM = "DEVFORMANCE_FORKSERVER_WARM"
#: this child's pytest-xdist ``workerinput`` as JSON (set only when pytest-xdist is installed)
ENV_WORKER_INPUT = "DEVFORMANCE_WORKER_INPUT"

#: what pytest-xdist sets in each of its workers, and devformance in each child: the worker
#: slot running the file (``gw0``, ``gw1``, ...), how many slots there are, and the run's id
XDIST_WORKER = "PYTEST_XDIST_WORKER"
XDIST_WORKER_COUNT = "PYTEST_XDIST_WORKER_COUNT"
XDIST_TESTRUNUID = "PYTEST_XDIST_TESTRUNUID"
#: the pid of the devformance child itself, set by its plugin: a process that inherits it with
#: another pid (a pytest-xdist worker the child's own ``-n`` started) is not the child
ENV_CHILD_PID = "DEVFORMANCE_CHILD_PID"
#: the node controller's settings: where to write the workers' inputs, and how many workers
ENV_NODES_OUT = "DEVFORMANCE_NODES_OUT"
ENV_NODES = "DEVFORMANCE_NODES"


def worker_name(slot: int) -> str:
    """pytest-xdist's name of worker ``slot``: ``gw0``, ``gw1``, ..."""
    return f"gw{slot}"


@dataclass(frozen=True)
class ChildOptions:
    """The plugin's settings for one child, sent as JSON in ``ENV_OPTIONS``.

    The launcher builds one per run from the Config and completes it per file
    (``root``, ``coverage_data``); the plugin decodes it once with ``from_env``. The
    defaults are what a child does when told nothing: capture SQL, measure no coverage.
    """

    capture_sql: bool = True
    #: record parameter values with each statement (they may hold personal data)
    capture_params: bool = False
    coverage: bool = False
    #: what coverage measures (None: the project's coverage config, else its packages)
    coverage_source: tuple[str, ...] | None = None
    #: record which test ran each line (coverage.py's dynamic contexts)
    coverage_contexts: bool = False
    #: the project root: call sites are reported relative to it
    root: str = ""
    #: this child's own coverage data file ("" while coverage is off)
    coverage_data: str = ""

    def to_env(self) -> str:
        """The value of ``ENV_OPTIONS``: these options as a JSON object."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str | None) -> ChildOptions:
        """Options decoded from ``ENV_OPTIONS`` (empty or absent: the defaults).

        Keys this version does not know are ignored: a launcher of an older or
        newer version must not crash the child. Raises ValueError if ``text`` is
        not a JSON object.
        """
        data = json.loads(text) if text else {}
        if not isinstance(data, dict):
            raise ValueError(f"{ENV_OPTIONS} must be a JSON object, got {text!r}")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("coverage_source") is not None:  # JSON has lists, the options a tuple
            values["coverage_source"] = tuple(str(s) for s in values["coverage_source"])
        return cls(**values)


def base_worker_input(slot: int, count: int, run_id: str, argv: list[str]) -> dict[str, object]:
    """The ``workerinput`` pytest-xdist's controller gives worker ``slot`` before any plugin's
    ``pytest_configure_node`` hook adds to it."""
    return {
        "workerid": worker_name(slot),
        "workercount": count,
        "testrunuid": run_id,
        "mainargv": list(argv),
    }
