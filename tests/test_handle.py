"""A run's handle over a run's pieces: its exit code, summary and waits (pure logic; the real
runs are in test_api.py)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from devformance_nb.api.handle import WAIT_SLICE, Run, _slice
from devformance_nb.core.errors import StoreError, StoreLockedError

pytestmark = pytest.mark.quick


def handle(status: str, error: StoreError | None = None) -> tuple[Run, threading.Event]:
    """A Run over stand-ins of a finished launcher and a store writer."""
    files = {
        key: SimpleNamespace(status=status, key=key, duration=took, done=done, counts=counts)
        for key, status, took, done, counts in (
            ("tests/test_a.py", "passed", 1.5, 2, {"passed": 2}),
            ("tests/test_b.py", "crashed", None, 1, {"failed": 1}),
        )
    }
    totals = {"tests": 3, "passed": 2, "failed": 1}
    state = SimpleNamespace(status=status, files=files, duration=2.0, totals=lambda: totals)
    done = threading.Event()
    plan = SimpleNamespace(run_id="r1", run_dir=SimpleNamespace(path="/tmp/r1"))
    launcher = SimpleNamespace(plan=plan, state=state, done=done, stop=done.set)
    writer = SimpleNamespace(error=error, waits=["another run holds the store"])
    setup: Any = SimpleNamespace(root=".", store=None, launcher=launcher, writer=writer)
    return Run(setup), done


def test_a_passed_run_whose_store_failed_exits_with_the_store_error_code() -> None:
    run, _ = handle("passed", StoreLockedError("locked"))
    assert run.exit_code == StoreError.exit_code != 0
    assert handle("passed")[0].exit_code == 0
    assert handle("failed", StoreLockedError("locked"))[0].exit_code == 1


def test_the_summary_names_each_file_and_the_store_error() -> None:
    run, _ = handle("failed", StoreLockedError("locked by pid 7"))
    lines = run.summary().splitlines()
    assert lines[0].startswith("run r1: failed in 2.0 s, 2 files, 3 tests: 2 passed, 1 failed")
    assert "ok  tests/test_a.py  1.50 s" in lines[1]
    assert "CRASH  tests/test_b.py" in lines[2]
    assert lines[-1] == "store not written: locked by pid 7"
    assert run.store_waits == ["another run holds the store"]
    assert "<code>tests/test_b.py</code>" in run._repr_html_()


def test_a_wait_returns_at_its_timeout_and_stop_ends_the_run() -> None:
    run, done = handle("running")
    assert run.wait(timeout=0.01) is run and not run.done
    run.stop()
    assert done.is_set() and run.done


def test_waits_look_again_in_slices_never_past_the_deadline() -> None:
    assert _slice(None) == WAIT_SLICE
    assert _slice(time.monotonic() - 1) == 0.0
    assert 0.0 < _slice(time.monotonic() + 0.1) <= 0.1
