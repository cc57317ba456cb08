"""The plugin inside real pytest: events when asked, nothing otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import read_events

pytest_plugins = ["pytester"]

SUITE = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_pass():
    print("hello")

def test_fail():
    assert 1 == 2, "one is not two"

def test_error(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.mark.xfail
def test_xfail():
    assert False
"""


def run_child(
    pytester: pytest.Pytester,
    source: str,
    tmp_path: Path,
    options: str = json.dumps({"capture_sql": False}),
) -> tuple[list, int]:
    pytester.makepyfile(test_suite=source)
    events_path = tmp_path / "events.jsonl"
    pytester._monkeypatch.setenv("DEVFORMANCE_EVENTS", str(events_path))
    pytester._monkeypatch.setenv("DEVFORMANCE_RUN_ID", "run-1")
    pytester._monkeypatch.setenv("DEVFORMANCE_FILE", "test_suite.py")
    pytester._monkeypatch.setenv("DEVFORMANCE_OPTIONS", options)
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin")
    return list(read_events(events_path)), result.ret


def test_events_for_every_phase_and_the_end(pytester: pytest.Pytester, tmp_path: Path) -> None:
    events, ret = run_child(pytester, SUITE, tmp_path)
    assert ret == 1
    assert all(isinstance(e, ev.Event) for e in events)
    assert all(e.run_id == "run-1" and e.file == "test_suite.py" for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    collected = [e for e in events if isinstance(e, ev.Collected)]
    assert collected[0].count == 5
    phases = {(e.nodeid.split("::")[1], e.phase): e for e in events if isinstance(e, ev.TestPhase)}
    assert phases[("test_pass", "call")].category == "passed"
    assert "one is not two" in phases[("test_fail", "call")].message
    assert phases[("test_error", "setup")].category == "error"
    assert "fixture broke" in phases[("test_error", "setup")].message
    assert phases[("test_skip", "setup")].category == "skipped"
    assert "not today" in phases[("test_skip", "setup")].message
    assert phases[("test_xfail", "call")].category == "xfailed"
    done = events[-1]
    assert isinstance(done, ev.FileDone)
    assert done.exitstatus == 1
    assert done.counts == {"passed": 1, "failed": 1, "error": 1, "skipped": 1, "xfailed": 1}


def test_options_from_another_version_do_not_break_the_child(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    # a newer launcher sends a setting this plugin does not know: it is ignored, the rest used
    options = json.dumps({"capture_sql": False, "coverage": False, "sent_by_v9": {"x": 1}})
    events, ret = run_child(pytester, "def test_ok():\n    pass\n", tmp_path, options)
    assert ret == 0
    done = events[-1]
    assert isinstance(done, ev.FileDone) and done.counts == {"passed": 1}
    assert not any(isinstance(e, ev.Query) for e in events)


def test_collection_error_becomes_an_event(pytester: pytest.Pytester, tmp_path: Path) -> None:
    events, ret = run_child(pytester, "import not_a_module_xyz\n", tmp_path)
    assert ret == 2
    errors = [e for e in events if isinstance(e, ev.CollectError)]
    assert len(errors) == 1 and "not_a_module_xyz" in errors[0].message


def test_plugin_is_inert_without_the_launcher(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    pytester._monkeypatch.delenv("DEVFORMANCE_EVENTS", raising=False)
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin")
    result.assert_outcomes(passed=1)
    assert not list(pytester.path.glob("*.jsonl"))
    # and a normal run without -p does not load it at all
    result = pytester.runpytest_subprocess("--trace-config")
    assert "devformance" not in result.stdout.str()
