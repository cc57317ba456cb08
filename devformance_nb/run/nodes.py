"""Worker identities for a run's children, the way pytest-xdist gives them to its workers.

Every child gets ``PYTEST_XDIST_WORKER`` (``gw0``, ``gw1``, ...: the slot running it),
``PYTEST_XDIST_WORKER_COUNT`` and ``PYTEST_XDIST_TESTRUNUID``. When pytest-xdist is
installed, each child is also an xdist worker (``config.workerinput``) whose input comes
from :class:`NodeController`: one pytest process per run, set up as xdist's controller, that
runs the controller-side hooks (see ``devformance_nb.plugin.nodes``). Two files running at
once then never share what xdist workers would not share: a scratch folder, a test database.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devformance_nb.core.contract import ENV_NODES, ENV_NODES_OUT, ENV_RUN_ID, base_worker_input

#: how long the controller may take to set itself up before children start without it
START_TIMEOUT = 120.0
#: how long it may take to take its nodes down at the end of the run
STOP_TIMEOUT = 60.0
#: conftest folders named on its command line at most (the first ones found)
MAX_FOLDERS = 200
_POLL = 0.05


@dataclass
class NodeInputs:
    """What the controller produced: one ``workerinput`` per slot, or None, and why not."""

    inputs: list[dict[str, object]] | None = None
    problems: list[str] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        """What the run records about it: the problems, when there were any."""
        return {"xdist_nodes": self.problems} if self.problems else {}

    def for_slot(self, slot: int) -> dict[str, object] | None:
        """Slot ``slot``'s input (None: no xdist, or the controller failed)."""
        if self.inputs is None or slot >= len(self.inputs):
            return None
        return self.inputs[slot]


def xdist_installed(python: str) -> bool:
    """Whether pytest-xdist is importable by the children's interpreter (another one: assume
    so, and let the controller find out)."""
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        return True
    try:
        return importlib.util.find_spec("xdist") is not None
    except (ImportError, ValueError):
        return False


def local_inputs(workers: int, run_id: str, argv: list[str]) -> NodeInputs:
    """What xdist's controller gives each slot when no plugin adds to it (no process needed)."""
    count = max(workers, 1)
    return NodeInputs([base_worker_input(slot, count, run_id, argv) for slot in range(count)])


class NodeController:
    """The run's stand-in xdist controller process: start, read the inputs, close at the end."""

    def __init__(
        self,
        root: Path,
        python: str,
        workers: int,
        run_id: str,
        pytest_args: Sequence[str] = (),
        folders: Sequence[Path] = (),
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="devformance-nodes-")
        self._out = Path(self._tmp.name) / "inputs.json"
        self._log = Path(self._tmp.name) / "output.txt"
        env = {
            **os.environ,
            ENV_NODES_OUT: os.fspath(self._out),
            ENV_NODES: str(max(workers, 1)),
            ENV_RUN_ID: run_id,
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            python,
            "-m",
            "pytest",
            "-p",
            "devformance_nb.plugin.nodes",
            "-p",
            "no:cacheprovider",
            *pytest_args,
            "-s",  # stdin stays the launcher's pipe: closing it ends the run
            "-q",
            *[os.fspath(f) for f in list(dict.fromkeys(folders))[:MAX_FOLDERS]],
        ]
        with open(self._log, "wb") as log:  # a file, not a pipe: its output never blocks it
            self.proc = subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def inputs(self, timeout: float = START_TIMEOUT) -> NodeInputs:
        """Wait for the inputs (polling with a deadline); a failure gives no inputs and why."""
        deadline = time.monotonic() + timeout
        while not self._out.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return NodeInputs(None, [self._failure()])
            time.sleep(_POLL)
        try:
            data = json.loads(self._out.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return NodeInputs(None, [f"unreadable worker inputs: {exc}"])
        inputs = data.get("inputs")
        return NodeInputs(inputs if isinstance(inputs, list) else None, data.get("problems", []))

    def _failure(self) -> str:
        if self.proc.poll() is None:
            return "the xdist controller stand-in did not start in time"
        output = self._log.read_text(encoding="utf-8", errors="replace")
        tail = " | ".join(output.strip().splitlines()[-3:])
        return f"the xdist controller stand-in exited with {self.proc.returncode}: {tail}"

    def close(self) -> None:
        """End the run for the controller: it takes its nodes down, then exits (or is killed)."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._tmp.cleanup()
