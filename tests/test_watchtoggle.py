"""The live view's Watch toggle (ui/watchtoggle.py): a real view on a generated project,
real watchfiles, real pytest children and a real store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeProject

from devformance_nb.api.facade import run_tests
from devformance_nb.ui.liveview import LiveRunView

PROJECT = {
    "pyproject.toml": """\
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        [tool.coverage.run]
        source = ["app"]
        """,
    "app/__init__.py": "",
    "app/orders.py": "def total(n):\n    return n * 2\n\n\ndef discount(n):\n    return n - 1\n",
    "tests/test_total.py": "from app.orders import total\n\n\ndef test_total():\n"
    "    assert total(2) == 4\n",
    "tests/test_discount.py": "from app.orders import discount\n\n\ndef test_discount():\n"
    "    assert discount(2) == 1\n",
}

#: a test file that holds its run open until the gate file exists
GATED = """\
import os
import time
from pathlib import Path


def test_gated():
    gate = Path(os.environ["DEVFORMANCE_TEST_GATE"])
    deadline = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gate.exists()
"""


def wait_for(condition: Callable[[], Any], timeout: float = 120.0) -> None:
    """Poll ``condition`` until true, failing at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def title_of(view: LiveRunView, key: str) -> str:
    pane = view.pane_for(key)
    assert pane is not None, key
    return str(view.accordion.titles[view.accordion.children.index(pane.box)])


def test_watch_runs_what_a_save_affects_until_turned_off(make_project: MakeProject) -> None:
    root = make_project(PROJECT)
    view = LiveRunView(root=root, executor="spawn", workers=2)
    first = view.start()
    first.wait(120)
    assert first.status == "passed"
    assert (
        view.watch.button.description == "Watch"
        and view.watch.button in view.widget.children[1].children
    )

    view.watch.button.value = True  # as a click does
    assert view.watch.watching
    wait_for(view.watch.listening.is_set)
    assert f"watching {root}: each save runs what it affects" in view.status.value
    orders = root / "app" / "orders.py"
    orders.write_text(orders.read_text().replace("n * 2", "n * 2 + 0"))  # one save, once
    wait_for(lambda: view.run is not None and view.run.id != first.id)
    second = view.run
    assert second is not None
    second.wait(120)
    assert view.watch.rounds[0] == ["app/orders.py"]
    assert second.selection is not None
    assert second.selection.selected == ["tests/test_total.py"]
    assert second.status == "passed"
    wait_for(lambda: not view.running)
    assert title_of(view, "tests/test_total.py").startswith("✔ passed")
    pane = view.pane_for("tests/test_total.py")
    assert pane is not None and (
        f"runs because app/orders.py:2 changed, executed by this file in run {first.id}"
        in pane.head.value
    )
    assert title_of(view, "tests/test_discount.py").startswith(
        f"↺ carried  ·  tests/test_discount.py  ·  from run {first.id}"
    )

    view.watch.button.value = False
    assert not view.watch.watching and view.watch.error is None
    orders.write_text(orders.read_text().replace("n - 1", "n - 1 + 0"))
    # off: nothing watches, so no run starts (the thread is gone: nothing could start one)
    assert view.run is second and not view.running


def test_a_save_during_a_run_waits_for_it(
    make_project: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"  # outside the project: the watch does not see it
    monkeypatch.setenv("DEVFORMANCE_TEST_GATE", str(gate))
    root = make_project({**PROJECT, "tests/test_gated.py": GATED})
    view = LiveRunView(root=root, executor="spawn", workers=2)
    gate.touch()
    view.start().wait(120)
    gate.unlink()
    view.watch.button.value = True
    users = view.start()  # Run pressed: the gated file holds this run open
    orders = root / "app" / "orders.py"
    wait_for(view.watch.listening.is_set)
    orders.write_text(orders.read_text().replace("n * 2", "n * 2 + 0"))
    wait_for(lambda: view.watch.queued is not None)
    assert view.watch.queued == ["app/orders.py"]
    assert view.running and view.run is users and view.watch.rounds == []
    gate.touch()
    users.wait(120)
    wait_for(lambda: view.watch.queued is None)
    wait_for(lambda: not view.running)
    view.watch.button.value = False
    assert view.watch.error is None
    if view.run is not users:  # a round after the run, never during it
        assert view.run is not None and users.state.finished is not None
        assert (view.run.state.started or 0) >= users.state.finished


def test_a_project_without_tests_turns_the_toggle_back_off(make_project: MakeProject) -> None:
    root = make_project({"pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['tests']\n"})
    (root / "tests").mkdir()
    view = LiveRunView(root=root, executor="spawn")
    view.watch.button.value = True
    assert not view.watch.watching and view.watch.button.value is False
    assert "watch not started" in view.status.value and "no test files" in view.status.value


def test_watch_turned_on_before_any_run_still_gets_panes(make_project: MakeProject) -> None:
    root = make_project(PROJECT)
    assert run_tests(root=root, executor="spawn").status == "passed"  # the recorded baseline
    view = LiveRunView(root=root, executor="spawn", workers=2)
    view.watch.button.value = True  # no Run pressed in this view yet
    orders = root / "app" / "orders.py"
    wait_for(view.watch.listening.is_set)
    orders.write_text(orders.read_text().replace("n - 1", "n - 1 + 0"))
    wait_for(lambda: view.run is not None)
    assert view.run is not None
    view.run.wait(120)
    wait_for(lambda: not view.running)
    view.watch.button.value = False
    assert view.run.selection is not None
    assert view.run.selection.selected == ["tests/test_discount.py"]
    assert title_of(view, "tests/test_discount.py").startswith("✔ passed")
    assert title_of(view, "tests/test_total.py").startswith("↺ carried")
